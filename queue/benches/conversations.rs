//! Conversations as lanes, measured (issue 28): what one turn at a time per conversation costs.
//!
//! 1. **Lanes against none.** 1,000 conversations × 3 messages, appended by 16 producers, answered
//!    by 4 claimers that take `agent.turn` jobs with the worker API's claim
//!    (`tenant_kinds::claim_for_tenant`, 50 at a time) and complete them at once. With lanes the
//!    messages go through `conversations::append` and two turn starters; without, each message is
//!    its own `agent.turn` job, enqueued directly (what the gateway did before lanes). Messages
//!    answered per second, turns, and the time from a message to the claim of the turn that
//!    carries it (p50, p99).
//! 2. **A hot conversation.** 200 conversations get one message each while one more gets 100:
//!    the 200's time from message to turn start, against the same run without the hot one.
//! 3. **Idle conversations.** The lane table with 10,000 and 1,000,000 idle conversations: its
//!    bytes per conversation, and the cost of a starter's pass (nothing due, and 100 due).
//!
//! Run: `DATABASE_URL=postgres://… cargo bench -p sentinel-queue --bench conversations`
//! It creates and drops a database of its own next to the one DATABASE_URL names.
//! `SENTINEL_BENCH_IDLE` sets the largest idle count (default 1000000).
#![allow(clippy::unwrap_used)] // Benchmarks fail loudly on purpose.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use chrono::Utc;
use sentinel_queue::{
    complete_many,
    conversations::{self, Arrival},
    db, enqueue_many, kinds,
    tenant::create_tenant,
    tenant_kinds::{claim_for_tenant, TenantClaim},
    wakeup::Listener,
    NewJob,
};
use serde_json::json;
use sqlx::{postgres::PgConnectOptions, Connection, PgConnection, PgPool};
use tokio::sync::watch;
use uuid::Uuid;

const CONVERSATIONS: usize = 1_000;
const PER_CONVERSATION: usize = 3;
const PRODUCERS: usize = 16;
const CLAIMERS: usize = 4;
const CLAIM_MAX: usize = 50;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::var("DATABASE_URL").context("DATABASE_URL must name a Postgres server")?;
    let idle_max: i64 = sentinel_queue::config::var_or("SENTINEL_BENCH_IDLE", 1_000_000)?;
    let admin_options = db::connect_options(&url)?;
    let bench_db = format!("sentinel_bench_conversations_{}", std::process::id());
    let mut admin = PgConnection::connect_with(&admin_options).await?;
    sqlx::raw_sql(&format!("CREATE DATABASE {bench_db}"))
        .execute(&mut admin)
        .await?;
    let options = admin_options.clone().database(&bench_db);
    let outcome = run(options, idle_max).await;
    sqlx::raw_sql(&format!("DROP DATABASE {bench_db} WITH (FORCE)"))
        .execute(&mut admin)
        .await?;
    outcome?;
    Ok(())
}

