//! Conversations as lanes: one turn at a time per conversation, in the user's order, a burst as
//! one turn, the history read when a turn starts; every test with a second tenant beside the
//! first.
#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod common;

use std::time::Duration;

use chrono::{DateTime, Utc};
use sentinel_queue::{
    conversations::{self, Arrival},
    kinds,
    tenant_kinds::{claim_for_tenant, TenantClaim},
    FailKind, Job,
};
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

/// A Telegram source of `tenant_id` with `agent`, whose turns start once quiet for `quiet_ms`.
async fn source(pool: &PgPool, tenant_id: Uuid, agent: Value, quiet_ms: i32) -> Uuid {
    sqlx::query_scalar!(
        "INSERT INTO sources (tenant_id, platform, agent, turn_quiet_ms, turn_max_wait_ms)
         VALUES ($1, 'telegram', $2, $3, greatest($3, 8000)) RETURNING id",
        tenant_id,
        agent,
        quiet_ms
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

/// Appends the message `text` to `conversation`, carried by inbound job `inbound`, arrived
/// `ago` before now, with the platform's `order_key`.
async fn say(
    pool: &PgPool,
    (tenant_id, source_id): (Uuid, Uuid),
    conversation: &str,
    inbound: i64,
    text: &str,
    ago: Duration,
    order_key: Option<&str>,
) -> bool {
    let arrived_at: DateTime<Utc> = Utc::now() - chrono::Duration::from_std(ago).unwrap();
    let message = json!({"text": text, "conversation_id": conversation});
    let address = json!({"chat_id": conversation});
    conversations::append(
        pool,
        &Arrival {
            tenant_id,
            source_id,
            conversation_id: conversation,
            inbound_job_id: inbound,
            order_key,
            arrived_at,
            message: &message,
            text,
            address: &address,
            dropped: None,
        },
    )
    .await
    .unwrap()
}

/// The texts of a turn job's messages, in order, and its `message`'s.
async fn turn_texts(pool: &PgPool, job_id: i64) -> (Vec<String>, String) {
    let job = Job::fetch(pool, job_id).await.unwrap().unwrap();
    let input = kinds::agent_turn::Input::of(&job.input).unwrap();
    let texts = input
        .messages
        .iter()
        .map(|m| m["text"].as_str().unwrap().to_owned())
        .collect();
    (texts, input.message["text"].as_str().unwrap().to_owned())
}

/// Claims the tenant's `agent.turn` jobs as a worker of the worker API would.
async fn claim_turns(pool: &PgPool, tenant_id: Uuid) -> Vec<Job> {
    let kinds = vec![kinds::AGENT_TURN.to_owned()];
    claim_for_tenant(
        pool,
        &TenantClaim {
            tenant_id,
            lease_owner: "w1",
            kinds: &kinds,
            max: 10,
            lease: Duration::from_secs(30),
            max_bytes: 1 << 20,
        },
    )
    .await
    .unwrap()
    .jobs
}

const NOW: Duration = Duration::ZERO;
const LONG_AGO: Duration = Duration::from_secs(60);

#[sqlx::test(migrator = "sentinel_queue::MIGRATOR")]
async fn one_turn_at_a_time_per_conversation_with_a_burst_as_one_turn(pool: PgPool) {
    let a = common::tenant(&pool, "a").await;
    let b = common::tenant(&pool, "b").await;
    let a_source = (a, source(&pool, a, json!({"mode": "external"}), 0).await);
    let b_source = (b, source(&pool, b, json!({"mode": "external"}), 0).await);
    // A burst in A's chat 1, one message in its chat 2; B uses the same chat id on its own source.
    for (inbound, text) in [(1, "hi"), (2, "I need help"), (3, "with my order 1234")] {
        assert!(say(&pool, a_source, "1", inbound, text, NOW, None).await);
    }
    assert!(!say(&pool, a_source, "1", 3, "with my order 1234", NOW, None).await);
    say(&pool, a_source, "2", 4, "hello?", NOW, None).await;
    say(&pool, b_source, "1", 5, "b's question", NOW, None).await;

    let started = conversations::start_due_turns(&pool, 100).await.unwrap();
    assert_eq!(started.turns.len(), 3, "{:?}", started.turns);
    let a1 = started
        .turns
        .iter()
        .find(|t| t.source_id == a_source.1 && t.conversation_id == "1")
        .unwrap();
    assert_eq!(a1.kind, kinds::AGENT_TURN);
    assert_eq!(a1.inbound_job_ids, [1, 2, 3]);
    assert_eq!(
        turn_texts(&pool, a1.job_id).await,
        (
            vec![
                "hi".into(),
                "I need help".into(),
                "with my order 1234".into()
            ],
            "with my order 1234".into()
        )
    );

    // A fourth message while the turn is open starts nothing beside it.
    say(&pool, a_source, "1", 6, "are you there?", NOW, None).await;
    let again = conversations::start_due_turns(&pool, 100).await.unwrap();
    assert!(again.turns.is_empty(), "{:?}", again.turns);
    // A's worker takes one turn per conversation; B's turn is not A's to take.
    let claimed = claim_turns(&pool, a).await;
    assert_eq!(claimed.len(), 2);
    assert!(claimed.iter().all(|job| job.tenant_id == a));

    // The turn is answered and completed: the lane frees, the next turn starts with the fourth
    // message and the history holds the burst and the reply.
    let turn = claimed.iter().find(|job| job.id == a1.job_id).unwrap();
    let mut tx = pool.begin().await.unwrap();
    conversations::record_reply(&mut *tx, turn.id, "Let me look at order 1234.", 9_999)
        .await
        .unwrap();
    sentinel_queue::claim::complete(&mut *tx, &turn.lease().unwrap(), json!({}))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let next = conversations::start_due_turns(&pool, 100).await.unwrap();
    assert_eq!(next.turns.len(), 1, "{:?}", next.turns);
    assert_eq!(next.turns[0].inbound_job_ids, [6]);
    let history = conversations::history(&pool, &[next.turns[0].job_id])
        .await
        .unwrap();
    let history: Vec<(String, String)> = history[&next.turns[0].job_id]
        .iter()
        .map(|turn| (turn.role.clone(), turn.text.clone()))
        .collect();
    let expected: Vec<(String, String)> = [
        ("user", "hi"),
        ("user", "I need help"),
        ("user", "with my order 1234"),
        ("agent", "Let me look at order 1234."),
    ]
    .into_iter()
    .map(|(role, text)| (role.into(), text.into()))
    .collect();
    assert_eq!(history, expected);

    // B's conversation saw nothing of A's: its one turn, its own message.
    let b1 = started.turns.iter().find(|t| t.tenant_id == b).unwrap();
    assert_eq!(b1.inbound_job_ids, [5]);
    assert!(conversations::history(&pool, &[b1.job_id])
        .await
        .unwrap()
        .is_empty());
}

#[sqlx::test(migrator = "sentinel_queue::MIGRATOR")]
async fn messages_go_by_the_platforms_order_and_wait_for_quiet(pool: PgPool) {
    let a = common::tenant(&pool, "a").await;
    let b = common::tenant(&pool, "b").await;
    // A waits the default 1.5 s of quiet; B starts at once.
    let a_source = (
        a,
        source(
            &pool,
            a,
            json!({"mode": "forward", "url": "https://agent.example/"}),
            1_500,
        )
        .await,
    );
    let b_source = (b, source(&pool, b, json!({"mode": "external"}), 0).await);
    // Delivered out of order: the update ids put them back.
    for (inbound, key, text) in [
        (1, "102", "third"),
        (2, "100", "first"),
        (3, "101", "second"),
    ] {
        say(&pool, a_source, "c", inbound, text, NOW, Some(key)).await;
    }
    say(&pool, b_source, "c", 4, "b now", NOW, Some("7")).await;

    let started = conversations::start_due_turns(&pool, 100).await.unwrap();
    assert_eq!(
        started.turns.len(),
        1,
        "only B's is due: {:?}",
        started.turns
    );
    assert_eq!(started.turns[0].tenant_id, b);
    let next_due = started.next_due.expect("A's lane is due later");
    let wait = next_due - Utc::now();
    assert!(
        wait > chrono::Duration::milliseconds(500) && wait <= chrono::Duration::milliseconds(1_500),
        "{wait:?}"
    );

    // Quiet for long enough (the messages arrived a minute ago): one forward with all three.
    sqlx::query!(
        "UPDATE conversation_messages SET arrived_at = arrived_at - interval '1 minute'
         WHERE source_id = $1",
        a_source.1
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query!(
        "UPDATE conversations SET next_start_at = now() - interval '1 second' WHERE source_id = $1",
        a_source.1
    )
    .execute(&pool)
    .await
    .unwrap();
    let started = conversations::start_due_turns(&pool, 100).await.unwrap();
    assert_eq!(started.turns.len(), 1);
    assert_eq!(started.turns[0].kind, kinds::AGENT_FORWARD);
    assert_eq!(started.turns[0].inbound_job_ids, [2, 3, 1]);
    assert_eq!(
        turn_texts(&pool, started.turns[0].job_id).await.0,
        ["first", "second", "third"]
    );
}

#[sqlx::test(migrator = "sentinel_queue::MIGRATOR")]
async fn a_retry_keeps_the_lane_and_every_end_frees_it(pool: PgPool) {
    let a = common::tenant(&pool, "a").await;
    let b = common::tenant(&pool, "b").await;
    let a_source = (a, source(&pool, a, json!({"mode": "external"}), 0).await);
    let b_source = (b, source(&pool, b, json!({"mode": "external"}), 0).await);
    say(&pool, a_source, "c", 1, "one", LONG_AGO, None).await;
    say(&pool, b_source, "c", 2, "b one", LONG_AGO, None).await;
    let first = conversations::start_due_turns(&pool, 100).await.unwrap();
    assert_eq!(first.turns.len(), 2);
    let a_turn = first
        .turns
        .iter()
        .find(|t| t.tenant_id == a)
        .unwrap()
        .job_id;
    say(&pool, a_source, "c", 3, "two", NOW, None).await;

    // A retryable failure puts the turn back in the queue: the lane stays held.
    let job = claim_turns(&pool, a).await.pop().unwrap();
    sentinel_queue::claim::fail(
        &pool,
        &job.lease().unwrap(),
        FailKind::Retryable {
            retry_in: Duration::from_secs(60),
        },
        json!("503"),
    )
    .await
    .unwrap();
    assert!(conversations::start_due_turns(&pool, 100)
        .await
        .unwrap()
        .turns
        .is_empty());

    // Canceled while queued: the lane frees and the next turn takes the message that waited.
    sentinel_queue::cancel(&pool, a, a_turn).await.unwrap();
    let next = conversations::start_due_turns(&pool, 100).await.unwrap();
    assert_eq!(next.turns.len(), 1);
    assert_eq!(next.turns[0].inbound_job_ids, [3]);
    let status: String = sqlx::query_scalar!(
        "SELECT status FROM conversation_turns WHERE job_id = $1",
        a_turn
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(status, "canceled");

    // A turn that dies (its attempts spent) frees the lane too; B's turn was never touched.
    let job = claim_turns(&pool, a).await.pop().unwrap();
    sentinel_queue::claim::fail(&pool, &job.lease().unwrap(), FailKind::Fatal, json!("400"))
        .await
        .unwrap();
    say(&pool, a_source, "c", 4, "three", LONG_AGO, None).await;
    assert_eq!(
        conversations::start_due_turns(&pool, 100)
            .await
            .unwrap()
            .turns
            .len(),
        1
    );
    let b_turn = first
        .turns
        .iter()
        .find(|t| t.tenant_id == b)
        .unwrap()
        .job_id;
    let b_status = Job::fetch(&pool, b_turn).await.unwrap().unwrap().status;
    assert_eq!(b_status.as_str(), "queued");
}

#[sqlx::test(migrator = "sentinel_queue::MIGRATOR")]
async fn concurrent_starters_never_start_two_turns_of_one_conversation(pool: PgPool) {
    let a = common::tenant(&pool, "a").await;
    let b = common::tenant(&pool, "b").await;
    let sources = [
        (a, source(&pool, a, json!({"mode": "external"}), 0).await),
        (b, source(&pool, b, json!({"mode": "builtin"}), 0).await),
    ];
    let mut inbound = 0;
    for tenant_source in sources {
        for conversation in 0..50 {
            for text in ["x", "y", "z"] {
                inbound += 1;
                say(
                    &pool,
                    tenant_source,
                    &conversation.to_string(),
                    inbound,
                    text,
                    LONG_AGO,
                    None,
                )
                .await;
            }
        }
    }
    let starters: Vec<_> = (0..4)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let mut turns = Vec::new();
                for _ in 0..10 {
                    turns.extend(
                        conversations::start_due_turns(&pool, 7)
                            .await
                            .unwrap()
                            .turns,
                    );
                }
                turns
            })
        })
        .collect();
    let mut turns = Vec::new();
    for starter in starters {
        turns.extend(starter.await.unwrap());
    }
    assert_eq!(turns.len(), 100);
    let mut lanes: Vec<(Uuid, String)> = turns
        .iter()
        .map(|t| (t.source_id, t.conversation_id.clone()))
        .collect();
    lanes.sort();
    lanes.dedup();
    assert_eq!(lanes.len(), 100, "a conversation got two turns");
    assert!(turns.iter().all(|t| t.inbound_job_ids.len() == 3));
    let builtin = turns
        .iter()
        .filter(|t| t.kind == kinds::AGENT_REPLY)
        .count();
    assert_eq!(builtin, 50, "B's builtin agent answers with agent.reply");
}

