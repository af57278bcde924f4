//! The Salesforce outbound-message SOAP parser and its adapter on arbitrary bytes: no panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sentinel_queue::platform::salesforce;
use serde_json::json;

mod production_stack;

fuzz_target!(|data: &[u8]| production_stack::run(check, data));

fn check(data: &[u8]) {
    let _ = salesforce::parse(data);
    let _ = salesforce::accept(&json!({"organization_id": "00D000000000001AAA"}), data);
}
