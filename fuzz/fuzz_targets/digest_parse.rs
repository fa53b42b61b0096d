//! Digest parsing never panics, and whatever it accepts round-trips exactly and names
//! only lower-case hex of the algorithm's length (so it is safe as a path component).
#![no_main]

use cargohold_core::Digest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(d) = Digest::parse(s) {
        assert_eq!(d.to_string(), s);
        assert_eq!(d.hex().len(), d.algorithm().hex_len());
        assert!(d.hex().bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    }
});