#[sqlx::test(migrator = "sentinel_queue::MIGRATOR")]
async fn a_conversation_nobody_answers_drops_its_messages_into_the_history(pool: PgPool) {
    let a = common::tenant(&pool, "a").await;
    let b = common::tenant(&pool, "b").await;
    let a_source = (a, source(&pool, a, json!({"mode": "none"}), 0).await);
    let b_source = (b, source(&pool, b, json!({"mode": "external"}), 0).await);
    say(&pool, a_source, "c", 1, "anyone?", LONG_AGO, None).await;
    say(&pool, b_source, "c", 2, "b", LONG_AGO, None).await;
    let started = conversations::start_due_turns(&pool, 100).await.unwrap();
    assert_eq!(started.turns.len(), 1);
    assert_eq!(started.turns[0].tenant_id, b);
    assert_eq!(started.dropped, 1);
    let dropped = sqlx::query!(
        "SELECT dropped, position FROM conversation_messages WHERE source_id = $1",
        a_source.1
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        dropped.dropped.as_deref(),
        Some("the source's agent is none")
    );
    assert_eq!(dropped.position, Some(1));
    // Nothing is due any more.
    assert!(conversations::start_due_turns(&pool, 100)
        .await
        .unwrap()
        .next_due
        .is_none());
}

