//! The one error type of every tier.
//!
//! Every failure carries an [`ErrorKind`] (what went wrong, stable across the tiers, the
//! C ABI and Python), the operation that failed, the object it concerned (a key, a
//! digest, a path) and the underlying cause when there is one.

use std::fmt;
use std::io;

/// What went wrong, shared by every tier, every C status code and every Python exception.
///
/// Match on the kind, never on message text.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The named object (layer, blob, volume, tag, path) does not exist.
    NotFound,
    /// An object with that name exists already and the call may not replace it.
    AlreadyExists,
    /// The input is malformed: a bad name, digest, tag, option, offset or archive.
    InvalidArgument,
    /// Content did not hash to the digest it was given or named by.
    DigestMismatch,
    /// A path tried to leave the root it is confined to.
    PathEscape,
    /// The object is in use (mounted, held, has children) and cannot be changed now.
    InUse,
    /// Stored state is damaged: bytes that do not match their digest, unreadable metadata.
    Corrupt,
    /// The operation or option is not supported by this driver, kernel or filesystem.
    Unsupported,
    /// A concurrent change won: an offset moved, a lease expired, a state changed.
    Conflict,
    /// A size or count limit was exceeded.
    LimitExceeded,
    /// The operating system refused the operation for lack of permission.
    PermissionDenied,
    /// Any other input/output failure.
    Io,
}

