//! Names inside a layer tar, made safe to resolve under a target root.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use cargohold_core::{Error, ErrorKind, Result};

/// Turn a tar name into a relative path of plain components: leading `/` and `.`
/// components are dropped (GNU tar and moby do the same), a `..` component is
/// `PathEscape`, a NUL is `InvalidArgument`. The empty result means the root itself.
pub(crate) fn sanitize(op: &'static str, raw: &[u8]) -> Result<PathBuf> {
    if raw.contains(&0) {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            op,
            String::from_utf8_lossy(raw),
            "name holds a NUL byte",
        ));
    }
    let mut out = PathBuf::new();
    for comp in raw.split(|b| *b == b'/') {
        match comp {
            b"" | b"." => {}
            b".." => {
                return Err(Error::new(
                    ErrorKind::PathEscape,
                    op,
                    String::from_utf8_lossy(raw),
                    "name climbs out with ..",
                ));
            }
            c => out.push(OsStr::from_bytes(c)),
        }
    }
    Ok(out)
}
