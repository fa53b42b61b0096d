//! Printing: aligned columns for people, JSON for scripts (`--json`).

use crate::Ctx;

/// Print key/value pairs (or a JSON object of them).
pub fn pairs(ctx: &Ctx, rows: &[(&str, String)]) {
    if ctx.json {
        let map: serde_json::Map<String, serde_json::Value> = rows
            .iter()
            .map(|(k, v)| ((*k).to_owned(), serde_json::Value::String(v.clone())))
            .collect();
        println!("{}", serde_json::Value::Object(map));
        return;
    }
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in rows {
        println!("{k:width$}  {v}");
    }
}

/// Print a table with a header (or a JSON array of objects keyed by the header).
pub fn table(ctx: &Ctx, header: &[&str], rows: &[Vec<String>]) {
    if ctx.json {
        let arr: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| {
                serde_json::Value::Object(
                    header
                        .iter()
                        .zip(r)
                        .map(|(h, v)| (h.to_lowercase(), serde_json::Value::String(v.clone())))
                        .collect(),
                )
            })
            .collect();
        println!("{}", serde_json::Value::Array(arr));
        return;
    }
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:w$}  ", w = widths[i]));
            }
        }
        println!("{}", s.trim_end());
    };
    line(header.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
}

/// Print a serialisable value as pretty JSON (inspect commands).
pub fn json_value(value: &serde_json::Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}
