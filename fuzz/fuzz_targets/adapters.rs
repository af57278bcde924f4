//! Every platform adapter on any JSON value: no panic, and whatever an adapter accepts validates
//! against the canonical message's schema.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sentinel_queue::{canonical, platform::Platform};

mod production_stack;

fuzz_target!(|data: &[u8]| production_stack::run(check, data));

fn check(data: &[u8]) {
    let Ok(payload) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    for &platform in Platform::ALL {
        if let Ok(message) = platform.to_canonical(&payload) {
            let value = serde_json::to_value(&message).expect("a canonical message serializes");
            if let Err(error) = canonical::validate(&value) {
                panic!("the {platform} adapter produced an invalid message: {error}: {value}");
            }
        }
    }
}
