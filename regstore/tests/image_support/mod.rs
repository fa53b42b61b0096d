//! A tagged one-layer OCI image, pushed the way a client pushes one (layer, config,
//! manifest), for the tests that need an image and not what it holds.

use cargohold_core::Digest;
use regstore::{MediaType, Registry};
use serde_json::json;

/// Push `layer` and a small config to `repo` and an OCI manifest naming them under `tag`;
/// returns the manifest's digest and bytes.
pub fn image(reg: &Registry, repo: &str, tag: &str, layer: &[u8]) -> (Digest, Vec<u8>) {
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let c = reg.put_blob(repo, config).unwrap();
    let l = reg.put_blob(repo, layer).unwrap();
    let m = json!({
        "schemaVersion": 2,
        "mediaType": MediaType::OciManifest.as_str(),
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": c.digest, "size": c.size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": l.digest, "size": l.size}],
    });
    let bytes = serde_json::to_vec_pretty(&m).unwrap();
    (reg.put_manifest(repo, tag, &bytes, None).unwrap(), bytes)
}
