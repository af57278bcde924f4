//! Deterministic healing (repair, key aliasing, the adapters) on arbitrary text: no panic, and a
//! healed message always validates against the canonical schema.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sentinel_queue::{canonical, heal};

mod production_stack;

fuzz_target!(|data: &[u8]| production_stack::run(check, data));

fn check(data: &[u8]) {
    let raw = String::from_utf8_lossy(data);
    let _ = heal::repair(&raw);
    if let Ok((message, _)) = heal::heal(None, None, Some(&raw)) {
        let value = serde_json::to_value(&message).expect("a canonical message serializes");
        if let Err(error) = canonical::validate(&value) {
            panic!("healing produced an invalid message: {error}: {value}");
        }
    }
}
