//! The group-commit ingestor: callers resolve only after COMMIT, a row the database refuses fails
//! only the caller that sent it, and nothing is half-written.
#![allow(clippy::unwrap_used)] // Tests and benchmarks fail loudly on purpose.

mod common;

use std::{collections::HashSet, time::Duration};

use common::{count_jobs, tenant, KIND};
use sentinel_queue::{IngestError, Ingestor, IngestorConfig, NewJob};
use serde_json::json;
use sqlx::{
    postgres::{PgConnectOptions, PgPoolOptions},
    PgPool,
};

async fn pool_of(options: PgPoolOptions, connect: PgConnectOptions, n: u32) -> PgPool {
    options
        .max_connections(n)
        .connect_with(connect)
        .await
        .unwrap()
}

/// Installs a deferred constraint trigger: it runs inside COMMIT, after every statement of the
/// batch has succeeded. `body` is the PL/pgSQL it runs for each new job.
async fn run_at_commit(pool: &PgPool, body: &str) {
    let function = format!(
        "CREATE FUNCTION at_commit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN {body} RETURN NULL; END $$"
    );
    sqlx::raw_sql(&function).execute(pool).await.unwrap();
    sqlx::raw_sql(
        "CREATE CONSTRAINT TRIGGER at_commit AFTER INSERT ON jobs DEFERRABLE INITIALLY DEFERRED
         FOR EACH ROW EXECUTE FUNCTION at_commit()",
    )
    .execute(pool)
    .await
    .unwrap();
}

#[sqlx::test(migrator = "sentinel_queue::MIGRATOR")]
async fn concurrent_callers_share_transactions_and_each_gets_its_own_job(
    pool_options: PgPoolOptions,
    connect_options: PgConnectOptions,
) {
    let pool = pool_of(pool_options, connect_options, 8).await;
    let tenant_id = tenant(&pool, "acme").await;
    let (ingestor, task) = Ingestor::spawn(pool.clone(), IngestorConfig::default());

    let callers = (0..500).map(|i| {
        let ingestor = ingestor.clone();
        tokio::spawn(async move {
            ingestor
                .submit(
                    NewJob::new(tenant_id, KIND, json!({"i": i}))
                        .with_dedupe_key(format!("evt-{}", i % 400)),
                )
                .await
        })
    });
    let resolved: Vec<_> = futures::future::join_all(callers)
        .await
        .into_iter()
        .map(|joined| joined.unwrap().unwrap())
        .collect();
    let ids: HashSet<i64> = resolved.iter().map(|e| e.id).collect();
    assert_eq!(
        ids.len(),
        400,
        "100 of the 500 are retries of another event"
    );
    assert_eq!(resolved.iter().filter(|e| e.inserted).count(), 400);
    assert_eq!(count_jobs(&pool, "queued").await, 400);
    let transactions =
        sqlx::query_scalar!(r#"SELECT count(DISTINCT xmin::text) AS "n!" FROM jobs"#)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(
        transactions < 400,
        "rows were grouped: {transactions} transactions for 400 rows"
    );

    drop(ingestor);
    task.await.unwrap();
}

