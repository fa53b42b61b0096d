//! Volume names, checked as Docker checks them.

use cargohold_core::{Error, ErrorKind, Result};

/// Longest volume name cargohold accepts (a file name must fit in 255 bytes).
pub const MAX_NAME_LEN: usize = 255;

/// Check a volume name: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`, as Docker's local driver requires
/// (so at least two characters), at most [`MAX_NAME_LEN`] bytes. Anything else (empty,
/// a `/`, `..`, a leading `.` or `-`) is `InvalidArgument`.
pub fn check_name(name: &str) -> Result<()> {
    let b = name.as_bytes();
    let ok = b.len() >= 2
        && b.len() <= MAX_NAME_LEN
        && b[0].is_ascii_alphanumeric()
        && b[1..]
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::InvalidArgument,
            "volume name",
            name,
            "a volume name is [a-zA-Z0-9][a-zA-Z0-9_.-]+, at most 255 bytes",
        ))
    }
}

/// A fresh name for an anonymous volume: 64 random hex digits, as Docker makes them.
pub fn anonymous_name() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the kernel's random source is available");
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_grammar() {
        // Dots are allowed after the first character, as in Docker: `a..` is a name.
        for good in [
            "ab",
            "my-vol",
            "data_1.backup",
            "A0",
            "a..",
            &"x".repeat(255),
        ] {
            check_name(good).unwrap();
        }
        for bad in [
            "",
            "a",
            "-ab",
            ".ab",
            "_ab",
            "a/b",
            "..",
            "../x",
            "a b",
            "é1",
            &"x".repeat(256),
        ] {
            assert_eq!(
                check_name(bad).unwrap_err().kind(),
                ErrorKind::InvalidArgument,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn anonymous_names_are_valid_and_distinct() {
        let a = anonymous_name();
        let b = anonymous_name();
        check_name(&a).unwrap();
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
    }
}