impl ErrorKind {
    /// A stable lower-case name (`not_found`, `digest_mismatch`, ...), used by the CLI's
    /// JSON output and the bindings.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not_found",
            ErrorKind::AlreadyExists => "already_exists",
            ErrorKind::InvalidArgument => "invalid_argument",
            ErrorKind::DigestMismatch => "digest_mismatch",
            ErrorKind::PathEscape => "path_escape",
            ErrorKind::InUse => "in_use",
            ErrorKind::Corrupt => "corrupt",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Conflict => "conflict",
            ErrorKind::LimitExceeded => "limit_exceeded",
            ErrorKind::PermissionDenied => "permission_denied",
            ErrorKind::Io => "io",
        }
    }

    /// Every kind, in a fixed order (the C status codes follow this order from 1).
    pub const ALL: [ErrorKind; 12] = [
        ErrorKind::NotFound,
        ErrorKind::AlreadyExists,
        ErrorKind::InvalidArgument,
        ErrorKind::DigestMismatch,
        ErrorKind::PathEscape,
        ErrorKind::InUse,
        ErrorKind::Corrupt,
        ErrorKind::Unsupported,
        ErrorKind::Conflict,
        ErrorKind::LimitExceeded,
        ErrorKind::PermissionDenied,
        ErrorKind::Io,
    ];

    /// The kind an `io::Error` most plausibly means.
    pub fn from_io(err: &io::Error) -> ErrorKind {
        match err.raw_os_error() {
            Some(code) => Self::from_errno(rustix::io::Errno::from_raw_os_error(code)),
            None => match err.kind() {
                io::ErrorKind::NotFound => ErrorKind::NotFound,
                io::ErrorKind::AlreadyExists => ErrorKind::AlreadyExists,
                io::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
                io::ErrorKind::InvalidInput | io::ErrorKind::InvalidData => {
                    ErrorKind::InvalidArgument
                }
                io::ErrorKind::Unsupported => ErrorKind::Unsupported,
                _ => ErrorKind::Io,
            },
        }
    }

    /// The kind an errno most plausibly means.
    pub fn from_errno(errno: rustix::io::Errno) -> ErrorKind {
        use rustix::io::Errno;
        match errno {
            Errno::NOENT => ErrorKind::NotFound,
            Errno::EXIST => ErrorKind::AlreadyExists,
            Errno::XDEV => ErrorKind::PathEscape,
            Errno::BUSY | Errno::NOTEMPTY => ErrorKind::InUse,
            Errno::ACCESS | Errno::PERM | Errno::ROFS => ErrorKind::PermissionDenied,
            Errno::NOSYS | Errno::NOTSUP => ErrorKind::Unsupported,
            Errno::INVAL | Errno::NAMETOOLONG | Errno::NOTDIR | Errno::ISDIR | Errno::LOOP => {
                ErrorKind::InvalidArgument
            }
            Errno::NOSPC | Errno::DQUOT | Errno::FBIG | Errno::MLINK => ErrorKind::LimitExceeded,
            _ => ErrorKind::Io,
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A failed operation: its kind, the operation, the object concerned and the cause.
#[derive(Debug, thiserror::Error)]
#[error("{op} {context}: {detail}")]
pub struct Error {
    kind: ErrorKind,
    op: &'static str,
    context: String,
    detail: String,
    #[source]
    source: Option<Source>,
}

/// The result type of every cargohold call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A new error of `kind` raised by `op` about `context` (a key, digest or path),
    /// with a human-readable `detail`.
    pub fn new(
        kind: ErrorKind,
        op: &'static str,
        context: impl fmt::Display,
        detail: impl fmt::Display,
    ) -> Error {
        Error {
            kind,
            op,
            context: context.to_string(),
            detail: detail.to_string(),
            source: None,
        }
    }

    /// An error wrapping an `io::Error`; the kind is derived from it.
    pub fn io(op: &'static str, context: impl fmt::Display, err: io::Error) -> Error {
        Error {
            kind: ErrorKind::from_io(&err),
            op,
            context: context.to_string(),
            detail: err.to_string(),
            source: Some(Box::new(err)),
        }
    }

    /// An error wrapping an errno; the kind is derived from it.
    pub fn errno(op: &'static str, context: impl fmt::Display, errno: rustix::io::Errno) -> Error {
        Error::io(op, context, io::Error::from(errno))
    }

    /// Attach the underlying cause.
    pub fn with_source(mut self, source: impl Into<Source>) -> Error {
        self.source = Some(source.into());
        self
    }

    /// Replace the kind (for callers that know better than the errno mapping).
    pub fn with_kind(mut self, kind: ErrorKind) -> Error {
        self.kind = kind;
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The operation that failed (`apply`, `commit`, `mount`, ...).
    pub fn op(&self) -> &'static str {
        self.op
    }

    /// The object the operation concerned (a key, digest, name or path).
    pub fn context(&self) -> &str {
        &self.context
    }

    /// The human-readable detail, without operation and context.
    pub fn detail(&self) -> &str {
        &self.detail
    }
}

impl From<Error> for io::Error {
    fn from(err: Error) -> io::Error {
        let kind = match err.kind {
            ErrorKind::NotFound => io::ErrorKind::NotFound,
            ErrorKind::AlreadyExists => io::ErrorKind::AlreadyExists,
            ErrorKind::InvalidArgument | ErrorKind::PathEscape => io::ErrorKind::InvalidInput,
            ErrorKind::DigestMismatch | ErrorKind::Corrupt => io::ErrorKind::InvalidData,
            ErrorKind::PermissionDenied => io::ErrorKind::PermissionDenied,
            ErrorKind::Unsupported => io::ErrorKind::Unsupported,
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, err)
    }
}

/// Recover a cargohold [`Error`] carried inside an `io::Error` (as produced by the
/// `From<Error> for io::Error` conversion, e.g. through a `Read` adapter), or wrap it.
pub fn from_io_error(op: &'static str, context: impl fmt::Display, err: io::Error) -> Error {
    if err.get_ref().is_some_and(|inner| inner.is::<Error>()) {
        match err.into_inner().map(|inner| inner.downcast::<Error>()) {
            Some(Ok(inner)) => return *inner,
            Some(Err(other)) => return Error::new(ErrorKind::Io, op, context, other),
            None => unreachable!("checked above that the io::Error has an inner error"),
        }
    }
    Error::io(op, context, err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_maps_to_kind() {
        use rustix::io::Errno;
        assert_eq!(ErrorKind::from_errno(Errno::NOENT), ErrorKind::NotFound);
        assert_eq!(
            ErrorKind::from_errno(Errno::EXIST),
            ErrorKind::AlreadyExists
        );
        assert_eq!(ErrorKind::from_errno(Errno::XDEV), ErrorKind::PathEscape);
        assert_eq!(
            ErrorKind::from_errno(Errno::NOSPC),
            ErrorKind::LimitExceeded
        );
        assert_eq!(ErrorKind::from_errno(Errno::IO), ErrorKind::Io);
    }

    #[test]
    fn error_round_trips_through_io_error() {
        let original = Error::new(ErrorKind::DigestMismatch, "commit", "sha256:ab", "bad");
        let io_err: io::Error = original.into();
        assert_eq!(io_err.kind(), io::ErrorKind::InvalidData);
        let back = from_io_error("read", "x", io_err);
        assert_eq!(back.kind(), ErrorKind::DigestMismatch);
        assert_eq!(back.op(), "commit");
        assert_eq!(back.context(), "sha256:ab");
    }

    #[test]
    fn plain_io_error_is_wrapped_with_its_kind() {
        let err = from_io_error("open", "/x", io::Error::from_raw_os_error(2));
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert_eq!(err.op(), "open");
    }

    #[test]
    fn kind_names_are_unique() {
        let mut names: Vec<_> = ErrorKind::ALL.iter().map(|k| k.as_str()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), ErrorKind::ALL.len());
    }
}
