//! What people do to a volume's content by hand: fill it from an image once, back it up
//! as a tar, restore it, and prune volumes nobody uses.
//!
//! Content operations hold the volume under an internal mount id while they work, so a
//! volume with options (tmpfs, a device, a size cap) is mounted for them and cannot be
//! removed under them. The tar format is layerstore's: the round trip keeps types,
//! modes, owners, xattrs, times and hardlinks, and a tar is applied confined to the
//! volume as a layer is (a `..` name is `PathEscape`). One difference from a plain
//! `tar -x`: `.wh.` names are read as OCI whiteouts (a file `.wh.x` does not survive an
//! export/import round trip).

use std::ffi::OsStr;
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::Path;

use cargohold_core::{Confine, Dir, Error, ErrorKind, Result, Root};
use layerstore::archive::{self, ApplyOptions};

use super::{LocalDriver, state};
use crate::check_name;

/// What [`LocalDriver::prune`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PruneReport {
    /// The volumes removed, sorted.
    pub removed: Vec<String>,
    /// Disk space their content used (what `du` would count), in bytes.
    pub bytes: u64,
}

fn internal_id(op: &str) -> String {
    format!(
        "cargohold-{op}-{}-{}",
        std::process::id(),
        cargohold_core::atomic::random_suffix()
    )
}

/// Remove everything inside `dir` (not `dir` itself).
fn empty_dir(dir: &Dir) -> Result<()> {
    for (name, _) in dir.entries()? {
        dir.remove_all(&name)?;
    }
    Ok(())
}

/// Disk usage of everything under `dir`, hardlinks counted once.
fn usage(dir: &Dir, seen: &mut std::collections::HashSet<(u64, u64)>) -> Result<u64> {
    let mut total = 0;
    for (name, kind) in dir.entries()? {
        let st = dir.stat(&name)?;
        if seen.insert((st.st_dev, st.st_ino)) {
            total += st.st_blocks as u64 * 512;
        }
        if kind == rustix::fs::FileType::Directory {
            total += usage(&dir.open_dir(&name)?, seen)?;
        }
    }
    Ok(total)
}

/// Copy the tree `src` into the empty `dst` (a tar through a pipe: layerstore's export
/// on one thread, its apply on this one).
fn copy_tree(src: &Root, dst: &Root) -> Result<()> {
    let (r, w) = rustix::pipe::pipe().map_err(|e| Error::errno("populate volume", "pipe", e))?;
    std::thread::scope(|s| {
        let exporter = s.spawn(move || {
            let mut out = BufWriter::with_capacity(1 << 20, File::from(w));
            archive::export_tree_diff(None, src, &mut out)?;
            out.flush()
                .map_err(|e| Error::io("populate volume", "pipe", e))
        });
        let applied = archive::apply(File::from(r), dst, &[], &ApplyOptions::default());
        let exported = exporter.join().expect("the exporter does not panic");
        // The exporter's error explains an apply that saw the stream end early.
        exported?;
        applied.map(drop)
    })
}

