//! Keys of the [`StorageDriver`](crate::StorageDriver) key space, validated once.

use std::fmt;

use cargohold_core::{Error, ErrorKind, Result};

/// Longest key accepted, in bytes.
pub const MAX_KEY_LEN: usize = 4096;

/// An absolute key: `/` or `/` followed by components of `[A-Za-z0-9._-]` joined by
/// `/` (distribution's path grammar; upper case is allowed because tags may hold it).
/// A component is never `.` or `..`, and no component is empty.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key(String);

fn component_ok(c: &str) -> bool {
    !c.is_empty()
        && c != "."
        && c != ".."
        && c.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

impl Key {
    /// The root key `/`.
    pub fn root() -> Key {
        Key("/".to_owned())
    }

    /// Validate `s` as a key (`InvalidArgument` when it is not one).
    pub fn parse(s: &str) -> Result<Key> {
        let bad = |why: &str| Error::new(ErrorKind::InvalidArgument, "key", s, why);
        if s == "/" {
            return Ok(Key::root());
        }
        if s.len() > MAX_KEY_LEN {
            return Err(bad("key too long"));
        }
        let Some(rest) = s.strip_prefix('/') else {
            return Err(bad("a key is absolute"));
        };
        if !rest.split('/').all(component_ok) {
            return Err(bad("a key component is [A-Za-z0-9._-]+ and not . or .."));
        }
        Ok(Key(s.to_owned()))
    }

    /// This key with `rel` (one or more `/`-separated components) appended.
    pub fn join(&self, rel: &str) -> Result<Key> {
        if self.is_root() {
            Key::parse(&format!("/{rel}"))
        } else {
            Key::parse(&format!("{}/{rel}", self.0))
        }
    }

    /// Whether this is `/`.
    pub fn is_root(&self) -> bool {
        self.0 == "/"
    }

    /// The key as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key without its leading `/` (empty for the root).
    pub fn relative(&self) -> &str {
        &self.0[1..]
    }

    /// The last component (empty for the root).
    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or("")
    }

    /// The parent key (`None` for the root).
    pub fn parent(&self) -> Option<Key> {
        if self.is_root() {
            return None;
        }
        let cut = self.0.rfind('/').unwrap_or(0);
        Some(if cut == 0 {
            Key::root()
        } else {
            Key(self.0[..cut].to_owned())
        })
    }

    /// Whether `self` is strictly below `dir`.
    pub fn is_below(&self, dir: &Key) -> bool {
        if dir.is_root() {
            !self.is_root()
        } else {
            self.0.len() > dir.0.len()
                && self.0.starts_with(&dir.0)
                && self.0.as_bytes()[dir.0.len()] == b'/'
        }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_keys_are_refused() {
        for bad in [
            "", "a", "/a/", "//a", "/a//b", "/a/../b", "/..", "/.", "/a b", "/a\0", "/é",
        ] {
            assert_eq!(
                Key::parse(bad).unwrap_err().kind(),
                ErrorKind::InvalidArgument,
                "{bad:?}"
            );
        }
        for good in ["/", "/a", "/docker/registry/v2/x_y.z-W", "/a/.hidden"] {
            Key::parse(good).unwrap();
        }
    }

    #[test]
    fn parent_and_below() {
        let k = Key::parse("/a/b/c").unwrap();
        assert_eq!(k.parent().unwrap().as_str(), "/a/b");
        assert_eq!(Key::parse("/a").unwrap().parent().unwrap(), Key::root());
        assert!(k.is_below(&Key::parse("/a").unwrap()));
        assert!(
            !Key::parse("/ab")
                .unwrap()
                .is_below(&Key::parse("/a").unwrap())
        );
        assert_eq!(k.file_name(), "c");
    }
}