#[sqlx::test(migrator = "sentinel_queue::MIGRATOR")]
async fn retention_deletes_idle_conversations_and_keeps_those_waiting(pool: PgPool) {
    let a = common::tenant(&pool, "a").await;
    let b = common::tenant(&pool, "b").await;
    let a_source = (a, source(&pool, a, json!({"mode": "none"}), 0).await);
    // B's source waits an hour of quiet: its message is unanswered when retention runs.
    let b_source = (
        b,
        source(&pool, b, json!({"mode": "external"}), 60_000).await,
    );
    say(&pool, a_source, "c", 1, "old news", LONG_AGO, None).await;
    say(&pool, b_source, "c", 2, "still waiting", LONG_AGO, None).await;
    // A's message is dropped (agent none): its conversation is idle.
    assert_eq!(
        conversations::start_due_turns(&pool, 100)
            .await
            .unwrap()
            .dropped,
        1
    );
    sqlx::query!("UPDATE conversations SET updated_at = now() - interval '2 days'")
        .execute(&pool)
        .await
        .unwrap();
    let purged = sentinel_queue::retention::purge(&pool, Duration::from_secs(86_400), 100)
        .await
        .unwrap();
    assert_eq!(purged.conversations, 1);
    let left: Vec<Uuid> = sqlx::query_scalar!("SELECT tenant_id FROM conversation_messages")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(
        left,
        [b],
        "A's messages went with its conversation, B's stayed"
    );
}

