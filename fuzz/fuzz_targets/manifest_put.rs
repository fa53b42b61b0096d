//! Arbitrary manifest bytes (and repository names and tags) put into an in-memory
//! registry: a refusal is a typed error, never a panic, and an accepted manifest reads
//! back byte-identical under its digest.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use regstore::Registry;
use regstore::drivers::Memory;

#[derive(Debug, Arbitrary)]
struct Input {
    repo: String,
    tag: String,
    bytes: Vec<u8>,
    content_type: Option<String>,
}

fuzz_target!(|input: Input| {
    let _ = regstore::names::check_repository(&input.repo);
    let _ = regstore::names::check_tag(&input.tag);
    let reg = Registry::open(Memory::default());
    if let Ok(d) = reg.put_manifest("fuzz/repo", "t", &input.bytes, input.content_type.as_deref()) {
        let m = reg.get_manifest("fuzz/repo", &d.to_string()).unwrap();
        assert_eq!(m.bytes, input.bytes);
    }
});
