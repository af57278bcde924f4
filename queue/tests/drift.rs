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

/// The held-out corpus (`heldout.json`): written from the platforms' and transports'
/// documentation before the code that heals it, and never tuned to. What issue 29 asks of it: at
/// least 95% of expected fields exact, at least 90% of cases healed without the model, and no
/// guess where an answer would be one.
#[test]
fn the_held_out_corpus_heals_95_percent_of_fields_without_a_guess() {
    let corpus = eval::load_named("heldout");
    let (mut fields, mut exact, mut healed, mut misses, mut guesses) =
        (0, 0, 0, Vec::new(), Vec::new());
    for case in &corpus.cases {
        match case.judge(&case.heal()) {
            Verdict::Healed {
                exact: right,
                wrong,
                step,
            } => {
                fields += eval::FIELDS.len();
                exact += right;
                healed += 1;
                if !wrong.is_empty() {
                    misses.push(format!("{} ({step}): {}", case.id, wrong.join("; ")));
                }
            }
            Verdict::LeftToModel(reason) => {
                fields += eval::FIELDS.len();
                misses.push(format!("{}: not healed: {reason}", case.id));
            }
            Verdict::Refused => {}
            Verdict::Guessed(what) => guesses.push(format!("{}: {what}", case.id)),
        }
    }
    let exact_share = exact as f64 / fields as f64;
    let healed_share = healed as f64 / corpus.cases.len() as f64;
    assert!(guesses.is_empty(), "guessed: {guesses:#?}");
    assert!(
        exact_share >= 0.95 && healed_share >= 0.90,
        "{:.1}% of fields exact, {:.1}% healed without the model; misses:\n{}",
        100.0 * exact_share,
        100.0 * healed_share,
        misses.join("\n")
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
