//! Volume names, driver options and plugin protocol bodies from arbitrary input: checks
//! never panic, and whatever they accept is safe to use as one path component.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input {
    name: String,
    options: Vec<(String, String)>,
    body: Vec<u8>,
}

fuzz_target!(|input: Input| {
    if volstore::check_name(&input.name).is_ok() {
        assert!(!input.name.contains('/') && input.name != "." && input.name != "..");
        assert!(!input.name.starts_with('.') && !input.name.is_empty());
    }
    let opts: volstore::Options = input.options.into_iter().collect();
    let _ = volstore::options::parse(&opts);
    use volstore::plugin::protocol as p;
    let _ = serde_json::from_slice::<p::CreateRequest>(&input.body);
    let _ = serde_json::from_slice::<p::MountRequest>(&input.body);
    let _ = serde_json::from_slice::<p::NameRequest>(&input.body);
    let _ = serde_json::from_slice::<p::GetResponse>(&input.body);
    let _ = serde_json::from_slice::<p::ListResponse>(&input.body);
});
