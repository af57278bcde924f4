//! The model's two jobs through the job API: healing a payload nothing deterministic can read,
//! and `llm.generate` with a JSON schema, streaming progress.

use std::time::Duration;

use sentinel_e2e::{wait_jobs, Stack};
use sentinel_queue::{canonical, kinds, JobStatus};
use serde_json::{json, Value};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

const WAIT: Duration = Duration::from_secs(180);

#[sqlx::test(migrator = "sentinel_queue::MIGRATOR")]
async fn the_model_heals_what_adapter_and_repair_cannot(
    pool_options: PgPoolOptions,
    options: PgConnectOptions,
) {
    let _machine = sentinel_e2e::shared().await;
    let stack = Stack::start(pool_options, options, 24).await;
    // A Telegram update flattened into text by some middleware: no JSON object to repair.
    let payload = "telegram update 815 | chat 7001 | from Ada (id 7001) | text: Where is my order?";
    stack
        .submit(
            json!({"kind": "payload.heal", "input": {"payload": payload, "platform": "telegram"}}),
        )
        .await;

    let jobs = wait_jobs(&stack.pool, kinds::PAYLOAD_HEAL, 1, WAIT).await;
    assert_eq!(
        jobs[0].status,
        JobStatus::Succeeded,
        "{:?}",
        jobs[0].last_error
    );
    let result = jobs[0].result.clone().unwrap();
    assert_eq!(result["healed_by"], "llm");
    assert_eq!(canonical::validate(&result["message"]), Ok(()));
    assert_eq!(result["message"]["platform"], "telegram");
    assert!(result["heal_usage"]["completion_tokens"].as_u64().unwrap() > 0);
    // Grounded in the payload: an id is one the payload contains, never an invented one.
    for field in ["conversation_id", "sender_id"] {
        let id = &result["message"][field];
        assert!(
            id.is_null() || ["815", "7001"].contains(&id.as_str().unwrap()),
            "{field}: {result}"
        );
    }
    stack.stop().await;
}

#[sqlx::test(migrator = "sentinel_queue::MIGRATOR")]
async fn llm_generate_with_a_schema_returns_valid_json_and_streams_progress(
    pool_options: PgPoolOptions,
    options: PgConnectOptions,
) {
    let _machine = sentinel_e2e::shared().await;
    let stack = Stack::start(pool_options, options, 256).await;
    let schema = json!({"type": "object", "additionalProperties": false,
        "required": ["city", "country"],
        "properties": {"city": {"type": "string", "maxLength": 30},
                       "country": {"type": "string", "maxLength": 30}}});
    stack.submit(json!({"kind": "llm.generate", "input": {
            "messages": [{"role": "user", "content": "Name the capital of France and its country as JSON."}],
            "json_schema": schema, "max_tokens": 256}})).await;

    let jobs = wait_jobs(&stack.pool, kinds::LLM_GENERATE, 1, WAIT).await;
    let job = &jobs[0];
    assert_eq!(job.status, JobStatus::Succeeded, "{:?}", job.last_error);
    let result = job.result.clone().unwrap();
    let answer = &result["json"];
    assert!(jsonschema::is_valid(&schema, answer), "{result}");
    let usage = &result["usage"];
    // Generation stopped at the closing brace, far below the 256-token budget.
    assert!(usage["completion_tokens"].as_u64().unwrap() < 64, "{usage}");
    assert!(usage["prompt_tokens"].as_u64().unwrap() > 0, "{usage}");

    let progress: Vec<Value> = sqlx::query_scalar(
        "SELECT data FROM events WHERE job_id = $1 AND type = 'job.progress' ORDER BY seq",
    )
    .bind(job.id)
    .fetch_all(&stack.pool)
    .await
    .unwrap();
    assert!(!progress.is_empty(), "no job.progress events");
    let last = progress.last().unwrap();
    assert_eq!(last["stage"], "generate", "{last}");
    assert_eq!(last["max_tokens"], 256);
    let partial = last["text"].as_str().unwrap();
    assert_eq!(serde_json::from_str::<Value>(partial).unwrap(), *answer);
    stack.stop().await;
}

/// Healing generations have their own share of the model's slots (`SENTINEL_HEAL_SEQS`): with two
/// slots, one of them for healing, three payloads only the model can heal run one at a time, and an
/// `llm.generate` submitted behind them starts at once instead of waiting for them.
#[sqlx::test(migrator = "sentinel_queue::MIGRATOR")]
async fn healing_generations_never_take_the_slots_generations_wait_for(
    pool_options: PgPoolOptions,
    options: PgConnectOptions,
) {
    // Claims race with generation times: nothing else runs meanwhile.
    let _machine = sentinel_e2e::alone().await;
    let stack = Stack::start(pool_options, options, 24).await;
    for chat in [7101, 7102, 7103] {
        let payload = format!("telegram update {chat} | chat {chat} | from Ada (id {chat}) | text: where is my order?");
        stack
            .submit(json!({"kind": "payload.heal", "input": {"payload": payload, "platform": "telegram"}}))
            .await;
    }
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let healing: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM jobs WHERE status = 'running' AND stage = 'llm_heal'",
        )
        .fetch_one(&stack.pool)
        .await
        .unwrap();
        if healing > 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no healing generation started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stack
        .submit(json!({"kind": "llm.generate", "input": {
            "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 8}}))
        .await;

    let generated = wait_jobs(&stack.pool, kinds::LLM_GENERATE, 1, WAIT).await;
    let mut healed = wait_jobs(&stack.pool, kinds::PAYLOAD_HEAL, 3, WAIT).await;
    assert_eq!(
        generated[0].status,
        JobStatus::Succeeded,
        "{:?}",
        generated[0].last_error
    );
    healed.sort_by_key(|job| job.started_at);
    // One healing generation at a time: each started after the one before it ended.
    for pair in healed.windows(2) {
        assert!(
            pair[1].started_at >= pair[0].finished_at,
            "healing jobs {} and {} overlapped",
            pair[0].id,
            pair[1].id
        );
    }
    // The generation did not queue behind the healing jobs waiting for their share.
    let last_heal_started = healed.last().unwrap().started_at;
    assert!(
        generated[0].started_at < last_heal_started,
        "llm.generate started at {:?}, after the last healing job ({last_heal_started:?})",
        generated[0].started_at
    );
    stack.stop().await;
}
