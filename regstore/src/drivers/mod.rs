//! The [`StorageDriver`] backends, and [`open_location`], which
//! picks one from a location string (what the CLI's `--registry` and Python take).

pub mod filesystem;
pub mod memory;
#[cfg(feature = "s3")]
pub mod s3;

pub use filesystem::Filesystem;
pub use memory::Memory;
#[cfg(feature = "s3")]
pub use s3::{S3, S3Config};

use std::sync::Arc;

use cargohold_core::{Error, ErrorKind, Result};

use crate::StorageDriver;

/// The scheme of an S3-compatible location.
pub const S3_SCHEME: &str = "s3://";
/// The scheme of a Google Cloud Storage location.
pub const GCS_SCHEME: &str = "gs://";
/// The scheme of an Azure Blob Storage location.
pub const AZURE_SCHEME: &str = "az://";
/// The object-storage schemes [`open_location`] knows, without their `://`.
pub const SCHEMES: [&str; 3] = ["s3", "gs", "az"];

/// What a location string names; see [`open_location`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A directory for the filesystem backend.
    Directory(String),
    /// `s3://BUCKET/PREFIX`.
    S3 {
        /// The bucket.
        bucket: String,
        /// The key prefix (may be empty).
        prefix: String,
    },
    /// `gs://BUCKET/PREFIX`.
    Gcs {
        /// The bucket.
        bucket: String,
        /// The key prefix (may be empty).
        prefix: String,
    },
    /// `az://CONTAINER/PREFIX` (the storage account comes from the environment).
    Azure {
        /// The container.
        container: String,
        /// The key prefix (may be empty).
        prefix: String,
    },
}

impl Location {
    /// Parse `location`: `s3://`, `gs://` or `az://` followed by a bucket (container)
    /// and an optional `/PREFIX`; anything else is a directory. An object-storage
    /// location with an empty bucket, or `SCHEME:/...` with one slash (what
    /// `pathlib.Path("s3://b/p")` turns a location into), is `InvalidArgument`.
    pub fn parse(location: &str) -> Result<Location> {
        for scheme in SCHEMES {
            let Some(rest) = location
                .strip_prefix(scheme)
                .and_then(|r| r.strip_prefix(':'))
            else {
                continue;
            };
            let bad = |why: String| {
                Err(Error::new(
                    ErrorKind::InvalidArgument,
                    "open",
                    location,
                    why,
                ))
            };
            let Some(rest) = rest.strip_prefix("//") else {
                if rest.starts_with('/') {
                    return bad(format!(
                        "{scheme}:/ with one slash: an object-storage location is \
                         {scheme}://BUCKET/PREFIX (a path library may have folded the //)"
                    ));
                }
                break;
            };
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return bad(format!(
                    "a {scheme} location is {scheme}://BUCKET or {scheme}://BUCKET/PREFIX"
                ));
            }
            let (bucket, prefix) = (bucket.to_owned(), prefix.trim_matches('/').to_owned());
            return Ok(match scheme {
                "s3" => Location::S3 { bucket, prefix },
                "gs" => Location::Gcs { bucket, prefix },
                _ => Location::Azure {
                    container: bucket,
                    prefix,
                },
            });
        }
        Ok(Location::Directory(location.to_owned()))
    }
}

/// Open the backend `location` names:
/// - `s3://BUCKET` or `s3://BUCKET/PREFIX`: the `s3` backend (feature `s3`),
///   configured from the environment (`S3Config::from_env`: `AWS_ENDPOINT_URL`,
///   `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, ...).
/// - `gs://BUCKET[/PREFIX]`: Google Cloud Storage (feature `gcs`), configured from the
///   `GOOGLE_*` variables object_store reads (`GOOGLE_SERVICE_ACCOUNT`,
///   `GOOGLE_APPLICATION_CREDENTIALS`, ...).
/// - `az://CONTAINER[/PREFIX]`: Azure Blob Storage (feature `azure`), configured from
///   the `AZURE_*` variables (`AZURE_STORAGE_ACCOUNT_NAME`, `AZURE_STORAGE_ACCOUNT_KEY`,
///   ...).
/// - anything else: a directory for the [`filesystem`] backend, created when missing.
///
/// A scheme whose feature is not built is `Unsupported`; a malformed location is
/// `InvalidArgument` (see [`Location::parse`]).
pub fn open_location(location: &str) -> Result<Arc<dyn StorageDriver>> {
    match Location::parse(location)? {
        Location::Directory(dir) => Ok(Arc::new(Filesystem::new(dir)?)),
        Location::S3 { bucket, prefix } => open_s3(location, &bucket, &prefix),
        Location::Gcs { bucket, prefix } => open_gcs(location, &bucket, &prefix),
        Location::Azure { container, prefix } => open_azure(location, &container, &prefix),
    }
}

