//! `events` partitioned by UTC day (migrations/…_partitioned_events.sql): retention drops whole
//! old days and deletes only what the default partition caught, an insert outside every partition
//! is kept, the readers by seq see every partition in seq order, and migrating a database that
//! already has events keeps every one of them.
#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod common;

use std::{
    borrow::Cow,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use chrono::{DateTime, Utc};
use sentinel_queue::{
    retention::{purge, EVENT_DAYS_AHEAD},
    tables::events::{self, PageBounds, TenantRange},
};
use sqlx::{migrate::Migrator, PgPool};
use uuid::Uuid;

/// The migration that partitions `events`.
const PARTITIONED_EVENTS: i64 = 20261206000010;

const WEEK: Duration = Duration::from_secs(7 * 86_400);

const ALL: PageBounds = PageBounds {
    rows: 10_000,
    inline_data_bytes: 8_192,
    carried_bytes: i64::MAX,
};

/// Appends an event `ago_secs` seconds before the database's now (negative: after it); returns its
/// seq.
async fn event_at(pool: &PgPool, tenant_id: Uuid, ago_secs: f64, label: &str) -> i64 {
    sqlx::query_scalar!(
        "INSERT INTO events (tenant_id, job_id, type, data, created_at)
         VALUES ($1, NULL, 'test.event', jsonb_build_object('label', $3::text),
                 now() - make_interval(secs => $2::float8))
         RETURNING seq",
        tenant_id,
        ago_secs,
        label
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

/// Appends an event at `created_at`; returns its seq.
async fn event_on(pool: &PgPool, tenant_id: Uuid, created_at: DateTime<Utc>, label: &str) -> i64 {
    sqlx::query_scalar!(
        "INSERT INTO events (tenant_id, job_id, type, data, created_at)
         VALUES ($1, NULL, 'test.event', jsonb_build_object('label', $3::text), $2)
         RETURNING seq",
        tenant_id,
        created_at,
        label
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

/// Makes the partitions of the `days` UTC days before today, as a database that has run for a
/// while has them.
async fn past_partitions(pool: &PgPool, days: i32) {
    let made = sqlx::query_scalar!(
        r#"SELECT count(*) FILTER (WHERE made) AS "made!"
           FROM generate_series(1, $1::int) AS back,
                sentinel_events_create_partition((now() AT TIME ZONE 'UTC')::date - back) AS made"#,
        days
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(made, i64::from(days));
}

/// The partition holding the event `seq`.
async fn partition_of(pool: &PgPool, seq: i64) -> String {
    sqlx::query_scalar!(
        r#"SELECT tableoid::regclass::text AS "partition!" FROM events WHERE seq = $1"#,
        seq
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

/// The partition names of `events`, the default one included, sorted.
async fn partitions(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar!(
        r#"SELECT inhrelid::regclass::text AS "name!" FROM pg_inherits
           WHERE inhparent = 'events'::regclass ORDER BY 1"#
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn labels(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar!(r#"SELECT data ->> 'label' AS "label!" FROM events ORDER BY seq"#)
        .fetch_all(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrator = "sentinel_queue::MIGRATOR")]
async fn retention_drops_whole_old_days_and_keeps_the_younger_events(pool: PgPool) {
    let tenant_id = common::tenant(&pool, "a").await;
    past_partitions(&pool, 12).await;
    let day = 86_400.0;
    event_at(&pool, tenant_id, 10.0 * day, "10 days old").await;
    event_at(&pool, tenant_id, 9.0 * day, "9 days old").await;
    // The first instant of the UTC day the cutoff (now - 7 days) falls in: older than the
    // retention, but its day's partition also holds younger events, so it stays until its whole
    // day is older than the retention.
    let cutoff_day = sqlx::query_scalar!(
        r#"SELECT date_trunc('day', now() - interval '7 days', 'UTC') AS "start!""#
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    event_on(&pool, tenant_id, cutoff_day, "the cutoff's day").await;
    event_at(&pool, tenant_id, 6.0 * day, "6 days old").await;
    event_at(&pool, tenant_id, 60.0, "a minute old").await;
    // No partition holds these two: the default partition does, and its rows go one by one once
    // older than the retention.
    let long_ago = event_at(&pool, tenant_id, 40.0 * day, "40 days old").await;
    let far_ahead = event_on(
        &pool,
        tenant_id,
        "2999-01-01T00:00:00Z".parse().unwrap(),
        "year 2999",
    )
    .await;
    assert_eq!(partition_of(&pool, long_ago).await, "events_default");
    assert_eq!(partition_of(&pool, far_ahead).await, "events_default");
    let before = partitions(&pool).await;

    let purged = purge(&pool, WEEK, 1).await.unwrap();

    // The days 12 to 8 before today ended more than 7 days ago; day 7 before today did not.
    assert_eq!(purged.event_partitions, 5, "{purged:?}");
    assert_eq!(
        purged.events, 3,
        "two rows with their partitions, one from the default partition: {purged:?}"
    );
    assert_eq!(
        labels(&pool).await,
        [
            "the cutoff's day",
            "6 days old",
            "a minute old",
            "year 2999"
        ]
    );
    let after = partitions(&pool).await;
    assert_eq!(after.len(), before.len() - 5, "{before:?} -> {after:?}");
    assert!(after.contains(&"events_default".to_owned()));
    let today = Utc::now().date_naive();
    for back in 8..=12 {
        let name = format!(
            "events_p{}",
            (today - chrono::Days::new(back)).format("%Y%m%d")
        );
        assert!(!after.contains(&name), "{name} was dropped: {after:?}");
    }
    for back in 1..=7 {
        let name = format!(
            "events_p{}",
            (today - chrono::Days::new(back)).format("%Y%m%d")
        );
        assert!(after.contains(&name), "{name} is kept: {after:?}");
    }

    let again = purge(&pool, WEEK, 1).await.unwrap();
    assert_eq!((again.events, again.event_partitions), (0, 0));
}

#[sqlx::test(migrator = "sentinel_queue::MIGRATOR")]
async fn partitions_exist_ahead_and_an_insert_outside_them_is_kept(pool: PgPool) {
    let tenant_id = common::tenant(&pool, "a").await;
    // The migration made today and the next days: a row of today lands in today's partition.
    let today = Utc::now().date_naive();
    let now = event_at(&pool, tenant_id, 0.0, "now").await;
    assert_eq!(
        partition_of(&pool, now).await,
        format!("events_p{}", today.format("%Y%m%d"))
    );
    let days_made = partitions(&pool).await.len() - 1;
    assert_eq!(days_made, EVENT_DAYS_AHEAD as usize + 1);

    let epoch = event_on(&pool, tenant_id, DateTime::UNIX_EPOCH, "1970").await;
    let far = event_on(
        &pool,
        tenant_id,
        "9999-12-31T23:59:59Z".parse().unwrap(),
        "year 9999",
    )
    .await;
    // Ten days ahead: after the days made ahead, so the default partition takes it too.
    let ahead = event_at(&pool, tenant_id, -10.0 * 86_400.0, "ten days ahead").await;
    for seq in [epoch, far, ahead] {
        assert_eq!(partition_of(&pool, seq).await, "events_default");
    }

    // Retention keeps what is not older than it, wherever it is.
    let purged = purge(&pool, WEEK, 100).await.unwrap();
    assert_eq!(
        (purged.events, purged.event_partitions),
        (1, 0),
        "1970 goes"
    );
    assert_eq!(labels(&pool).await, ["now", "year 9999", "ten days ahead"]);

    // Making the partition of a day the default partition holds rows of moves them into it
    // (Postgres would refuse to make it otherwise), seq and data unchanged.
    let made = sqlx::query_scalar!(r#"SELECT sentinel_events_ensure_partitions(12) AS "made!""#)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(made, 12 - EVENT_DAYS_AHEAD);
    let ahead_day = today + chrono::Days::new(10);
    // Near midnight the row may fall on the next day; it is in that day's partition either way.
    let partition = partition_of(&pool, ahead).await;
    assert!(
        partition == format!("events_p{}", ahead_day.format("%Y%m%d"))
            || partition
                == format!(
                    "events_p{}",
                    (ahead_day + chrono::Days::new(1)).format("%Y%m%d")
                ),
        "{partition}"
    );
    assert_eq!(labels(&pool).await, ["now", "year 9999", "ten days ahead"]);
    assert_eq!(partition_of(&pool, far).await, "events_default");
    // Again: nothing left to make.
    let made = sqlx::query_scalar!(r#"SELECT sentinel_events_ensure_partitions(12) AS "made!""#)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(made, 0);
}

#[sqlx::test(migrator = "sentinel_queue::MIGRATOR")]
async fn inserts_racing_the_making_of_their_day_never_fail(pool: PgPool) {
    // Ten days ahead has no partition yet: rows of that day go to the default partition, while
    // the day's partition is made and the rows already there move into it.
    let tenant_id = common::tenant(&pool, "a").await;
    let stop = Arc::new(AtomicBool::new(false));
    let inserters: Vec<_> = (0..4)
        .map(|_| {
            let (pool, stop) = (pool.clone(), stop.clone());
            tokio::spawn(async move {
                let mut seqs = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    seqs.push(event_at(&pool, tenant_id, -10.0 * 86_400.0, "racing").await);
                }
                seqs
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let made = sqlx::query_scalar!(r#"SELECT sentinel_events_ensure_partitions(12) AS "made!""#)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(made, 12 - EVENT_DAYS_AHEAD);
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    let mut seqs = Vec::new();
    for inserter in inserters {
        // An insert that failed panics its task: the join fails.
        seqs.extend(inserter.await.expect("every insert succeeds"));
    }
    assert!(seqs.len() > 8, "inserts ran: {}", seqs.len());
    let day = format!(
        "events_p{}",
        (Utc::now().date_naive() + chrono::Days::new(10)).format("%Y%m%d")
    );
    for seq in seqs {
        assert_eq!(partition_of(&pool, seq).await, day, "seq {seq}");
    }
}

#[sqlx::test(migrator = "sentinel_queue::MIGRATOR")]
async fn readers_by_seq_see_every_partition_in_seq_order(pool: PgPool) {
    let alice = common::tenant(&pool, "alice").await;
    let bob = common::tenant(&pool, "bob").await;
    past_partitions(&pool, 3).await;
    // Consecutive seqs land in different partitions, in no order of time: three past days, today,
    // tomorrow and the default partition.
    let day = 86_400.0;
    let ages = [
        2.0 * day,
        0.0,
        -day,
        3.0 * day,
        400.0 * day,
        day,
        -9_000.0 * day,
    ];
    let mut seqs = Vec::new();
    let mut alices = Vec::new();
    for i in 0..28 {
        let tenant_id = if i % 3 == 0 { bob } else { alice };
        let seq = event_at(&pool, tenant_id, ages[i % ages.len()], &i.to_string()).await;
        seqs.push(seq);
        if tenant_id == alice {
            alices.push(seq);
        }
    }
    let spread: std::collections::BTreeSet<String> =
        futures::future::join_all(seqs.iter().map(|&seq| partition_of(&pool, seq)))
            .await
            .into_iter()
            .collect();
    assert_eq!(spread.len(), 6, "{spread:?}");

    // The hub's tail: every tenant's events after a seq.
    let page = events::page_after(&pool, 0, ALL).await.unwrap();
    assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), seqs);
    let page = events::page_after(&pool, seqs[9], ALL).await.unwrap();
    assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), seqs[10..]);
    let bounds = PageBounds { rows: 5, ..ALL };
    let page = events::page_after(&pool, seqs[3], bounds).await.unwrap();
    assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), seqs[4..9]);
    assert!(page.iter().all(|e| e.data.is_some()));

    // A subscriber's catch-up: one tenant's events, never the other's.
    let last = events::last_seq(&pool).await.unwrap();
    assert_eq!(last, *seqs.last().unwrap());
    let range = TenantRange {
        tenant_id: alice,
        after: 0,
        up_to: last,
        job_id: None,
        types: None,
    };
    let page = events::tenant_page(&pool, range, ALL).await.unwrap();
    assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), alices);
    let range = TenantRange {
        after: alices[2],
        up_to: alices[7],
        ..range
    };
    let page = events::tenant_page(&pool, range, ALL).await.unwrap();
    assert_eq!(
        page.iter().map(|e| e.seq).collect::<Vec<_>>(),
        alices[3..=7]
    );

    // A large event's data, read by seq from whichever partition holds it.
    for (i, &seq) in seqs.iter().enumerate() {
        let data = events::read_data(&pool, seq).await.unwrap().unwrap();
        assert_eq!(data, format!(r#"{{"label": "{i}"}}"#));
    }
    assert_eq!(events::read_data(&pool, last + 1).await.unwrap(), None);
}

#[derive(Debug, PartialEq)]
struct StoredEvent {
    seq: i64,
    tenant_id: Uuid,
    job_id: Option<i64>,
    r#type: String,
    data: serde_json::Value,
    created_at: DateTime<Utc>,
}

async fn stored_events(pool: &PgPool) -> Vec<StoredEvent> {
    sqlx::query_as!(
        StoredEvent,
        "SELECT seq, tenant_id, job_id, type, data, created_at FROM events ORDER BY seq"
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

#[sqlx::test(migrations = false)]
async fn migrating_a_database_with_events_keeps_every_one(pool: PgPool) {
    let full = &sentinel_queue::MIGRATOR;
    assert!(
        full.version_exists(PARTITIONED_EVENTS),
        "the migration that partitions events is {PARTITIONED_EVENTS}"
    );
    let before_partitioning = Migrator {
        migrations: Cow::Owned(
            full.iter()
                .filter(|migration| migration.version < PARTITIONED_EVENTS)
                .cloned()
                .collect(),
        ),
        ..Migrator::DEFAULT
    };
    before_partitioning.run(&pool).await.unwrap();

    // A database that ran for a while: events every 7 hours over 45 days, some ahead of time,
    // one in 1999, for two tenants, some of them of jobs.
    let alice = common::tenant(&pool, "alice").await;
    let bob = common::tenant(&pool, "bob").await;
    let job_id = common::enqueue_n(&pool, alice, 1).await[0];
    for hours in (-120..45 * 24).step_by(7) {
        let tenant_id = if hours % 2 == 0 { alice } else { bob };
        event_at(&pool, tenant_id, f64::from(hours) * 3_600.0, "old").await;
    }
    let y1999 = event_on(&pool, bob, "1999-01-01T00:00:00Z".parse().unwrap(), "1999").await;
    let before = stored_events(&pool).await;
    assert!(before.len() > 150);
    assert!(before.iter().any(|e| e.job_id == Some(job_id)));

    full.run(&pool).await.unwrap();

    let kind = sqlx::query_scalar!(
        r#"SELECT relkind::text AS "kind!" FROM pg_class WHERE oid = 'events'::regclass"#
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(kind, "p", "events is partitioned");
    assert_eq!(stored_events(&pool).await, before, "every event, unchanged");

    // Rows up to 31 days back and up to 3 days ahead are in their day's partition, the rest in
    // the default one.
    let misplaced = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM events
           WHERE tableoid::regclass::text
                 <> CASE WHEN (created_at AT TIME ZONE 'UTC')::date
                              BETWEEN (now() AT TIME ZONE 'UTC')::date - 31
                                  AND (now() AT TIME ZONE 'UTC')::date + 3
                         THEN 'events_p' || to_char(created_at AT TIME ZONE 'UTC', 'YYYYMMDD')
                         ELSE 'events_default' END"#
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(misplaced, 0);
    assert_eq!(partition_of(&pool, y1999).await, "events_default");
    // 32 days (31 back and today) plus 3 ahead, and the default partition.
    assert_eq!(partitions(&pool).await.len(), 32 + 3 + 1);

    // The sequence goes on where it was.
    let last = before.last().unwrap().seq;
    let next = event_at(&pool, alice, 0.0, "new").await;
    assert_eq!(next, last + 1);
    let owner =
        sqlx::query_scalar!(r#"SELECT pg_get_serial_sequence('events', 'seq') AS "sequence!""#)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(owner, "public.events_seq_seq");

    // And the code reads them: the job's events, the hub's tail.
    let types = common::event_types(&pool, job_id).await;
    assert_eq!(types, ["job.queued"]);
    let page = events::page_after(&pool, 0, ALL).await.unwrap();
    assert_eq!(page.len(), before.len() + 1);
    assert!(page.windows(2).all(|pair| pair[0].seq < pair[1].seq));
}