/// The `(type, status, messages)` of the events of turn job `job_id`, in order.
async fn turn_events(pool: &PgPool, job_id: i64) -> Vec<(String, String, i64)> {
    sqlx::query!(
        r#"SELECT type AS "type!", data ->> 'status' AS "status!",
                  (data ->> 'messages')::int8 AS "messages!"
           FROM events WHERE job_id = $1 AND type LIKE 'turn.%' ORDER BY seq"#,
        job_id
    )
    .fetch_all(pool)
    .await
    .unwrap()
    .into_iter()
    .map(|row| (row.r#type, row.status, row.messages))
    .collect()
}

#[sqlx::test(migrator = "sentinel_queue::MIGRATOR")]
async fn a_new_message_interrupts_the_turn_and_the_next_turn_answers_both(pool: PgPool) {
    let a = common::tenant(&pool, "a").await;
    let b = common::tenant(&pool, "b").await;
    let a_source = (a, source(&pool, a, json!({"mode": "external"}), 0).await);
    let b_source = (b, source(&pool, b, json!({"mode": "external"}), 0).await);
    for source_id in [a_source.1, b_source.1] {
        sqlx::query!(
            "UPDATE sources SET turn_on_new_message = 'interrupt' WHERE id = $1 AND tenant_id = $2",
            source_id,
            if source_id == a_source.1 { a } else { b }
        )
        .execute(&pool)
        .await
        .unwrap();
    }
    say(
        &pool,
        a_source,
        "c",
        1,
        "what is my balance",
        LONG_AGO,
        None,
    )
    .await;
    say(&pool, b_source, "c", 2, "b's question", LONG_AGO, None).await;
    let first = conversations::start_due_turns(&pool, 100).await.unwrap();
    assert_eq!(first.turns.len(), 2);
    let turn_of = |tenant| {
        first
            .turns
            .iter()
            .find(|t| t.tenant_id == tenant)
            .unwrap()
            .job_id
    };
    let (a_turn, b_turn) = (turn_of(a), turn_of(b));

    // A's turn is running when the user adds to it: the worker is asked to stop.
    let running = claim_turns(&pool, a).await.pop().unwrap();
    assert_eq!(running.id, a_turn);
    say(
        &pool,
        a_source,
        "c",
        3,
        "on my savings account",
        LONG_AGO,
        None,
    )
    .await;
    let requested: bool = sqlx::query_scalar!(
        r#"SELECT cancel_requested_at IS NOT NULL AS "requested!" FROM jobs WHERE id = $1"#,
        a_turn
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(requested, "the running turn's cancellation is requested");
    assert!(
        conversations::start_due_turns(&pool, 100)
            .await
            .unwrap()
            .turns
            .is_empty(),
        "the lane is held until the worker stops"
    );
    // The worker sees it at its heartbeat and stops: the turn is interrupted, its message back.
    sentinel_queue::acknowledge_cancel(&pool, &running.lease().unwrap())
        .await
        .unwrap();
    let next = conversations::start_due_turns(&pool, 100).await.unwrap();
    assert_eq!(next.turns.len(), 1, "{:?}", next.turns);
    assert_eq!(next.turns[0].inbound_job_ids, [1, 3]);
    let (texts, _) = turn_texts(&pool, next.turns[0].job_id).await;
    assert_eq!(texts, ["what is my balance", "on my savings account"]);
    assert_eq!(
        turn_events(&pool, a_turn).await,
        [
            ("turn.started".to_owned(), "open".to_owned(), 1),
            ("turn.ended".to_owned(), "interrupted".to_owned(), 1),
        ]
    );

    // A queued turn is interrupted at once, in the transaction that appends the message.
    let queued = next.turns[0].job_id;
    say(&pool, a_source, "c", 4, "and checking", LONG_AGO, None).await;
    let status = Job::fetch(&pool, queued).await.unwrap().unwrap().status;
    assert_eq!(status.as_str(), "canceled");
    let again = conversations::start_due_turns(&pool, 100).await.unwrap();
    assert_eq!(again.turns.len(), 1);
    assert_eq!(again.turns[0].inbound_job_ids, [1, 3, 4]);
    // The history positions of the three messages follow each other from the start.
    let positions: Vec<Option<i64>> = sqlx::query_scalar!(
        "SELECT position FROM conversation_messages WHERE source_id = $1 ORDER BY id",
        a_source.1
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(positions, [Some(1), Some(2), Some(3)]);

    // B's conversation, with the same id and setting on another tenant, was never touched.
    assert_eq!(
        Job::fetch(&pool, b_turn)
            .await
            .unwrap()
            .unwrap()
            .status
            .as_str(),
        "queued"
    );
    assert_eq!(
        turn_events(&pool, b_turn).await,
        [("turn.started".to_owned(), "open".to_owned(), 1)]
    );
}

#[sqlx::test(migrator = "sentinel_queue::MIGRATOR")]
async fn typing_goes_once_per_period_for_running_turns_of_sources_that_show_it(pool: PgPool) {
    let a = common::tenant(&pool, "a").await;
    let b = common::tenant(&pool, "b").await;
    let a_source = (a, source(&pool, a, json!({"mode": "external"}), 0).await);
    let b_source = (b, source(&pool, b, json!({"mode": "external"}), 0).await);
    // A turns typing on for its own agent; B leaves the default (off for external agents).
    sqlx::query!(
        "UPDATE sources SET turn_typing = true, reply = '{\"bot_token\": \"t\"}' WHERE id = $1",
        a_source.1
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query!(
        "UPDATE sources SET reply = '{\"bot_token\": \"t\"}' WHERE id = $1",
        b_source.1
    )
    .execute(&pool)
    .await
    .unwrap();
    say(&pool, a_source, "c", 1, "hi", LONG_AGO, None).await;
    say(&pool, b_source, "c", 2, "hi", LONG_AGO, None).await;
    conversations::start_due_turns(&pool, 100).await.unwrap();
    let every = Duration::from_secs(4);
    // Queued turns show nothing: nobody is answering yet.
    assert!(conversations::typing_due(&pool, every, 10)
        .await
        .unwrap()
        .is_empty());
    let a_turn = claim_turns(&pool, a).await.pop().unwrap();
    claim_turns(&pool, b).await.pop().unwrap();
    let due = conversations::typing_due(&pool, every, 10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].job_id, a_turn.id);
    assert_eq!(due[0].platform, "telegram");
    assert_eq!(due[0].address, json!({"chat_id": "c"}));
    // Sent now: not again within the period, by this worker or another.
    assert!(conversations::typing_due(&pool, every, 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        conversations::typing_due(&pool, Duration::ZERO, 10)
            .await
            .unwrap()
            .len(),
        1
    );
}

#[sqlx::test(migrator = "sentinel_queue::MIGRATOR")]
async fn a_conversation_that_never_goes_quiet_is_answered_max_wait_after_its_first_message(
    pool: PgPool,
) {
    let a = common::tenant(&pool, "a").await;
    let b = common::tenant(&pool, "b").await;
    // Both wait for 1.5 s of quiet, at most 8 s.
    let a_source = (
        a,
        source(&pool, a, json!({"mode": "external"}), 1_500).await,
    );
    let b_source = (
        b,
        source(&pool, b, json!({"mode": "external"}), 1_500).await,
    );
    // A's user has written every second for 7.5 s and goes on; B's wrote once, just now.
    for (n, ago_ms) in [7_500_u64, 6_500, 5_500, 4_500, 3_500, 2_500, 1_500, 500]
        .into_iter()
        .enumerate()
    {
        say(
            &pool,
            a_source,
            "c",
            n as i64 + 1,
            &format!("part {n}"),
            Duration::from_millis(ago_ms),
            None,
        )
        .await;
    }
    say(&pool, b_source, "c", 100, "b", NOW, None).await;
    let next_start = |source_id: Uuid| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar!(
                r#"SELECT extract(epoch FROM next_start_at - now())::float8 AS "secs!"
                   FROM conversations WHERE source_id = $1"#,
                source_id
            )
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    // A: 8 s after its first message (0.5 s from now), not 1.5 s after its last (1 s later).
    let a_in = next_start(a_source.1).await;
    assert!((0.3..=0.6).contains(&a_in), "{a_in}");
    // B: once quiet for 1.5 s.
    let b_in = next_start(b_source.1).await;
    assert!((1.2..=1.6).contains(&b_in), "{b_in}");
    tokio::time::sleep(Duration::from_millis(700)).await;
    // Another message now does not push A's turn back: it is due.
    say(&pool, a_source, "c", 9, "part 8", NOW, None).await;
    let started = conversations::start_due_turns(&pool, 100).await.unwrap();
    assert_eq!(started.turns.len(), 1, "{:?}", started.turns);
    assert_eq!(started.turns[0].tenant_id, a);
    assert_eq!(
        started.turns[0].inbound_job_ids,
        (1..=9).collect::<Vec<i64>>()
    );
}
