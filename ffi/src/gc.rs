//! Registry garbage collection and integrity check (fsck) over C, with their reports
//! as JSON.

use std::ffi::{c_char, c_void};
use std::time::Duration;

use cargohold_core::{Digest, Error, ErrorKind};
use regstore::fsck::{self, Damage, FsckOptions, FsckProgress, FsckReport};
use regstore::gc::{self, GcOptions, GcProgress, GcReport};
use serde_json::{Value, json};

use crate::boundary::call;
use crate::error::{cargohold_error, cargohold_status};
use crate::registry::{cargohold_registry, registry};
use crate::streams::{Stages, cargohold_stage_fn};
use crate::strings;

/// `cargohold_registry_gc` flag: delete nothing, report what would go.
pub const CARGOHOLD_GC_DRY_RUN: u32 = 1;
/// `cargohold_registry_gc` flag: also delete the manifests no tag needs.
pub const CARGOHOLD_GC_DELETE_UNTAGGED: u32 = 2;

/// A duration in seconds from C: negative means the default.
fn seconds(s: i64, default: Duration) -> Duration {
    u64::try_from(s).map_or(default, Duration::from_secs)
}

fn pairs(v: &[(String, Digest)]) -> Value {
    Value::Array(
        v.iter()
            .map(|(r, d)| json!({"repository": r, "digest": d.to_string()}))
            .collect(),
    )
}

fn digests(v: &[Digest]) -> Value {
    Value::Array(v.iter().map(|d| Value::String(d.to_string())).collect())
}

fn gc_json(r: &GcReport) -> Value {
    json!({
        "dry_run": r.dry_run,
        "repositories": r.repositories,
        "manifests_kept": r.manifests_kept,
        "marked": r.marked,
        "manifests_deleted": pairs(&r.manifests_deleted),
        "blobs_deleted": digests(&r.blobs_deleted),
        "bytes_deleted": r.bytes_deleted,
        "links_deleted": pairs(&r.links_deleted),
        "blobs_spared": digests(&r.blobs_spared),
        "manifests_missing": pairs(&r.manifests_missing),
    })
}

/// Collect the garbage of the registry: blobs and (with
/// `CARGOHOLD_GC_DELETE_UNTAGGED`) manifests that no tag reaches. Unreferenced blobs
/// younger than `grace_seconds` (negative: the default, one hour; 0: none) are spared,
/// so pushes under way keep their blobs. `flags` is a sum of `CARGOHOLD_GC_*`; other
/// bits are `INVALID_ARGUMENT`. `progress(ctx, stage, done, total)` (when not NULL) is
/// called on this thread with the stage `"mark"` (repositories read) and `"sweep"`
/// (blobs considered). `*out_json` (when not NULL) receives the report: `{"dry_run",
/// "repositories", "manifests_kept", "marked", "manifests_deleted": [{"repository",
/// "digest"}], "blobs_deleted": [digests], "bytes_deleted", "links_deleted",
/// "blobs_spared", "manifests_missing"}`.
///
/// # Safety
/// `progress` is callable with `ctx` or NULL; `out_json` is writable or NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cargohold_registry_gc(
    reg: *const cargohold_registry,
    flags: u32,
    grace_seconds: i64,
    progress: cargohold_stage_fn,
    ctx: *mut c_void,
    out_json: *mut *mut c_char,
    err: *mut *mut cargohold_error,
) -> cargohold_status {
    // SAFETY: the arguments follow the documented contract.
    unsafe {
        call(err, || {
            let r = registry(reg)?;
            if flags & !(CARGOHOLD_GC_DRY_RUN | CARGOHOLD_GC_DELETE_UNTAGGED) != 0 {
                return Err(Error::new(
                    ErrorKind::InvalidArgument,
                    "gc",
                    flags,
                    "unknown flags",
                ));
            }
            let mut stages = Stages::new(progress, ctx);
            let mut report = |p: GcProgress| match p {
                GcProgress::Marked { done, total, .. } => stages.report(c"mark", done, total),
                GcProgress::Swept { done, total } => stages.report(c"sweep", done, total),
            };
            let opts = GcOptions {
                dry_run: flags & CARGOHOLD_GC_DRY_RUN != 0,
                delete_untagged: flags & CARGOHOLD_GC_DELETE_UNTAGGED != 0,
                grace: seconds(grace_seconds, gc::DEFAULT_GRACE),
                progress: progress
                    .is_some()
                    .then_some(&mut report as &mut dyn FnMut(_)),
            };
            let done = gc::collect(r, opts)?;
            if !out_json.is_null() {
                strings::put(out_json, strings::json(&gc_json(&done))?);
            }
            Ok(())
        })
    }
}

