//! The drift corpus (`queue/tests/drift/corpus.json`): every platform's documented body through
//! the envelopes, re-serialisations and re-typings real pipelines apply, in six scripts. Every case
//! the deterministic lane owns must heal with exactly the expected fields, and no case where an
//! answer would be a guess may be answered without the model. `cargo bench -p sentinel-queue
//! --bench drift` prints the same corpus's accuracy and speed per step.
#![allow(clippy::unwrap_used, clippy::panic)]

#[path = "drift/eval.rs"]
mod eval;

use eval::Verdict;

#[test]
fn every_drift_case_heals_exactly_or_is_left_to_the_model() {
    let corpus = eval::load();
    assert!(
        corpus.cases.len() >= 200,
        "the corpus lost cases: {}",
        corpus.cases.len()
    );
    let mut failures = Vec::new();
    for case in &corpus.cases {
        match case.judge(&case.heal()) {
            Verdict::Healed { wrong, .. } if wrong.is_empty() => {}
            Verdict::Refused => {}
            Verdict::Healed { step, wrong, .. } => {
                failures.push(format!("{} ({step}): {}", case.id, wrong.join("; ")))
            }
            Verdict::LeftToModel(reason) => {
                failures.push(format!("{}: not healed: {reason}", case.id))
            }
            Verdict::Guessed(what) => failures.push(format!("{}: guessed: {what}", case.id)),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} drift cases failed:\n{}",
        failures.len(),
        corpus.cases.len(),
        failures.join("\n")
    );
}

#[test]
fn the_corpus_covers_every_platform_script_and_drift_kind() {
    let corpus = eval::load();
    let has = |f: &dyn Fn(&eval::Case) -> bool| corpus.cases.iter().any(f);
    for platform in sentinel_queue::canonical::platforms() {
        for script in ["latin", "rtl", "cjk", "emoji", "combining", "long"] {
            assert!(
                has(&|case| case.platform == platform && case.id.ends_with(script)),
                "no {platform} case in the {script} script"
            );
        }
    }
    for drift in [
        "platform_body",
        "event_platform_body",
        "proxy_string",
        "proxy_base64",
        "list_of_one",
        "n8n_list",
        "wrapper_body",
        "wrapper_data",
        "wrapper_event",
        "wrapper_payload",
        "wrapper_detail",
        "wrapper_record",
        "wrapper_value",
        "cloudevents",
        "cloudevents_base64",
        "kafka_record",
        "json_string",
        "json_string_twice",
        "json_string_in_wrapper",
        "ndjson",
        "bom",
        "html_quotes",
        "form_field_json",
        "float_ids",
        "string_ids",
        "number_ids",
        "flattened",
        "renamed",
        "camel_case",
        "pascal_case",
        "kebab_case",
        "form_body",
        "key_value_text",
        "yaml_text",
        "broken_trailing_comma",
        "broken_truncated",
        "broken_single_quotes",
        "ambiguous_two_rooms",
    ] {
        assert!(has(&|case| case.drift == drift), "no case of drift {drift}");
    }
    let long = corpus
        .cases
        .iter()
        .filter_map(|case| case.expect.get("text"));
    assert!(
        long.clone().any(|text| text.chars().count() == 2000),
        "no 2,000-character message"
    );
}