#[cfg(not(all(feature = "s3", feature = "gcs", feature = "azure")))]
fn unsupported(location: &str, feature: &str) -> Error {
    Error::new(
        ErrorKind::Unsupported,
        "open",
        location,
        format!("regstore was built without its {feature} feature"),
    )
}

#[cfg(feature = "s3")]
fn open_s3(_location: &str, bucket: &str, prefix: &str) -> Result<Arc<dyn StorageDriver>> {
    Ok(Arc::new(S3::open(S3Config::from_env(bucket, prefix))?))
}

#[cfg(not(feature = "s3"))]
fn open_s3(location: &str, _bucket: &str, _prefix: &str) -> Result<Arc<dyn StorageDriver>> {
    Err(unsupported(location, "s3"))
}

#[cfg(feature = "gcs")]
fn open_gcs(_location: &str, bucket: &str, prefix: &str) -> Result<Arc<dyn StorageDriver>> {
    Ok(Arc::new(S3::open_gcs(bucket, prefix)?))
}

#[cfg(not(feature = "gcs"))]
fn open_gcs(location: &str, _bucket: &str, _prefix: &str) -> Result<Arc<dyn StorageDriver>> {
    Err(unsupported(location, "gcs"))
}

#[cfg(feature = "azure")]
fn open_azure(_location: &str, container: &str, prefix: &str) -> Result<Arc<dyn StorageDriver>> {
    Ok(Arc::new(S3::open_azure(container, prefix)?))
}

#[cfg(not(feature = "azure"))]
fn open_azure(location: &str, _container: &str, _prefix: &str) -> Result<Arc<dyn StorageDriver>> {
    Err(unsupported(location, "azure"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse_by_scheme() {
        let s3 = |b: &str, p: &str| Location::S3 {
            bucket: b.into(),
            prefix: p.into(),
        };
        assert_eq!(Location::parse("s3://b").unwrap(), s3("b", ""));
        assert_eq!(Location::parse("s3://b/p/q/").unwrap(), s3("b", "p/q"));
        assert_eq!(
            Location::parse("gs://bucket/reg").unwrap(),
            Location::Gcs {
                bucket: "bucket".into(),
                prefix: "reg".into()
            }
        );
        assert_eq!(
            Location::parse("az://images").unwrap(),
            Location::Azure {
                container: "images".into(),
                prefix: String::new()
            }
        );
        for dir in ["/var/lib/reg", "reg", "s3", "s3:x", "./s3://b", "gs"] {
            assert_eq!(
                Location::parse(dir).unwrap(),
                Location::Directory(dir.into()),
                "{dir}"
            );
        }
    }

    #[test]
    fn bad_locations_are_invalid_arguments() {
        for bad in [
            "s3://", "s3:///p", "gs://", "az:///x", "s3:/b/p", "gs:/b", "az:/c/p",
        ] {
            let e = Location::parse(bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{bad}");
            assert!(e.to_string().contains("BUCKET"), "{bad}: {e}");
            assert_eq!(
                open_location(bad).unwrap_err().kind(),
                ErrorKind::InvalidArgument,
                "{bad}"
            );
        }
    }

    #[cfg(not(feature = "gcs"))]
    #[test]
    fn a_scheme_not_built_is_unsupported() {
        let e = open_location("gs://b/p").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported);
        assert!(e.to_string().contains("gcs feature"), "{e}");
    }
}
