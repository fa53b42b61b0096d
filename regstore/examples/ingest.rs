//! Ingest a file as a blob through a resumable upload, as a registry push does.
//!
//! ```text
//! ingest <root> <file>                  stream, hash, write, commit; print the digest
//!                                       and the seconds taken by append and by commit
//! ingest <root> <file> --kill-at <n>    start an upload, SIGKILL itself after n bytes
//! ingest <root> <file> --resume         resume the upload a killed run left, commit
//! ```
//! Prints one JSON object per run.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::time::Instant;

use regstore::Registry;
use regstore::drivers::Filesystem;

const REPO: &str = "bench/ingest";

/// Passes `limit` bytes through, then kills the process.
struct KillAfter<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for KillAfter<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL)
                .map_err(std::io::Error::from)?;
        }
        let want = buf.len().min(self.left as usize);
        let n = self.inner.read(&mut buf[..want])?;
        self.left -= n as u64;
        Ok(n)
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: ingest <root> <file> [--kill-at <bytes> | --resume]");
        std::process::exit(2);
    }
    let reg = Registry::open(Filesystem::new(&args[1])?);
    let mut file = File::open(&args[2])?;
    let start = Instant::now();
    match args.get(3).map(String::as_str) {
        None => {
            let up = reg.start_upload(REPO)?;
            let size = up.append(0, &file)?;
            let appended = start.elapsed().as_secs_f64();
            let digest = up.digest()?;
            up.commit(&digest, Some(size))?;
            let seconds = start.elapsed().as_secs_f64();
            println!(
                r#"{{"digest":"{digest}","size":{size},"seconds":{seconds:.3},"append_seconds":{appended:.3},"commit_seconds":{:.3}}}"#,
                seconds - appended
            );
        }
        Some("--kill-at") => {
            let n: u64 = args.get(4).ok_or("--kill-at needs a byte count")?.parse()?;
            let up = reg.start_upload(REPO)?;
            eprintln!("upload {}", up.id());
            up.append(
                0,
                KillAfter {
                    inner: file,
                    left: n,
                },
            )?;
            return Err("the input ended before the kill point".into());
        }
        Some("--resume") => {
            let ids = reg.driver().list(&regstore::layout::uploads(REPO))?;
            let id = ids
                .first()
                .ok_or("no upload to resume")?
                .file_name()
                .to_owned();
            let up = reg.resume_upload(REPO, &id)?;
            let at = up.status()?.offset;
            let (_, rehashed) = up.hash_state(at)?;
            file.seek(SeekFrom::Start(at))?;
            let size = up.append(at, &file)?;
            let digest = up.digest()?;
            up.commit(&digest, Some(size))?;
            println!(
                r#"{{"digest":"{digest}","size":{size},"resumed_at":{at},"rehashed_bytes":{rehashed},"seconds":{:.3}}}"#,
                start.elapsed().as_secs_f64()
            );
        }
        Some(other) => return Err(format!("unknown option {other}").into()),
    }
    Ok(())
}
