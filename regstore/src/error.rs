//! The distribution spec's error codes, carried by core's [`Error`].
//!
//! A regstore error whose meaning is one of the spec's codes carries a [`CodeMark`] as
//! its source, so that [`error_code`] can recover the code without a second error type
//! (and an HTTP front end can answer with it). Kinds still say what went wrong for
//! everything else.

use std::fmt;

use cargohold_core::{Error, ErrorKind};

/// The error codes of the OCI distribution spec (and registry:2).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The blob is not known to the repository.
    BlobUnknown,
    /// The upload is invalid (e.g. a chunk at the wrong offset).
    BlobUploadInvalid,
    /// No such upload.
    BlobUploadUnknown,
    /// The content does not match its digest, or the digest is malformed.
    DigestInvalid,
    /// A manifest references a blob or manifest the repository lacks.
    ManifestBlobUnknown,
    /// The manifest is malformed or of an unsupported type.
    ManifestInvalid,
    /// No such manifest or tag.
    ManifestUnknown,
    /// The repository name is invalid.
    NameInvalid,
    /// The repository is not known.
    NameUnknown,
    /// The given size does not match the content.
    SizeInvalid,
    /// The tag is invalid.
    TagInvalid,
    /// The operation is not supported.
    Unsupported,
}

impl ErrorCode {
    /// The spec's spelling (`BLOB_UNKNOWN`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BlobUnknown => "BLOB_UNKNOWN",
            ErrorCode::BlobUploadInvalid => "BLOB_UPLOAD_INVALID",
            ErrorCode::BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
            ErrorCode::DigestInvalid => "DIGEST_INVALID",
            ErrorCode::ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN",
            ErrorCode::ManifestInvalid => "MANIFEST_INVALID",
            ErrorCode::ManifestUnknown => "MANIFEST_UNKNOWN",
            ErrorCode::NameInvalid => "NAME_INVALID",
            ErrorCode::NameUnknown => "NAME_UNKNOWN",
            ErrorCode::SizeInvalid => "SIZE_INVALID",
            ErrorCode::TagInvalid => "TAG_INVALID",
            ErrorCode::Unsupported => "UNSUPPORTED",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The marker a coded error carries as its source.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CodeMark(pub ErrorCode);

/// A new error of `kind` carrying `code`.
pub fn coded(
    code: ErrorCode,
    kind: ErrorKind,
    op: &'static str,
    context: impl fmt::Display,
    detail: impl fmt::Display,
) -> Error {
    Error::new(kind, op, context, detail).with_source(CodeMark(code))
}

/// Re-raise `err` with `code` (keeping kind, op, context and detail; a previous source
/// is replaced by the mark, its text stays in the detail).
pub fn recode(err: Error, code: ErrorCode) -> Error {
    if error_code(&err).is_some() {
        return err;
    }
    let detail = match std::error::Error::source(&err) {
        Some(s) => format!("{}: {s}", err.detail()),
        None => err.detail().to_owned(),
    };
    coded(code, err.kind(), err.op(), err.context(), detail)
}

/// The distribution spec's code of `err`, when it has one.
pub fn error_code(err: &Error) -> Option<ErrorCode> {
    let mut src = std::error::Error::source(err);
    while let Some(s) = src {
        if let Some(mark) = s.downcast_ref::<CodeMark>() {
            return Some(mark.0);
        }
        src = s.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_survives_and_kind_is_kept() {
        let e = coded(
            ErrorCode::BlobUnknown,
            ErrorKind::NotFound,
            "stat",
            "sha256:x",
            "no",
        );
        assert_eq!(error_code(&e), Some(ErrorCode::BlobUnknown));
        assert_eq!(e.kind(), ErrorKind::NotFound);
        let plain = Error::new(ErrorKind::Io, "x", "y", "z");
        assert_eq!(error_code(&plain), None);
        let re = recode(plain, ErrorCode::Unsupported);
        assert_eq!(error_code(&re), Some(ErrorCode::Unsupported));
        assert_eq!(re.kind(), ErrorKind::Io);
    }
}
