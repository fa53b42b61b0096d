//! Docker archives (what `docker save` writes and `docker load` reads) into and out of
//! the registry over C.

use std::ffi::{c_char, c_void};
use std::path::Path;

use regstore::docker_archive::{self, Platform};

use crate::boundary::call;
use crate::error::{cargohold_error, cargohold_status};
use crate::registry::{cargohold_registry, registry};
use crate::streams::{Progress, cargohold_progress_fn};
use crate::strings;

/// Import the image named `name` (a `RepoTags` entry such as `"app:1"`; NULL: the only
/// image) from the docker-archive `file` into `repo:tag`, every layer verified against
/// the config's diff IDs. `progress(ctx, done, 0)` (when not NULL) is called on this
/// thread after each blob with the bytes done so far. `*out_digest` (when not NULL)
/// receives the manifest's digest. `NOT_FOUND` when no image has that name,
/// `INVALID_ARGUMENT` when `name` is NULL and the archive holds several.
///
/// # Safety
/// Strings are NUL-terminated or NULL; `progress` is callable with `ctx` or NULL;
/// `out_digest` is writable or NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cargohold_docker_archive_import(
    reg: *const cargohold_registry,
    file: *const c_char,
    name: *const c_char,
    repo: *const c_char,
    tag: *const c_char,
    progress: cargohold_progress_fn,
    ctx: *mut c_void,
    out_digest: *mut *mut c_char,
    err: *mut *mut cargohold_error,
) -> cargohold_status {
    // SAFETY: the arguments follow the documented contract.
    unsafe {
        call(err, || {
            let r = registry(reg)?;
            let file = strings::required(file, "file")?;
            let name = strings::optional(name, "name")?;
            let repo = strings::required(repo, "repo")?;
            let tag = strings::required(tag, "tag")?;
            let mut p = Progress::new(progress, ctx);
            let t = docker_archive::import(r, Path::new(file), name, repo, tag, &mut |_, n| {
                p.add(n, 0)
            })?;
            if !out_digest.is_null() {
                strings::put(out_digest, strings::to_c(t.digest.to_string(), "digest")?);
            }
            Ok(())
        })
    }
}

/// Export `repo:reference` (tag or digest) as the docker-archive `file` (written under a
/// temporary name and renamed into place), its image named `repo_tag` (`"name:tag"`;
/// NULL: `repo:reference` when `reference` is a tag, else unnamed). From an index, the
/// child for `platform` (`"os/arch[/variant]"`; NULL: this host) is written.
/// `progress` as for `cargohold_docker_archive_import`.
///
/// # Safety
/// Strings are NUL-terminated or NULL; `progress` is callable with `ctx` or NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cargohold_docker_archive_export(
    reg: *const cargohold_registry,
    repo: *const c_char,
    reference: *const c_char,
    file: *const c_char,
    repo_tag: *const c_char,
    platform: *const c_char,
    progress: cargohold_progress_fn,
    ctx: *mut c_void,
    err: *mut *mut cargohold_error,
) -> cargohold_status {
    // SAFETY: the arguments follow the documented contract.
    unsafe {
        call(err, || {
            let r = registry(reg)?;
            let repo = strings::required(repo, "repo")?;
            let reference = strings::required(reference, "reference")?;
            let file = strings::required(file, "file")?;
            let repo_tag = strings::optional(repo_tag, "repo_tag")?;
            let platform = strings::optional(platform, "platform")?
                .map(Platform::parse)
                .transpose()?;
            let mut p = Progress::new(progress, ctx);
            docker_archive::export(
                r,
                repo,
                reference,
                Path::new(file),
                repo_tag,
                platform.as_ref(),
                &mut |_, n| p.add(n, 0),
            )?;
            Ok(())
        })
    }
}