async fn run(options: PgConnectOptions, idle_max: i64) -> anyhow::Result<Vec<String>> {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(32)
        .connect_with(options.clone().options(db::SESSION_OPTIONS))
        .await?;
    db::migrate(&pool).await?;
    let mut tables = Vec::new();

    let mut rows = Vec::new();
    for lanes in [true, false, true, false] {
        let tenant =
            create_tenant(&pool, &format!("t{}", Uuid::new_v4()), 1_000_000, 1_000_000).await?;
        let source = source(&pool, tenant).await?;
        rows.push((
            lanes,
            throughput(&options, &pool, tenant, source, lanes).await?,
        ));
    }
    let mut table = String::from(
        "\n| run | messages | turns | messages answered/s | message → claim p50 | p99 |\n|---|---|---|---|---|---|\n",
    );
    for (lanes, run) in &rows {
        table.push_str(&format!(
            "| {} | {} | {} | {:.0} | {:.1} ms | {:.1} ms |\n",
            if *lanes { "lanes" } else { "no lanes" },
            run.messages,
            run.turns,
            run.per_sec,
            run.p50_ms,
            run.p99_ms
        ));
    }
    let mean = |lanes: bool| {
        let picked: Vec<f64> = rows
            .iter()
            .filter(|(l, _)| *l == lanes)
            .map(|(_, r)| r.per_sec)
            .collect();
        picked.iter().sum::<f64>() / picked.len() as f64
    };
    table.push_str(&format!(
        "\nratio (lanes / no lanes, mean of the runs): {:.2}\n",
        mean(true) / mean(false)
    ));
    println!("{table}");
    tables.push(table);

    let mut table = String::from(
        "\n| run | the 200's message → turn start p50 | p99 | max |\n|---|---|---|---|\n",
    );
    for hot in [false, true, false, true] {
        let tenant =
            create_tenant(&pool, &format!("t{}", Uuid::new_v4()), 1_000_000, 1_000_000).await?;
        let source = source(&pool, tenant).await?;
        let (p50, p99, max) = neighbours(&pool, tenant, source, hot).await?;
        table.push_str(&format!(
            "| {} | {p50:.1} ms | {p99:.1} ms | {max:.1} ms |\n",
            if hot {
                "with one conversation of 100 messages"
            } else {
                "without it"
            }
        ));
    }
    println!("{table}");
    tables.push(table);

    let mut table = String::from(
        "\n| idle conversations | lane table (heap + indexes) | bytes each | starter pass, none due | starter pass, 100 due |\n|---|---|---|---|---|\n",
    );
    // An idle table: what the runs above left waiting (the hot conversation's rest) goes.
    sqlx::raw_sql(
        "UPDATE jobs SET status = 'canceled', finished_at = now() WHERE status IN ('queued', 'running');
         DELETE FROM conversations;",
    )
    .execute(&pool)
    .await?;
    let tenant = create_tenant(&pool, "idle", 1_000_000, 1_000_000).await?;
    let source = source(&pool, tenant).await?;
    let mut made = 0_i64;
    for target in [10_000_i64, idle_max] {
        if target <= made {
            continue;
        }
        sqlx::query(
            "INSERT INTO conversations (source_id, conversation_id, tenant_id, last_message_at, updated_at)
             SELECT $1, 'idle-' || n, $2, now() - interval '1 hour', now() - interval '1 hour'
             FROM generate_series($3::int8, $4::int8) n",
        )
        .bind(source)
        .bind(tenant)
        .bind(made + 1)
        .bind(target)
        .execute(&pool)
        .await?;
        made = target;
        sqlx::raw_sql("VACUUM ANALYZE conversations")
            .execute(&pool)
            .await?;
        let bytes: i64 = sqlx::query_scalar("SELECT pg_total_relation_size('conversations')")
            .fetch_one(&pool)
            .await?;
        let idle_pass = pass_ms(&pool, 20).await?;
        let due_pass = due_pass_ms(&pool, tenant, source, 100).await?;
        table.push_str(&format!(
            "| {target} | {:.1} MiB | {:.0} | {idle_pass:.2} ms | {due_pass:.2} ms |\n",
            bytes as f64 / (1024.0 * 1024.0),
            bytes as f64 / target as f64
        ));
    }
    println!("{table}");
    tables.push(table);
    Ok(tables)
}

/// An external agent's Telegram source whose turns start at once.
async fn source(pool: &PgPool, tenant: Uuid) -> anyhow::Result<Uuid> {
    Ok(sqlx::query_scalar(
        "INSERT INTO sources (tenant_id, platform, agent, turn_quiet_ms, turn_max_wait_ms)
         VALUES ($1, 'telegram', '{\"mode\": \"external\"}', 0, 0) RETURNING id",
    )
    .bind(tenant)
    .fetch_one(pool)
    .await?)
}