impl LocalDriver {
    /// Copy the directory `src` (typically an image's content at the mount point) into
    /// the volume `name` the first time it is used: only if the volume is empty and was
    /// never populated, keeping owners, modes, xattrs, times and hardlinks, and the
    /// root's mode and owner. Two racing first uses copy once (the second waits for the
    /// volume's lock and finds it populated). Returns whether it copied. A failed copy
    /// leaves the volume empty again. The copy is on stable storage (`syncfs`) before
    /// the volume is recorded as populated, so a power cut never leaves the flag over
    /// missing data.
    pub fn populate(&self, name: &str, src: &Path) -> Result<bool> {
        check_name(name)?;
        let src = Root::open(src, Confine::InRoot)?;
        let mut vol = state::lock(self.root.dir(), name)?;
        let mut st = state::read(&vol.dir, name)?;
        if st.populated {
            return Ok(false);
        }
        let id = internal_id("populate");
        let data = self.hold(&mut vol, &mut st, &id)?;
        let copied = (|| {
            let dst = Root::open(&data, Confine::InRoot)?;
            if !dst.dir().entries()?.is_empty() {
                return Ok(false);
            }
            let result = copy_tree(&src, &dst).and_then(|()| {
                let top = src.dir().stat_self()?;
                rustix::fs::fchown(
                    dst.dir(),
                    Some(rustix::fs::Uid::from_raw(top.st_uid)),
                    Some(rustix::fs::Gid::from_raw(top.st_gid)),
                )
                .map_err(|e| Error::errno("populate volume", name, e))?;
                rustix::fs::fchmod(
                    dst.dir(),
                    rustix::fs::Mode::from_raw_mode(top.st_mode & 0o7777),
                )
                .map_err(|e| Error::errno("populate volume", name, e))
            });
            // The copy reaches the disk before the durable record says "populated":
            // otherwise a power cut could leave the flag set over empty files, and the
            // volume would never be populated again.
            let result = result.and_then(|()| {
                rustix::fs::syncfs(dst.dir()).map_err(|e| Error::errno("populate volume", name, e))
            });
            if let Err(e) = result {
                empty_dir(dst.dir())?;
                return Err(e);
            }
            Ok(true)
        })();
        let released = self.release(&mut vol, &mut st, &id);
        let copied = copied?;
        released?;
        st.populated = true;
        state::write(&vol.dir, &st)?;
        Ok(copied)
    }

    /// Write the volume's content to `out` as a tar (layerstore's deterministic form).
    /// The volume is held while it streams, without its lock: other holders may mount
    /// and unmount meanwhile, and it cannot be removed.
    pub fn export(&self, name: &str, out: impl Write) -> Result<()> {
        check_name(name)?;
        let id = internal_id("export");
        let data = {
            let mut vol = state::lock(self.root.dir(), name)?;
            let mut st = state::read(&vol.dir, name)?;
            self.hold(&mut vol, &mut st, &id)?
        };
        let result = Root::open(&data, Confine::InRoot)
            .and_then(|r| archive::export_tree_diff(None, &r, out).map(drop));
        let mut vol = state::lock(self.root.dir(), name)?;
        let mut st = state::read(&vol.dir, name)?;
        let released = self.release(&mut vol, &mut st, &id);
        result?;
        released
    }

    /// Restore a tar (plain, gzip or zstd) into the empty volume `name`. `Conflict` if
    /// the volume is not empty; a bad tar (`Corrupt`, `PathEscape`, ...) leaves it empty.
    pub fn import(&self, name: &str, input: impl Read + Send) -> Result<()> {
        check_name(name)?;
        let mut vol = state::lock(self.root.dir(), name)?;
        let mut st = state::read(&vol.dir, name)?;
        let id = internal_id("import");
        let data = self.hold(&mut vol, &mut st, &id)?;
        let result = (|| {
            let dst = Root::open(&data, Confine::InRoot)?;
            if !dst.dir().entries()?.is_empty() {
                return Err(Error::new(
                    ErrorKind::Conflict,
                    "import volume",
                    name,
                    "the volume is not empty",
                ));
            }
            if let Err(e) = archive::apply(input, &dst, &[], &ApplyOptions::default()) {
                empty_dir(dst.dir())?;
                return Err(e);
            }
            Ok(())
        })();
        let released = self.release(&mut vol, &mut st, &id);
        result?;
        released
    }

    /// Remove volumes without holders: anonymous ones, or all with `all`. A volume that
    /// gains a holder meanwhile is kept.
    pub fn prune(&self, all: bool) -> Result<PruneReport> {
        let mut report = PruneReport::default();
        for name in self.names()? {
            let info = match self.inspect(&name) {
                Ok(i) => i,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            if !info.holders.is_empty() || !(all || info.anonymous) {
                continue;
            }
            let bytes = match self.root.dir().open_dir(OsStr::new(&name)) {
                Ok(d) => usage(&d, &mut Default::default())?,
                Err(_) => 0,
            };
            match self.remove_volume(&name, false) {
                Ok(()) => {
                    report.removed.push(name);
                    report.bytes += bytes;
                }
                Err(e) if matches!(e.kind(), ErrorKind::InUse | ErrorKind::NotFound) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(report)
    }
}
