//! Progress bars on standard error, drawn only when it is a terminal (scripts and logs
//! get the one-line results on standard output and nothing else).

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// One line redrawn in place: a label, a bar when the total is known, counts and bytes.
#[derive(Debug)]
pub struct Bar {
    label: String,
    total: Option<u64>,
    done: u64,
    items: u64,
    tty: bool,
    last: Option<Instant>,
}

const WIDTH: usize = 30;

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

impl Bar {
    /// A bar for `label`, with `total` bytes when known.
    pub fn new(label: &str, total: Option<u64>) -> Bar {
        Bar {
            label: label.to_owned(),
            total,
            done: 0,
            items: 0,
            tty: std::io::stderr().is_terminal(),
            last: None,
        }
    }

    /// Count `bytes` more (and, with `item`, one more blob or layer), redrawing at most
    /// ten times a second.
    pub fn advance(&mut self, bytes: u64, item: bool) {
        self.done += bytes;
        self.items += u64::from(item);
        if !self.tty
            || self
                .last
                .is_some_and(|t| t.elapsed() < Duration::from_millis(100))
        {
            return;
        }
        self.last = Some(Instant::now());
        self.draw();
    }

    fn draw(&self) {
        let counts = format!("{} item(s), {:.1} MiB", self.items, mib(self.done));
        let line = match self.total {
            Some(t) if t > 0 => {
                let filled = ((self.done.min(t) as f64 / t as f64) * WIDTH as f64) as usize;
                format!(
                    "{} [{}{}] {counts} of {:.1} MiB",
                    self.label,
                    "#".repeat(filled),
                    "-".repeat(WIDTH - filled),
                    mib(t)
                )
            }
            _ => format!("{} {counts}", self.label),
        };
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K{line}");
        let _ = err.flush();
    }

    /// Draw the final state and end the line.
    pub fn finish(self) {
        if self.tty {
            self.draw();
            eprintln!();
        }
    }
}

/// A reader that advances a bar by what passes through it.
#[derive(Debug)]
pub struct Counting<'a, R> {
    /// The wrapped reader.
    pub inner: R,
    /// The bar to advance.
    pub bar: &'a mut Bar,
}

impl<R: std::io::Read> std::io::Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bar.advance(n as u64, false);
        Ok(n)
    }
}
