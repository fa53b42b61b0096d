//! Round-trip latency of `get` through the plugin client and server, against the same
//! call on the local driver directly.
//!
//! ```text
//! cargo run --release -p volstore --example plugin_latency -- [DIR] [CALLS]
//! ```
//!
//! `DIR` (default: a temporary directory) holds the store and the socket; put it on
//! tmpfs or a journaled loop-mounted filesystem. `CALLS` (default 5000) calls of each
//! kind are made, alternating, after 200 of each to warm up; the medians and 99th
//! percentiles are printed.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use volstore::plugin::{Client, serve};
use volstore::{Driver, LocalDriver, Options};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

fn main() -> volstore::Result<()> {
    let mut args = std::env::args().skip(1);
    let tmp;
    let dir = match args.next() {
        Some(d) => PathBuf::from(d),
        None => {
            tmp = tempfile::tempdir().expect("temp dir");
            tmp.path().to_path_buf()
        }
    };
    let calls: usize = args
        .next()
        .map_or(5000, |n| n.parse().expect("CALLS is a number"));

    let local = Arc::new(LocalDriver::open(dir.join("latency-volumes"))?);
    local.create("bench", &Options::new())?;
    let socket = dir.join("latency.sock");
    let server = serve(local.clone(), &socket)?;
    let client = Client::connect(&socket)?;

    let mut direct = Vec::with_capacity(calls);
    let mut plugin = Vec::with_capacity(calls);
    for i in 0..calls + 200 {
        let t = Instant::now();
        let a = local.get("bench")?;
        let d = t.elapsed();
        let t = Instant::now();
        let b = client.get("bench")?;
        let p = t.elapsed();
        assert_eq!(a, b, "the plugin answers what the driver says");
        if i >= 200 {
            direct.push(d);
            plugin.push(p);
        }
    }
    direct.sort();
    plugin.sort();
    let (dm, pm) = (percentile(&direct, 0.5), percentile(&plugin, 0.5));
    println!(
        "get, {calls} calls each: direct median {dm:?} p99 {:?}; through the plugin socket median {pm:?} p99 {:?}; ratio of medians {:.1}x, overhead {:?}",
        percentile(&direct, 0.99),
        percentile(&plugin, 0.99),
        pm.as_secs_f64() / dm.as_secs_f64(),
        pm.saturating_sub(dm),
    );

    drop(client);
    server.shutdown()?;
    local.remove("bench")?;
    Ok(())
}