fn damage_json(d: &Damage) -> Value {
    let mut v = match d {
        Damage::CorruptBlob { digest, actual } => {
            json!({"digest": digest.to_string(), "actual": actual.to_string()})
        }
        Damage::EmptyBlobDir { digest } => json!({"digest": digest.to_string()}),
        Damage::BadLink { key } => json!({"key": key.to_string()}),
        Damage::DanglingLink { key, digest } => {
            json!({"key": key.to_string(), "digest": digest.to_string()})
        }
        Damage::DanglingTag { repository, tag } => json!({"repository": repository, "tag": tag}),
        Damage::UnreadableManifest { repository, digest } => {
            json!({"repository": repository, "digest": digest.to_string()})
        }
        Damage::MissingReference {
            repository,
            manifest,
            missing,
        } => json!({
            "repository": repository,
            "manifest": manifest.to_string(),
            "missing": missing.to_string(),
        }),
        Damage::StaleUpload { repository, id } => json!({"repository": repository, "id": id}),
    };
    v["kind"] = Value::String(d.kind().to_owned());
    v
}

fn fsck_json(r: &FsckReport) -> Value {
    json!({
        "clean": r.is_clean(),
        "unrepaired": r.unrepaired(),
        "blobs_checked": r.blobs_checked,
        "bytes_checked": r.bytes_checked,
        "repositories": r.repositories,
        "links_checked": r.links_checked,
        "manifests_checked": r.manifests_checked,
        "findings": r.findings.iter().map(|f| {
            let mut v = damage_json(&f.damage);
            v["repaired"] = Value::Bool(f.repaired);
            v["quarantined"] = f.quarantined.as_ref().map_or(Value::Null, |k| Value::String(k.to_string()));
            v
        }).collect::<Vec<_>>(),
    })
}

/// Check the registry's integrity: every blob hashed against its name (on `threads`
/// threads, 0: two), every link, tag and manifest read, uploads older than
/// `upload_age_seconds` (negative: the default, seven days) reported as stale. With
/// `repair`, corrupt blobs are moved to a quarantine and dangling links, tags and stale
/// uploads removed. Damage is not an error: the call is `OK` and the report lists it.
/// `progress(ctx, stage, done, total)` (when not NULL) is called on this thread with
/// the stage `"blobs"` (blobs hashed) and `"repositories"` (repositories checked).
/// `*out_json` (when not NULL) receives `{"clean", "unrepaired", "blobs_checked",
/// "bytes_checked", "repositories", "links_checked", "manifests_checked", "findings":
/// [{"kind" (`corrupt_blob`, `empty_blob_dir`, `bad_link`, `dangling_link`,
/// `dangling_tag`, `unreadable_manifest`, `missing_reference`, `stale_upload`), the
/// kind's fields, "repaired", "quarantined"}]}`.
///
/// # Safety
/// `progress` is callable with `ctx` or NULL; `out_json` is writable or NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cargohold_registry_fsck(
    reg: *const cargohold_registry,
    repair: bool,
    upload_age_seconds: i64,
    threads: u32,
    progress: cargohold_stage_fn,
    ctx: *mut c_void,
    out_json: *mut *mut c_char,
    err: *mut *mut cargohold_error,
) -> cargohold_status {
    // SAFETY: the arguments follow the documented contract.
    unsafe {
        call(err, || {
            let r = registry(reg)?;
            let mut stages = Stages::new(progress, ctx);
            let mut report = |p: FsckProgress| match p {
                FsckProgress::Blob { done, total, .. } => stages.report(c"blobs", done, total),
                FsckProgress::Repository { done, total, .. } => {
                    stages.report(c"repositories", done, total)
                }
            };
            let opts = FsckOptions {
                repair,
                upload_age: seconds(upload_age_seconds, fsck::DEFAULT_UPLOAD_AGE),
                threads: match threads {
                    0 => FsckOptions::default().threads,
                    n => n as usize,
                },
                progress: progress
                    .is_some()
                    .then_some(&mut report as &mut dyn FnMut(_)),
            };
            let done = fsck::check(r, opts)?;
            if !out_json.is_null() {
                strings::put(out_json, strings::json(&fsck_json(&done))?);
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negative_seconds_mean_the_default() {
        let d = Duration::from_secs(9);
        assert_eq!(seconds(-1, d), d);
        assert_eq!(seconds(0, d), Duration::ZERO);
        assert_eq!(seconds(5, d), Duration::from_secs(5));
    }
}
