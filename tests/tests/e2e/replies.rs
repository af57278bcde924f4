//! End to end: a platform's webhook is acknowledged by the gateway, healed and answered by the
//! worker with the real model, and the reply reaches a fake platform API on loopback.

use std::time::Duration;

use sentinel_e2e::{meta_signature, slack_signature, wait_jobs, Stack};
use sentinel_queue::{kinds, Job, JobStatus};
use serde_json::{json, Value};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

const WAIT: Duration = Duration::from_secs(180);

async fn stack(pool_options: PgPoolOptions, options: PgConnectOptions) -> Stack {
    Stack::start(pool_options, options, 24).await
}

/// Waits for the inbound job, the conversation's turn that answers it (`agent.reply`) and its
/// delivery; returns the inbound job's result with the turn's `reply` and `delivery`.
async fn replied(stack: &Stack) -> (Value, Job) {
    let inbound = wait_jobs(&stack.pool, kinds::WEBHOOK_INBOUND, 1, WAIT).await;
    assert_eq!(inbound.len(), 1);
    assert_eq!(
        inbound[0].status,
        JobStatus::Succeeded,
        "{:?}",
        inbound[0].last_error
    );
    let inbound_result = inbound[0].result.clone().unwrap_or(Value::Null);
    assert_eq!(
        inbound_result["turn"]["mode"], "builtin",
        "{inbound_result}"
    );
    let turns = wait_jobs(&stack.pool, kinds::AGENT_REPLY, 1, WAIT).await;
    assert_eq!(turns.len(), 1);
    assert_eq!(
        turns[0].status,
        JobStatus::Succeeded,
        "{:?}",
        turns[0].last_error
    );
    assert_eq!(turns[0].input["inbound_job_id"], json!(inbound[0].id));
    let answered = turns[0].result.clone().unwrap_or(Value::Null);
    let reply = answered["reply"].as_str().unwrap();
    assert!(!reply.trim().is_empty(), "{answered}");
    let deliveries = wait_jobs(&stack.pool, kinds::REPLY_DELIVER, 1, WAIT).await;
    assert_eq!(deliveries.len(), 1);
    assert_eq!(answered["delivery"]["job_id"], json!(deliveries[0].id));
    // The healed message as the inbound job has it, with the reply its turn sent.
    let mut result = inbound_result;
    result["reply"] = answered["reply"].clone();
    result["delivery"] = answered["delivery"].clone();
    (result, deliveries[0].clone())
}

const TELEGRAM_UPDATE: &str = r#"{"update_id": 815, "message": {"message_id": 52, "date": 1735689600,
  "from": {"id": 7001, "is_bot": false, "first_name": "Ada"},
  "chat": {"id": 7001, "first_name": "Ada", "type": "private"}, "text": "Where is my order?"}}"#;

async fn telegram_source(stack: &Stack) -> uuid::Uuid {
    stack
        .gateway
        .source(
            &stack.key,
            json!({"platform": "telegram", "secrets": {"secret_token": "tg-secret-0123456789"},
                   "reply": {"bot_token": "123456:TEST-token"},
                   "system_prompt": "You are the support agent of a bakery."}),
        )
        .await
}

#[sqlx::test(migrator = "sentinel_queue::MIGRATOR")]
async fn a_telegram_message_is_answered_in_its_chat(
    pool_options: PgPoolOptions,
    options: PgConnectOptions,
) {
    let _machine = sentinel_e2e::shared().await;
    let stack = stack(pool_options, options).await;
    let source = telegram_source(&stack).await;
    stack
        .gateway
        .hook(
            source,
            &[(
                "x-telegram-bot-api-secret-token",
                "tg-secret-0123456789".into(),
            )],
            TELEGRAM_UPDATE,
        )
        .await;

    let (result, delivery) = replied(&stack).await;
    assert_eq!(result["healed_by"], "adapter");
    assert_eq!(result["message"]["conversation_id"], "7001");
    assert_eq!(
        delivery.status,
        JobStatus::Succeeded,
        "{:?}",
        delivery.last_error
    );
    let requests = stack.platform.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].path, "/bot123456:TEST-token/sendMessage");
    assert_eq!(requests[0].body["chat_id"], 7001);
    assert_eq!(requests[0].body["text"], result["reply"]);
    assert_eq!(requests[0].body["reply_parameters"]["message_id"], 52);
    assert_eq!(
        delivery.result.clone().unwrap()["platform_message_id"],
        9001
    );

    // The typed view of the healed message, and the schema it follows.
    let get = |path: String| {
        stack
            .gateway
            .client
            .get(stack.gateway.url(&path))
            .bearer_auth(&stack.key)
            .send()
    };
    let inbound_id = delivery.input["inbound_job_id"].as_i64().unwrap();
    let view = get(format!("/v1/jobs/{inbound_id}/message")).await.unwrap();
    assert_eq!(view.status(), 200);
    let view: Value = view.json().await.unwrap();
    assert_eq!(view["healed_by"], "adapter");
    assert_eq!(view["message"]["text"], "Where is my order?");
    assert_eq!(view["reply"], result["reply"]);
    let not_healed = get(format!("/v1/jobs/{}/message", delivery.id))
        .await
        .unwrap();
    assert_eq!(not_healed.status(), 404);
    let schema: Value = get("/v1/schemas/canonical-message".into())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(schema, sentinel_queue::canonical::schema());
    stack.stop().await;
}