struct Throughput {
    messages: usize,
    turns: usize,
    per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// Appends (or, without lanes, enqueues) `CONVERSATIONS × PER_CONVERSATION` messages and answers
/// them; returns how fast and how long each waited for its claim.
async fn throughput(
    options: &PgConnectOptions,
    pool: &PgPool,
    tenant: Uuid,
    source: Uuid,
    lanes: bool,
) -> anyhow::Result<Throughput> {
    let done = Arc::new(AtomicBool::new(false));
    let waits: Arc<Mutex<Vec<f64>>> = Arc::default();
    let turns = Arc::new(Mutex::new(0_usize));
    let started = Instant::now();
    let mut tasks = Vec::new();
    // Two turn starters as the processes run them: woken by NOTIFY, polling every second.
    let (stop, shutdown) = watch::channel(false);
    let mut starters = Vec::new();
    if lanes {
        let (listener, listen_task) = Listener::spawn(
            options.clone(),
            &[conversations::TURNS_CHANNEL],
            shutdown.clone(),
        );
        while !listener.is_connected() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        starters.push(listen_task);
        for _ in 0..2 {
            starters.push(tokio::spawn(conversations::run_starter(
                pool.clone(),
                listener.waiter(conversations::TURNS_CHANNEL),
                Duration::from_secs(1),
                shutdown.clone(),
            )));
        }
    }
    for n in 0..CLAIMERS {
        let (pool, done, waits, turns) = (pool.clone(), done.clone(), waits.clone(), turns.clone());
        tasks.push(tokio::spawn(async move {
            let kinds = vec![kinds::AGENT_TURN.to_owned()];
            let owner = format!("claimer-{n}");
            while !done.load(Ordering::Relaxed) {
                let claimed = claim_for_tenant(
                    &pool,
                    &TenantClaim {
                        tenant_id: tenant,
                        lease_owner: &owner,
                        kinds: &kinds,
                        max: CLAIM_MAX,
                        lease: Duration::from_secs(60),
                        max_bytes: 4 << 20,
                    },
                )
                .await?
                .jobs;
                if claimed.is_empty() {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    continue;
                }
                let now = Utc::now();
                {
                    let mut waits = waits.lock().unwrap();
                    for job in &claimed {
                        let input = kinds::agent_turn::Input::of(&job.input).unwrap();
                        let messages = if input.messages.is_empty() {
                            vec![input.message.clone()]
                        } else {
                            input.messages.clone()
                        };
                        for message in messages {
                            let sent: chrono::DateTime<Utc> =
                                message["sent_at"].as_str().unwrap().parse().unwrap();
                            waits.push((now - sent).num_microseconds().unwrap() as f64 / 1000.0);
                        }
                    }
                    *turns.lock().unwrap() += claimed.len();
                }
                complete_many(
                    &pool,
                    claimed
                        .iter()
                        .map(|job| (job.lease().unwrap(), json!({"reply": null}))),
                )
                .await?;
            }
            anyhow::Ok(())
        }));
    }
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let mut inbound = (p * 1_000_000) as i64;
                for round in 0..PER_CONVERSATION {
                    for c in (p..CONVERSATIONS).step_by(PRODUCERS) {
                        inbound += 1;
                        let conversation = format!("c{c}");
                        let text = format!("message {round}");
                        let message = json!({"platform": "telegram", "conversation_id": conversation,
                                             "text": text, "sent_at": Utc::now().to_rfc3339()});
                        if lanes {
                            let address = json!({"chat_id": conversation});
                            conversations::append(
                                &pool,
                                &Arrival {
                                    tenant_id: tenant,
                                    source_id: source,
                                    conversation_id: &conversation,
                                    inbound_job_id: inbound,
                                    order_key: None,
                                    arrived_at: Utc::now(),
                                    message: &message,
                                    text: &text,
                                    address: &address,
                                    dropped: None,
                                },
                            )
                            .await?;
                        } else {
                            let job = NewJob::new(tenant, kinds::AGENT_TURN, json!({
                                "source_id": source, "platform": "telegram", "inbound_job_id": inbound,
                                "message": message, "history": [], "address": {"chat_id": conversation},
                            }));
                            enqueue_many(&pool, &[job]).await?;
                        }
                    }
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for producer in producers {
        producer.await??;
    }
    let total = CONVERSATIONS * PER_CONVERSATION;
    let deadline = Instant::now() + Duration::from_secs(600);
    while waits.lock().unwrap().len() < total {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the messages were not all answered"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed();
    done.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await??;
    }
    let _ = stop.send(true);
    for starter in starters {
        starter.await?;
    }
    let mut waits = waits.lock().unwrap().clone();
    waits.sort_by(f64::total_cmp);
    let turns = *turns.lock().unwrap();
    Ok(Throughput {
        messages: total,
        turns,
        per_sec: total as f64 / elapsed.as_secs_f64(),
        p50_ms: percentile(&waits, 0.50),
        p99_ms: percentile(&waits, 0.99),
    })
}

/// 200 conversations with one message each, with or without one more getting 100 at the same
/// time; their turns are completed as they come. Returns the 200's message → turn start times.
async fn neighbours(
    pool: &PgPool,
    tenant: Uuid,
    source: Uuid,
    hot: bool,
) -> anyhow::Result<(f64, f64, f64)> {
    let done = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    {
        let (pool, done) = (pool.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let kinds = vec![kinds::AGENT_TURN.to_owned()];
            while !done.load(Ordering::Relaxed) {
                conversations::start_due_turns(&pool, 256).await?;
                let claimed = claim_for_tenant(
                    &pool,
                    &TenantClaim {
                        tenant_id: tenant,
                        lease_owner: "w",
                        kinds: &kinds,
                        max: CLAIM_MAX,
                        lease: Duration::from_secs(60),
                        max_bytes: 4 << 20,
                    },
                )
                .await?
                .jobs;
                if claimed.is_empty() {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                complete_many(
                    &pool,
                    claimed
                        .iter()
                        .map(|job| (job.lease().unwrap(), json!({"reply": null}))),
                )
                .await?;
            }
            anyhow::Ok(())
        }));
    }
    let mut producers = Vec::new();
    if hot {
        let pool = pool.clone();
        producers.push(tokio::spawn(async move {
            for n in 0..100_i64 {
                say(&pool, tenant, source, "hot", 10_000 + n).await?;
            }
            anyhow::Ok(())
        }));
    }
    for p in 0..4_i64 {
        let pool = pool.clone();
        producers.push(tokio::spawn(async move {
            for c in (p..200).step_by(4) {
                say(&pool, tenant, source, &format!("n{c}"), c).await?;
            }
            anyhow::Ok(())
        }));
    }
    for producer in producers {
        producer.await??;
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let started: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM conversation_turns WHERE source_id = $1 AND conversation_id <> 'hot'",
        )
        .bind(source)
        .fetch_one(pool)
        .await?;
        if started == 200 {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "the 200 turns did not all start");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    done.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await??;
    }
    let mut waits: Vec<f64> = sqlx::query_scalar(
        "SELECT extract(epoch FROM t.created_at - m.arrived_at)::float8 * 1000
         FROM conversation_messages m JOIN conversation_turns t ON t.job_id = m.turn_job_id
         WHERE m.source_id = $1 AND m.conversation_id <> 'hot'",
    )
    .bind(source)
    .fetch_all(pool)
    .await?;
    waits.sort_by(f64::total_cmp);
    Ok((
        percentile(&waits, 0.5),
        percentile(&waits, 0.99),
        waits.last().copied().unwrap_or(0.0),
    ))
}

