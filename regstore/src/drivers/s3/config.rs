//! [`S3Config`]: where the bucket is and how to reach it.

use std::fmt;
use std::time::Duration;

/// Where the bucket is and how to reach it.
#[derive(Clone)]
pub struct S3Config {
    /// The server's URL (`http://127.0.0.1:9000`); `None` for AWS itself.
    pub endpoint: Option<String>,
    /// The region requests are signed for.
    pub region: String,
    /// The bucket; it must exist ([`S3::open`](super::S3::open) checks).
    pub bucket: String,
    /// Prepended to every key (`a/b` stores `/x` as `a/b/x`); empty for none.
    pub prefix: String,
    /// Access key id; with the secret, requests are signed with it.
    pub access_key_id: Option<String>,
    /// Secret access key.
    pub secret_access_key: Option<String>,
    /// Session token of temporary credentials.
    pub session_token: Option<String>,
    /// `http://host/bucket/key` (most S3-compatible servers) instead of
    /// `http://bucket.host/key`.
    pub path_style: bool,
    /// Retries of a failed request (0 fails at once).
    pub max_retries: usize,
    /// Give up retrying a request after this long.
    pub retry_timeout: Duration,
    /// Size of each multipart part (at least [`MIN_PART_SIZE`](super::MIN_PART_SIZE)).
    pub part_size: usize,
    /// The largest file a move copies on the server (`CopyObject`, which S3 caps at
    /// 5 GiB, the default); a larger one is streamed through this process (read, then
    /// written as a multipart upload).
    pub copy_limit: u64,
}

impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("access_key_id", &self.access_key_id)
            .field("path_style", &self.path_style)
            .field("part_size", &self.part_size)
            .field("copy_limit", &self.copy_limit)
            .finish_non_exhaustive()
    }
}

impl S3Config {
    /// A configuration for `bucket` under `prefix`, region `us-east-1`, no endpoint,
    /// no credentials, 3 retries within 30 s, 8 MiB parts, server-side copies up to 5 GiB.
    pub fn new(bucket: &str, prefix: &str) -> S3Config {
        S3Config {
            endpoint: None,
            region: "us-east-1".into(),
            bucket: bucket.into(),
            prefix: prefix.into(),
            access_key_id: None,
            secret_access_key: None,
            session_token: None,
            path_style: false,
            max_retries: 3,
            retry_timeout: Duration::from_secs(30),
            part_size: 8 << 20,
            copy_limit: super::MAX_COPY,
        }
    }

    /// [`S3Config::new`] completed from `AWS_ENDPOINT_URL`, `AWS_REGION` (or
    /// `AWS_DEFAULT_REGION`), `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and
    /// `AWS_SESSION_TOKEN`. With an endpoint, requests are path-style. No other variable
    /// is read (`AWS_CA_BUNDLE` and the like are ignored).
    pub fn from_env(bucket: &str, prefix: &str) -> S3Config {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let mut c = S3Config::new(bucket, prefix);
        c.endpoint = var("AWS_ENDPOINT_URL");
        c.path_style = c.endpoint.is_some();
        if let Some(region) = var("AWS_REGION").or_else(|| var("AWS_DEFAULT_REGION")) {
            c.region = region;
        }
        c.access_key_id = var("AWS_ACCESS_KEY_ID");
        c.secret_access_key = var("AWS_SECRET_ACCESS_KEY");
        c.session_token = var("AWS_SESSION_TOKEN");
        c
    }
}