#[sqlx::test(migrator = "sentinel_queue::MIGRATOR")]
async fn a_whatsapp_message_is_answered_to_its_sender(
    pool_options: PgPoolOptions,
    options: PgConnectOptions,
) {
    let _machine = sentinel_e2e::shared().await;
    let stack = stack(pool_options, options).await;
    let source = stack
        .gateway
        .source(
            &stack.key,
            json!({"platform": "whatsapp",
                   "secrets": {"app_secret": "meta-secret-0123456789", "verify_token": "verify-0123"},
                   "reply": {"access_token": "EAAG-test", "phone_number_id": "106540352242922"}}),
        )
        .await;
    let body = json!({"object": "whatsapp_business_account", "entry": [{"id": "102290129340398",
        "changes": [{"field": "messages", "value": {"messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
            "contacts": [{"profile": {"name": "Sheena Nelson"}, "wa_id": "16505551234"}],
            "messages": [{"from": "16505551234", "id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=",
                "timestamp": "1749416383", "type": "text", "text": {"body": "Do you deliver on Sundays?"}}]}}]}]})
    .to_string();
    stack
        .gateway
        .hook(
            source,
            &[(
                "x-hub-signature-256",
                meta_signature("meta-secret-0123456789", &body),
            )],
            &body,
        )
        .await;

    let (result, delivery) = replied(&stack).await;
    assert_eq!(
        delivery.status,
        JobStatus::Succeeded,
        "{:?}",
        delivery.last_error
    );
    let requests = stack.platform.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.path, "/v21.0/106540352242922/messages");
    assert_eq!(request.authorization.as_deref(), Some("Bearer EAAG-test"));
    assert_eq!(request.body["messaging_product"], "whatsapp");
    assert_eq!(request.body["to"], "16505551234");
    assert_eq!(request.body["type"], "text");
    assert_eq!(request.body["text"]["body"], result["reply"]);
    assert_eq!(
        request.body["context"]["message_id"],
        result["message"]["event_id"]
    );
    assert_eq!(
        delivery.result.unwrap()["platform_message_id"],
        "wamid.REPLY"
    );
    stack.stop().await;
}

#[sqlx::test(migrator = "sentinel_queue::MIGRATOR")]
async fn a_slack_message_is_answered_in_its_thread(
    pool_options: PgPoolOptions,
    options: PgConnectOptions,
) {
    let _machine = sentinel_e2e::shared().await;
    let stack = stack(pool_options, options).await;
    let source = stack
        .gateway
        .source(
            &stack.key,
            json!({"platform": "slack", "secrets": {"signing_secret": "slack-secret-0123456789"},
                   "reply": {"bot_token": "xoxb-test"}}),
        )
        .await;
    let body = json!({"token": "x", "team_id": "T061EG9R6", "api_app_id": "A0PNCHHK2",
        "type": "event_callback", "event_id": "Ev0PV52K25", "event_time": 1700000000,
        "event": {"type": "message", "channel": "C2147483705", "user": "U2147483697",
                  "text": "Is the API down?", "ts": "1700000000.000200", "channel_type": "channel"}})
    .to_string();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    stack
        .gateway
        .hook(
            source,
            &[
                ("x-slack-request-timestamp", now.to_string()),
                (
                    "x-slack-signature",
                    slack_signature("slack-secret-0123456789", now, &body),
                ),
            ],
            &body,
        )
        .await;

    let (result, delivery) = replied(&stack).await;
    assert_eq!(
        delivery.status,
        JobStatus::Succeeded,
        "{:?}",
        delivery.last_error
    );
    let requests = stack.platform.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.path, "/api/chat.postMessage");
    assert_eq!(request.authorization.as_deref(), Some("Bearer xoxb-test"));
    assert_eq!(request.body["channel"], "C2147483705");
    assert_eq!(request.body["thread_ts"], "1700000000.000200");
    assert_eq!(request.body["text"], result["reply"]);
    stack.stop().await;
}

