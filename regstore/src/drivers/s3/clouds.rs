//! Google Cloud Storage and Azure Blob Storage through the same driver (features `gcs`
//! and `azure`): object_store builders configured from the environment variables
//! object_store itself reads. Configuration only: the tests here check how a
//! configuration is built and refused, not a server (none is available offline).

use std::sync::Arc;

use cargohold_core::{ErrorKind, Result};

use super::{MAX_COPY, S3, map_err};

const PART_SIZE: usize = 8 << 20;

fn built<T>(name: &str, r: impl FnOnce() -> object_store::Result<T>) -> Result<T> {
    super::install_crypto_provider();
    let r = r();
    r.map_err(|e| map_err("open", name, e).with_kind(ErrorKind::InvalidArgument))
}

#[cfg(feature = "gcs")]
impl S3 {
    /// The builder [`S3::open_gcs`] uses: `GOOGLE_*` variables (`GOOGLE_SERVICE_ACCOUNT`
    /// or `GOOGLE_APPLICATION_CREDENTIALS`, `GOOGLE_SERVICE_ACCOUNT_KEY`,
    /// `GOOGLE_BASE_URL`, ...), then `bucket`.
    pub fn gcs_builder_from_env(bucket: &str) -> object_store::gcp::GoogleCloudStorageBuilder {
        object_store::gcp::GoogleCloudStorageBuilder::from_env().with_bucket_name(bucket)
    }

    /// Open `gs://bucket/prefix` with [`S3::gcs_builder_from_env`]: a configuration
    /// object_store refuses is `InvalidArgument`, then as [`S3::open`] (one listing).
    pub fn open_gcs(bucket: &str, prefix: &str) -> Result<S3> {
        S3::open_gcs_with(S3::gcs_builder_from_env(bucket), bucket, prefix)
    }

    /// Open a bucket from a builder the caller configured.
    pub fn open_gcs_with(
        builder: object_store::gcp::GoogleCloudStorageBuilder,
        bucket: &str,
        prefix: &str,
    ) -> Result<S3> {
        let name = format!("gs://{bucket}/{prefix}");
        let prefix = super::check_prefix("open", &name, prefix)?;
        let store = built(&name, || builder.build())?;
        S3::on_store(
            Arc::new(store),
            "gcs",
            name,
            bucket,
            &prefix,
            PART_SIZE,
            MAX_COPY,
            None,
        )
    }
}

#[cfg(feature = "azure")]
impl S3 {
    /// The builder [`S3::open_azure`] uses: `AZURE_*` variables
    /// (`AZURE_STORAGE_ACCOUNT_NAME`, `AZURE_STORAGE_ACCOUNT_KEY`, `AZURE_STORAGE_SAS_KEY`,
    /// `AZURE_STORAGE_USE_EMULATOR`, `AZURE_CLIENT_ID`, ...), then `container`.
    pub fn azure_builder_from_env(container: &str) -> object_store::azure::MicrosoftAzureBuilder {
        object_store::azure::MicrosoftAzureBuilder::from_env().with_container_name(container)
    }

    /// Open `az://container/prefix` with [`S3::azure_builder_from_env`]: a configuration
    /// object_store refuses (no account name, say) is `InvalidArgument`, then as
    /// [`S3::open`] (one listing).
    pub fn open_azure(container: &str, prefix: &str) -> Result<S3> {
        S3::open_azure_with(S3::azure_builder_from_env(container), container, prefix)
    }

    /// Open a container from a builder the caller configured.
    pub fn open_azure_with(
        builder: object_store::azure::MicrosoftAzureBuilder,
        container: &str,
        prefix: &str,
    ) -> Result<S3> {
        let name = format!("az://{container}/{prefix}");
        let prefix = super::check_prefix("open", &name, prefix)?;
        let store = built(&name, || builder.build())?;
        S3::on_store(
            Arc::new(store),
            "azure",
            name,
            container,
            &prefix,
            PART_SIZE,
            MAX_COPY,
            None,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "gcs")]
    #[test]
    fn gcs_configuration_is_built_or_refused() {
        use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
        let b = S3::gcs_builder_from_env("images");
        assert_eq!(
            b.get_config_value(&GoogleConfigKey::Bucket).as_deref(),
            Some("images")
        );
        let bad = GoogleCloudStorageBuilder::new()
            .with_bucket_name("images")
            .with_service_account_key("not a key");
        let e = S3::open_gcs_with(bad, "images", "reg").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
        assert!(e.to_string().contains("gs://images/reg"), "{e}");
        let e = S3::open_gcs_with(GoogleCloudStorageBuilder::new(), "b", "../x").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    }

    #[cfg(feature = "azure")]
    #[test]
    fn azure_configuration_is_built_or_refused() {
        use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
        let b = S3::azure_builder_from_env("images");
        assert_eq!(
            b.get_config_value(&AzureConfigKey::ContainerName)
                .as_deref(),
            Some("images")
        );
        // No storage account: refused before any request.
        let e = S3::open_azure_with(
            MicrosoftAzureBuilder::new().with_container_name("images"),
            "images",
            "",
        )
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
        assert!(e.to_string().contains("az://images/"), "{e}");
        // The emulator's well-known account on a port nothing listens on: built, then
        // the first listing fails as Io.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let emulated = MicrosoftAzureBuilder::new()
            .with_container_name("images")
            .with_use_emulator(true)
            .with_endpoint(format!("http://127.0.0.1:{port}"))
            .with_allow_http(true)
            .with_retry(object_store::RetryConfig {
                max_retries: 0,
                ..Default::default()
            });
        let e = S3::open_azure_with(emulated, "images", "reg").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Io, "{e}");
    }
}