async fn say(
    pool: &PgPool,
    tenant: Uuid,
    source: Uuid,
    conversation: &str,
    inbound: i64,
) -> anyhow::Result<()> {
    let message = json!({"text": "hi", "conversation_id": conversation});
    conversations::append(
        pool,
        &Arrival {
            tenant_id: tenant,
            source_id: source,
            conversation_id: conversation,
            inbound_job_id: inbound,
            order_key: None,
            arrived_at: Utc::now(),
            message: &message,
            text: "hi",
            address: &json!({"chat_id": conversation}),
            dropped: None,
        },
    )
    .await?;
    Ok(())
}

/// The mean time of `n` starter passes with nothing due.
async fn pass_ms(pool: &PgPool, n: u32) -> anyhow::Result<f64> {
    let started = Instant::now();
    for _ in 0..n {
        let pass = conversations::start_due_turns(pool, 256).await?;
        anyhow::ensure!(pass.turns.is_empty(), "a turn started in an idle table");
    }
    Ok(started.elapsed().as_secs_f64() * 1000.0 / f64::from(n))
}

/// The time of one starter pass with `due` conversations due, then answered so that they are idle
/// again.
async fn due_pass_ms(pool: &PgPool, tenant: Uuid, source: Uuid, due: i64) -> anyhow::Result<f64> {
    let base: i64 =
        sqlx::query_scalar("SELECT coalesce(max(inbound_job_id), 0) FROM conversation_messages")
            .fetch_one(pool)
            .await?;
    for n in 1..=due {
        say(pool, tenant, source, &format!("due-{base}-{n}"), base + n).await?;
    }
    let started = Instant::now();
    let pass = conversations::start_due_turns(pool, 256).await?;
    let elapsed = started.elapsed().as_secs_f64() * 1000.0;
    anyhow::ensure!(
        pass.turns.len() as i64 == due,
        "{} of {due} turns started",
        pass.turns.len()
    );
    sqlx::query("UPDATE jobs SET status = 'canceled', finished_at = now() WHERE status = 'queued'")
        .execute(pool)
        .await?;
    Ok(elapsed)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}