#[sqlx::test(migrator = "sentinel_queue::MIGRATOR")]
async fn a_429_is_honoured_without_spending_an_attempt(
    pool_options: PgPoolOptions,
    options: PgConnectOptions,
) {
    let _machine = sentinel_e2e::shared().await;
    let stack = stack(pool_options, options).await;
    stack.platform.answer(
        429,
        vec![("retry-after", "2".into())],
        json!({"ok": false, "error_code": 429, "description": "Too Many Requests: retry after 2",
               "parameters": {"retry_after": 2}}),
    );
    let source = telegram_source(&stack).await;
    stack
        .gateway
        .hook(
            source,
            &[(
                "x-telegram-bot-api-secret-token",
                "tg-secret-0123456789".into(),
            )],
            TELEGRAM_UPDATE,
        )
        .await;

    let (_, delivery) = replied(&stack).await;
    assert_eq!(
        delivery.status,
        JobStatus::Succeeded,
        "{:?}",
        delivery.last_error
    );
    let requests = stack.platform.requests();
    assert_eq!(requests.len(), 2, "one 429, then the delivery");
    let waited = requests[1].at - requests[0].at;
    assert!(
        waited >= Duration::from_millis(1_900),
        "retried after {waited:?}"
    );
    // A snooze gives the attempt back: one more attempt allowed than a delivery starts with (a
    // reply ends by its source's reply_ttl, not by a count), and 2 used.
    assert_eq!(
        (delivery.attempt, delivery.max_attempts),
        (
            2,
            sentinel_queue::kinds::reply_deliver::DELIVERY_ATTEMPTS + 1
        )
    );
    let outcomes: Vec<String> =
        sqlx::query_scalar("SELECT outcome FROM job_attempts WHERE job_id = $1 ORDER BY attempt")
            .bind(delivery.id)
            .fetch_all(&stack.pool)
            .await
            .unwrap();
    assert_eq!(outcomes, ["snoozed", "succeeded"]);
    stack.stop().await;
}

#[sqlx::test(migrator = "sentinel_queue::MIGRATOR")]
async fn a_platform_4xx_is_fatal_and_keeps_the_platform_error(
    pool_options: PgPoolOptions,
    options: PgConnectOptions,
) {
    let _machine = sentinel_e2e::shared().await;
    let stack = stack(pool_options, options).await;
    stack.platform.answer(
        403,
        Vec::new(),
        json!({"ok": false, "error_code": 403, "description": "Forbidden: bot was blocked by the user"}),
    );
    let source = telegram_source(&stack).await;
    stack
        .gateway
        .hook(
            source,
            &[(
                "x-telegram-bot-api-secret-token",
                "tg-secret-0123456789".into(),
            )],
            TELEGRAM_UPDATE,
        )
        .await;
    let (_, delivery) = replied(&stack).await;
    assert_eq!(delivery.status, JobStatus::Dead);
    assert_eq!(delivery.attempt, 1);
    let error = delivery.last_error.unwrap();
    assert_eq!(error["code"], "platform_rejected");
    assert_eq!(error["status"], 403);
    assert!(
        error["body"].as_str().unwrap().contains("bot was blocked"),
        "{error}"
    );
    stack.stop().await;
}

#[sqlx::test(migrator = "sentinel_queue::MIGRATOR")]
async fn a_message_only_the_model_could_heal_is_not_answered_on_a_guess(
    pool_options: PgPoolOptions,
    options: PgConnectOptions,
) {
    let _machine = sentinel_e2e::shared().await;
    let stack = stack(pool_options, options).await;
    let source = telegram_source(&stack).await;
    // A signed webhook whose body some middleware flattened into prose: only the model reads it.
    stack
        .gateway
        .hook(
            source,
            &[(
                "x-telegram-bot-api-secret-token",
                "tg-secret-0123456789".into(),
            )],
            "telegram update 815 | chat 7001 | from Ada (id 7001) | text: Where is my order?",
        )
        .await;
    let inbound = wait_jobs(&stack.pool, kinds::WEBHOOK_INBOUND, 1, WAIT).await;
    assert_eq!(
        inbound[0].status,
        JobStatus::Succeeded,
        "{:?}",
        inbound[0].last_error
    );
    let result = inbound[0].result.clone().unwrap();
    assert_eq!(result["healed_by"], "llm");
    assert!(
        ["medium", "low"].contains(&result["heal_confidence"].as_str().unwrap()),
        "{result}"
    );
    // A message with text (the deterministic sampler reads this payload the same way every time),
    // which the default reply_policy does not answer: only the adapter or repair may trigger one.
    assert_eq!(result["message"]["event_type"], "message", "{result}");
    assert!(!result["message"]["text"].is_null(), "{result}");
    assert_eq!(result["reply"], Value::Null, "{result}");
    assert_eq!(result["reply_skipped"]["healed_by"], "llm", "{result}");
    assert_eq!(result["reply_skipped"]["reply_policy"], "deterministic");
    let deliveries: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE kind = $1")
        .bind(kinds::REPLY_DELIVER)
        .fetch_one(&stack.pool)
        .await
        .unwrap();
    assert_eq!(deliveries, 0, "no reply was queued");
    assert!(
        stack.platform.requests().is_empty(),
        "nothing reached the platform"
    );
    stack.stop().await;
}
