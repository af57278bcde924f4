//! The kinds Sentinel's own worker runs are listed once in Rust (`kinds::WORKER_KINDS`) and once
//! in SQL (`sentinel_builtin_kinds()`, which `builtin_job_kind()`, the partial index
//! `jobs_worker_claim` and the queries matching it read). Every process checks at start-up that
//! the two agree (`db::check_schema`), and migrating makes them agree (`db::sync_builtin_kinds`);
//! these tests run both against a migrated database and against one that disagrees.
#![allow(clippy::unwrap_used)] // Tests and benchmarks fail loudly on purpose.

use sentinel_queue::{db, kinds};
use sqlx::PgPool;

/// The schema's `builtin_job_kind(kind)`.
async fn builtin_job_kind(pool: &PgPool, kind: &str) -> bool {
    sqlx::query_scalar("SELECT builtin_job_kind($1)")
        .bind(kind)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Makes the schema's list of built-in kinds shorter than the build's, as a database migrated by
/// another build would have it.
async fn shorten_the_schema_list(pool: &PgPool) {
    sqlx::query(
        "CREATE OR REPLACE FUNCTION sentinel_builtin_kinds() RETURNS text[] \
         LANGUAGE sql IMMUTABLE AS $$ SELECT ARRAY['webhook.inbound', 'payload.heal'] $$",
    )
    .execute(pool)
    .await
    .unwrap();
}

#[sqlx::test(migrator = "sentinel_queue::MIGRATOR")]
async fn the_sql_list_of_builtin_kinds_is_the_rust_one(pool: PgPool) {
    db::check_schema(&pool).await.unwrap();
    let index: String =
        sqlx::query_scalar("SELECT indexdef FROM pg_indexes WHERE indexname = 'jobs_worker_claim'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(
        index.contains("sentinel_builtin_kinds()"),
        "the index reads the one list: {index}"
    );
    for kind in kinds::WORKER_KINDS {
        assert!(builtin_job_kind(&pool, kind).await, "{kind}");
    }
    // Tenant-defined kinds and agent.turn are the worker API's.
    for kind in ["doc.summarise", kinds::AGENT_TURN] {
        assert!(!builtin_job_kind(&pool, kind).await, "{kind}");
        assert!(!index.contains(&format!("'{kind}'")), "{kind} in {index}");
    }
}

#[sqlx::test(migrator = "sentinel_queue::MIGRATOR")]
async fn a_database_whose_builtin_kinds_differ_is_refused_at_start_up(pool: PgPool) {
    shorten_the_schema_list(&pool).await;
    let error = db::check_schema(&pool).await.unwrap_err().to_string();
    assert!(error.contains("sentinel_builtin_kinds()"), "{error}");
    assert!(error.contains("WORKER_KINDS"), "{error}");
}

/// Migrating makes the schema's list the build's, whatever it was: a kind added in Rust needs no
/// migration. The index is rebuilt with it, and a second run changes nothing.
#[sqlx::test(migrator = "sentinel_queue::MIGRATOR")]
async fn migrating_makes_the_schema_list_of_builtin_kinds_the_builds(pool: PgPool) {
    let index_oid = || async {
        sqlx::query_scalar::<_, i64>("SELECT 'jobs_worker_claim'::regclass::oid::int8")
            .fetch_one(&pool)
            .await
            .unwrap()
    };
    let unchanged_index = index_oid().await;
    db::sync_builtin_kinds(&pool).await.unwrap();
    assert_eq!(
        index_oid().await,
        unchanged_index,
        "an equal list rebuilt the index"
    );

    shorten_the_schema_list(&pool).await;
    assert!(db::check_schema(&pool).await.is_err());
    db::sync_builtin_kinds(&pool).await.unwrap();
    db::check_schema(&pool).await.unwrap();
    assert_ne!(
        index_oid().await,
        unchanged_index,
        "the index was not rebuilt"
    );
    for kind in kinds::WORKER_KINDS {
        assert!(builtin_job_kind(&pool, kind).await, "{kind}");
    }
}

/// The worker API's claim of one tenant's kind reads the partial index, whatever the plan: the
/// predicate the queries repeat is the index's, word for word.
#[sqlx::test(migrator = "sentinel_queue::MIGRATOR")]
async fn the_worker_api_claim_predicate_matches_the_partial_index(pool: PgPool) {
    let mut conn = pool.acquire().await.unwrap();
    for setting in [
        "SET enable_seqscan = off",
        "SET plan_cache_mode = force_generic_plan",
        "PREPARE ready (uuid, text) AS
             SELECT id FROM jobs
             WHERE tenant_id = $1 AND kind = $2 AND status = 'queued' AND run_at <= now()
               AND kind <> ALL (sentinel_builtin_kinds())
             ORDER BY priority, run_at, id LIMIT 10",
    ] {
        sqlx::query(setting).execute(&mut *conn).await.unwrap();
    }
    let plan: Vec<String> = sqlx::query_scalar(
        "EXPLAIN EXECUTE ready ('00000000-0000-0000-0000-000000000001', 'doc.x')",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    let plan = plan.join("\n");
    assert!(plan.contains("jobs_worker_claim"), "{plan}");
}