#[sqlx::test(migrator = "sentinel_queue::MIGRATOR")]
async fn no_caller_resolves_before_its_transaction_commits(
    pool_options: PgPoolOptions,
    connect_options: PgConnectOptions,
) {
    let pool = pool_of(pool_options, connect_options, 4).await;
    let tenant_id = tenant(&pool, "acme").await;
    // COMMIT takes 1.5 s: the rows are written, but not yet committed, for that long.
    run_at_commit(&pool, "PERFORM pg_sleep(1.5);").await;
    let (ingestor, task) = Ingestor::spawn(pool.clone(), IngestorConfig::default());

    let caller = {
        let ingestor = ingestor.clone();
        tokio::spawn(async move {
            ingestor
                .submit(NewJob::new(tenant_id, KIND, json!({})))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        !caller.is_finished(),
        "resolved while COMMIT was still running"
    );
    assert_eq!(
        count_jobs(&pool, "queued").await,
        0,
        "not visible before COMMIT"
    );

    let enqueued = caller.await.unwrap().unwrap();
    // Resolution came after COMMIT returned, so any other connection sees the row now.
    let status = sqlx::query_scalar!("SELECT status FROM jobs WHERE id = $1", enqueued.id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(status, "queued");

    drop(ingestor);
    task.await.unwrap();
}

#[sqlx::test(migrator = "sentinel_queue::MIGRATOR")]
async fn a_row_the_database_refuses_fails_only_its_caller(
    pool_options: PgPoolOptions,
    connect_options: PgConnectOptions,
) {
    let pool = pool_of(pool_options, connect_options, 4).await;
    let tenant_id = tenant(&pool, "acme").await;
    run_at_commit(
        &pool,
        "IF NEW.input ? 'poison' THEN RAISE EXCEPTION 'poisoned row'; END IF;",
    )
    .await;
    // A long window and one transaction in flight put all 20 callers into one batch.
    let config = IngestorConfig {
        max_wait: Duration::from_millis(300),
        max_in_flight: 1,
        ..IngestorConfig::default()
    };
    let (ingestor, task) = Ingestor::spawn(pool.clone(), config);

    let callers = (0..20).map(|i| {
        let ingestor = ingestor.clone();
        // Caller 7's webhook carries two events; the second is the poisoned one.
        let jobs = if i == 7 {
            vec![
                NewJob::new(tenant_id, KIND, json!({"i": i})),
                NewJob::new(tenant_id, KIND, json!({"poison": true})),
            ]
        } else {
            vec![NewJob::new(tenant_id, KIND, json!({"i": i}))]
        };
        tokio::spawn(async move { (i, ingestor.submit_all(jobs).await) })
    });
    let results = futures::future::join_all(callers).await;
    for result in results {
        match result.unwrap() {
            (7, Err(IngestError::Database(error))) => {
                assert!(error.to_string().contains("poisoned row"), "{error}")
            }
            (7, other) => panic!("the poisoned caller must fail, got {other:?}"),
            (i, Ok(resolved)) => assert!(resolved[0].inserted, "caller {i}"),
            (i, Err(error)) => panic!("caller {i} carried no bad row and failed: {error}"),
        }
    }
    assert_eq!(
        count_jobs(&pool, "queued").await,
        19,
        "the 19 clean callers"
    );
    let poisoned = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM jobs WHERE input->>'i' = '7' OR input ? 'poison'"#
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(poisoned, 0, "the failed webhook is not half-written");

    drop(ingestor);
    task.await.unwrap();
}

#[sqlx::test(migrator = "sentinel_queue::MIGRATOR")]
async fn nul_in_a_body_a_key_or_a_header_is_stored_with_its_raw_bytes(
    pool_options: PgPoolOptions,
    connect_options: PgConnectOptions,
) {
    let pool = pool_of(pool_options, connect_options, 4).await;
    let acme = tenant(&pool, "acme").await;
    let other = tenant(&pool, "other").await;
    let config = IngestorConfig {
        max_wait: Duration::from_millis(200),
        max_in_flight: 1,
        ..IngestorConfig::default()
    };
    let (ingestor, task) = Ingestor::spawn(pool.clone(), config);
    let raw = b"{\"text\": \"a\\u0000b\", \"k\\u0000\": 1, \"bin\": \"\x00\"}".to_vec();
    let callers = (0..30).map(|i| {
        let ingestor = ingestor.clone();
        let raw = raw.clone();
        tokio::spawn(async move {
            let job = if i % 3 == 0 {
                let mut job = NewJob::new(
                    acme,
                    KIND,
                    json!({"payload": {"text": "a\u{0}b", "k\u{0}": 1}}),
                )
                .with_dedupe_key(format!("nul\u{0}{i}"));
                job.raw_body = Some(raw);
                job.headers = Some(json!({"user-agent": "x\u{0}y"}));
                job
            } else {
                NewJob::new(other, KIND, json!({"i": i}))
            };
            ingestor.submit(job).await
        })
    });
    for result in futures::future::join_all(callers).await {
        assert!(result.unwrap().unwrap().inserted);
    }
    let stored = sqlx::query!(
        r#"SELECT input, raw_body AS "raw_body!", headers AS "headers!", dedupe_key AS "dedupe_key!"
           FROM jobs WHERE tenant_id = $1 LIMIT 1"#,
        acme
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        stored.input,
        json!({"payload": {"text": "a\u{FFFD}b", "k\u{FFFD}": 1}})
    );
    assert_eq!(stored.raw_body, raw, "the raw bytes are kept exactly");
    assert_eq!(stored.headers, json!({"user-agent": "x\u{FFFD}y"}));
    assert!(stored.dedupe_key.starts_with("nul\u{FFFD}"));
    assert_eq!(count_jobs(&pool, "queued").await, 30);

    drop(ingestor);
    task.await.unwrap();
}

/// The platform registry (`sentinel_queue::with_platforms!`) is the one list of platforms: the
/// schema's CHECK on `sources.platform` must take every one of them (a new platform needs a
/// migration, and this test says so) and nothing else.
#[sqlx::test(migrator = "sentinel_queue::MIGRATOR")]
async fn sources_take_every_registered_platform_and_no_other(pool: PgPool) {
    use sentinel_queue::{canonical, platform::Platform};

    let tenant_id = tenant(&pool, "registry").await;
    let insert = |platform: &str| {
        sqlx::query("INSERT INTO sources (tenant_id, platform) VALUES ($1, $2)")
            .bind(tenant_id)
            .bind(platform.to_owned())
            .execute(&pool)
    };
    for platform in Platform::ALL {
        if let Err(error) = insert(platform.as_str()).await {
            panic!("the schema refuses {platform} sources: add it to the CHECK on sources.platform in a migration: {error}");
        }
    }
    for not_a_platform in ["unknown", "Telegram", ""] {
        assert!(
            insert(not_a_platform).await.is_err(),
            "a {not_a_platform:?} source was stored"
        );
    }
    // The canonical schema names the same platforms, and `unknown`.
    let named: Vec<&str> = canonical::platforms().collect();
    assert_eq!(named.len(), Platform::ALL.len() + 1);
    assert_eq!(
        canonical::schema()["properties"]["platform"]["enum"],
        serde_json::json!(named)
    );
}
