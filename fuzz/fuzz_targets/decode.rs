//! The decoders healing finds layers with (base64, gzip/zlib/deflate, JSON with comments, forms,
//! percent-encoding, entities, XML, YAML, `key=value` lines), on arbitrary text up to 1 MiB, as the
//! payload itself and as a string inside one: no panic, no stack overflow on the production stack,
//! the search within its budgets, no layer nested deeper than healing reads, and a healed message
//! that validates against the canonical schema.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sentinel_queue::{
    canonical,
    decode::{self, Budget, Layers},
    heal, storable,
};
use serde_json::{json, Value as JsonValue};

mod production_stack;

fuzz_target!(|data: &[u8]| production_stack::run(check, data));

fn check(data: &[u8]) {
    let text = String::from_utf8_lossy(data).into_owned();
    for payload in [JsonValue::String(text.clone()), json!({"envelope": {"blob": text}})] {
        let mut layers = Layers::new(payload.clone());
        let all = layers.all();
        assert!(all.len() <= Budget::LAYERS, "{} layers", all.len());
        for layer in all {
            assert!(layer.decodes <= Budget::DECODES, "{} decodes", layer.decodes);
            assert!(
                storable::depth(&layer.value) <= storable::MAX_DEPTH + 1,
                "a layer nests {} deep",
                storable::depth(&layer.value)
            );
        }
        let _ = decode::leaves(all);
        if let Ok(healed) = heal::heal_traced(None, Some(&payload), None) {
            let value = serde_json::to_value(&healed.message).expect("a canonical message serializes");
            if let Err(error) = canonical::validate(&value) {
                panic!("healing produced an invalid message: {error}: {value}");
            }
        }
    }
}
