//! Where things live: distribution registry:2's filesystem layout, key by key.
//!
//! ```text
//! /docker/registry/v2/blobs/<alg>/<hex[0..2]>/<hex>/data
//! /docker/registry/v2/repositories/<name>/_layers/<alg>/<hex>/link
//! /docker/registry/v2/repositories/<name>/_manifests/revisions/<alg>/<hex>/link
//! /docker/registry/v2/repositories/<name>/_manifests/tags/<tag>/current/link
//! /docker/registry/v2/repositories/<name>/_manifests/tags/<tag>/index/<alg>/<hex>/link
//! /docker/registry/v2/repositories/<name>/_uploads/<id>/{data,startedat,hashstates/<alg>/<offset>}
//! ```
//! A link file holds exactly `<alg>:<hex>` with no newline.

use cargohold_core::{Digest, ErrorKind, Result};

use crate::Key;
use crate::error::{ErrorCode, coded};

/// The prefix of everything registry:2 stores.
pub const V2: &str = "/docker/registry/v2";

fn key(s: String) -> Key {
    Key::parse(&s).expect("layout keys are built from checked names, tags and digests")
}

/// The data of a blob (and of a manifest, which is a blob too).
pub fn blob_data(d: &Digest) -> Key {
    key(format!(
        "{V2}/blobs/{}/{}/{}/data",
        d.algorithm(),
        &d.hex()[..2],
        d.hex()
    ))
}

/// The directory of all repositories.
pub fn repositories() -> Key {
    key(format!("{V2}/repositories"))
}

/// A repository's directory.
pub fn repository(name: &str) -> Key {
    key(format!("{V2}/repositories/{name}"))
}

/// The link that makes a blob part of a repository.
pub fn layer_link(name: &str, d: &Digest) -> Key {
    key(format!(
        "{V2}/repositories/{name}/_layers/{}/{}/link",
        d.algorithm(),
        d.hex()
    ))
}

/// The link that makes a manifest part of a repository.
pub fn revision_link(name: &str, d: &Digest) -> Key {
    key(format!(
        "{V2}/repositories/{name}/_manifests/revisions/{}/{}/link",
        d.algorithm(),
        d.hex()
    ))
}

/// The directory of a repository's manifest revisions.
pub fn revisions(name: &str) -> Key {
    key(format!("{V2}/repositories/{name}/_manifests/revisions"))
}

/// The directory of a repository's tags.
pub fn tags(name: &str) -> Key {
    key(format!("{V2}/repositories/{name}/_manifests/tags"))
}

/// The link naming the manifest a tag points at.
pub fn tag_current(name: &str, tag: &str) -> Key {
    key(format!(
        "{V2}/repositories/{name}/_manifests/tags/{tag}/current/link"
    ))
}

/// The history entry of a tag for one manifest.
pub fn tag_index(name: &str, tag: &str, d: &Digest) -> Key {
    key(format!(
        "{V2}/repositories/{name}/_manifests/tags/{tag}/index/{}/{}/link",
        d.algorithm(),
        d.hex()
    ))
}

/// A repository's upload directory.
pub fn uploads(name: &str) -> Key {
    key(format!("{V2}/repositories/{name}/_uploads"))
}

/// One upload's directory.
pub fn upload(name: &str, id: &str) -> Key {
    key(format!("{V2}/repositories/{name}/_uploads/{id}"))
}

/// The bytes of an upload so far.
pub fn upload_data(name: &str, id: &str) -> Key {
    key(format!("{V2}/repositories/{name}/_uploads/{id}/data"))
}

/// The state of an upload kept as a multipart upload (object stores; cargohold's own
/// file, registry:2 has none): the multipart id, its parts' ETags, the bytes so far.
pub fn upload_multipart(name: &str, id: &str) -> Key {
    key(format!("{V2}/repositories/{name}/_uploads/{id}/multipart"))
}

/// A piece of an upload's tail not yet in a part (multipart uploads), by its offset.
pub fn upload_tail_piece(name: &str, id: &str, offset: u64) -> Key {
    key(format!(
        "{V2}/repositories/{name}/_uploads/{id}/tail/{offset}"
    ))
}

/// When an upload started (RFC 3339).
pub fn upload_started(name: &str, id: &str) -> Key {
    key(format!("{V2}/repositories/{name}/_uploads/{id}/startedat"))
}

/// The directory of an upload's saved sha256 states, one file per offset.
pub fn upload_hashstates(name: &str, id: &str) -> Key {
    key(format!(
        "{V2}/repositories/{name}/_uploads/{id}/hashstates/sha256"
    ))
}

/// The content of a link file naming `d`.
pub fn link_content(d: &Digest) -> Vec<u8> {
    d.to_string().into_bytes()
}

/// Parse a link file's content. An empty or malformed link (an older registry's crash
/// can leave one) is `Corrupt`, never a digest; so is a link that names a digest other
/// than the one its path says.
pub fn parse_link(
    at: &Key,
    bytes: &[u8],
    expected: Option<&Digest>,
    code: ErrorCode,
) -> Result<Digest> {
    let corrupt = |why: &str| coded(code, ErrorKind::Corrupt, "read link", at, why);
    if bytes.is_empty() {
        return Err(corrupt("empty link file"));
    }
    let s = std::str::from_utf8(bytes).map_err(|_| corrupt("link is not text"))?;
    let d = Digest::parse(s).map_err(|_| corrupt("link does not hold a digest"))?;
    if let Some(want) = expected
        && &d != want
    {
        return Err(corrupt("link names another digest than its path"));
    }
    Ok(d)
}
