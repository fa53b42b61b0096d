//! Repository names and tags, checked by the distribution spec's grammar.

use cargohold_core::{Digest, ErrorKind, Result};

use crate::error::{ErrorCode, coded};

/// Longest repository name.
pub const MAX_NAME_LEN: usize = 255;

fn component_ok(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = matches!(sep, "." | "_" | "__") || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// Check a repository name: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*` components joined by
/// `/`, at most 255 bytes (`InvalidArgument`, code `NAME_INVALID`).
pub fn check_repository(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_NAME_LEN || !name.split('/').all(component_ok) {
        return Err(coded(
            ErrorCode::NameInvalid,
            ErrorKind::InvalidArgument,
            "repository",
            name,
            "not a valid repository name",
        ));
    }
    Ok(())
}

/// Check a tag: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}` (`InvalidArgument`, `TAG_INVALID`).
pub fn check_tag(tag: &str) -> Result<()> {
    let b = tag.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|&x| x.is_ascii_alphanumeric() || matches!(x, b'.' | b'_' | b'-'));
    if !ok {
        return Err(coded(
            ErrorCode::TagInvalid,
            ErrorKind::InvalidArgument,
            "tag",
            tag,
            "not a valid tag",
        ));
    }
    Ok(())
}

/// Parse a digest given by a caller (`InvalidArgument`, code `DIGEST_INVALID`).
pub fn parse_digest(s: &str) -> Result<Digest> {
    Digest::parse(s).map_err(|e| {
        crate::error::recode(
            e.with_kind(ErrorKind::InvalidArgument),
            ErrorCode::DigestInvalid,
        )
    })
}

/// A manifest reference: a tag or a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    /// A tag.
    Tag(String),
    /// A digest.
    Digest(Digest),
}

impl Reference {
    /// A digest when `s` holds a `:`, a tag otherwise; both checked.
    pub fn parse(s: &str) -> Result<Reference> {
        if s.contains(':') {
            Ok(Reference::Digest(parse_digest(s)?))
        } else {
            check_tag(s)?;
            Ok(Reference::Tag(s.to_owned()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error_code;

    #[test]
    fn repository_grammar() {
        for good in ["a", "library/debian", "a.b_c__d---e/f0", "x/y/z", "0"] {
            check_repository(good).unwrap();
        }
        let long = "a".repeat(256);
        for bad in [
            "",
            "A",
            "a//b",
            "/a",
            "a/",
            "-a",
            "a-",
            "a___b",
            "a..b",
            "a._b",
            "a b",
            long.as_str(),
        ] {
            let e = check_repository(bad).unwrap_err();
            assert_eq!(error_code(&e), Some(ErrorCode::NameInvalid), "{bad:?}");
        }
    }

    #[test]
    fn tag_grammar() {
        let max = "a".repeat(128);
        for good in ["latest", "_x", "V1.2-rc_3", max.as_str()] {
            check_tag(good).unwrap();
        }
        let long = "a".repeat(129);
        for bad in ["", ".a", "-a", "a/b", "a:b", long.as_str()] {
            let e = check_tag(bad).unwrap_err();
            assert_eq!(error_code(&e), Some(ErrorCode::TagInvalid), "{bad:?}");
        }
    }
}
