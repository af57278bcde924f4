//! Wake-ups over LISTEN/NOTIFY, and what happens when the LISTEN connection is killed.
#![allow(clippy::unwrap_used)] // Tests and benchmarks fail loudly on purpose.

mod common;

use std::time::{Duration, Instant};

use common::{kinds, tenant, KIND, LEASE};
use sentinel_queue::{
    claim_batch, enqueue, wakeup::LISTENER_APPLICATION_NAME, Listener, NewJob, Woke, JOBS_CHANNEL,
};
use serde_json::json;
use sqlx::PgPool;
use tokio::sync::watch;

async fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Claims one job, waiting on `waiter` between empty claims; returns how it was woken last.
async fn claim_with_wakeups(
    pool: &PgPool,
    waiter: &mut sentinel_queue::Waiter,
    poll: Duration,
) -> (i64, Woke) {
    let mut woke = Woke::Polled;
    loop {
        waiter.mark_seen();
        let jobs = claim_batch(pool, "w", &kinds(), 1, LEASE).await.unwrap();
        if let Some(job) = jobs.first() {
            return (job.id, woke);
        }
        woke = waiter.wait(poll).await;
    }
}

#[sqlx::test(migrator = "sentinel_queue::MIGRATOR")]
async fn a_waiting_claimer_wakes_on_notify_not_on_the_poll(pool: PgPool) {
    let tenant_id = tenant(&pool, "acme").await;
    let (stop, shutdown) = watch::channel(false);
    let (listener, task) =
        Listener::spawn((*pool.connect_options()).clone(), &[JOBS_CHANNEL], shutdown);
    wait_until("LISTEN", Duration::from_secs(5), || listener.is_connected()).await;

    let mut waiter = listener.waiter(JOBS_CHANNEL);
    let poll = Duration::from_secs(60);
    let claimer = {
        let pool = pool.clone();
        tokio::spawn(async move { claim_with_wakeups(&pool, &mut waiter, poll).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let id = enqueue(&pool, &NewJob::new(tenant_id, KIND, json!({})))
        .await
        .unwrap()
        .id;
    let (claimed, woke) = tokio::time::timeout(Duration::from_secs(10), claimer)
        .await
        .expect("claimed well before the 60 s poll")
        .unwrap();
    assert_eq!(claimed, id);
    assert_eq!(woke, Woke::Notified);
    assert!(started.elapsed() < Duration::from_secs(5));

    stop.send(true).unwrap();
    task.await.unwrap();
}

#[sqlx::test(migrator = "sentinel_queue::MIGRATOR")]
async fn jobs_flow_while_listen_is_killed_and_listen_comes_back(pool: PgPool) {
    let tenant_id = tenant(&pool, "acme").await;
    let (stop, shutdown) = watch::channel(false);
    let (listener, task) =
        Listener::spawn((*pool.connect_options()).clone(), &[JOBS_CHANNEL], shutdown);
    wait_until("LISTEN", Duration::from_secs(5), || listener.is_connected()).await;
    assert_eq!(listener.connects(), 1);

    let terminated = sqlx::query_scalar!(
        r#"SELECT count(pg_terminate_backend(pid)) AS "n!" FROM pg_stat_activity
           WHERE application_name = $1 AND datname = current_database()"#,
        LISTENER_APPLICATION_NAME
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(terminated, 1, "exactly one LISTEN connection per process");

    // While LISTEN is down or coming back, a short poll keeps the queue moving.
    let mut waiter = listener.waiter(JOBS_CHANNEL);
    let id = enqueue(&pool, &NewJob::new(tenant_id, KIND, json!({"n": 1})))
        .await
        .unwrap()
        .id;
    let (claimed, _) = tokio::time::timeout(
        Duration::from_secs(10),
        claim_with_wakeups(&pool, &mut waiter, Duration::from_millis(100)),
    )
    .await
    .expect("the poll keeps jobs flowing");
    assert_eq!(claimed, id);

    wait_until("LISTEN to come back", Duration::from_secs(10), || {
        listener.connects() >= 2 && listener.is_connected()
    })
    .await;
    assert!(listener.disconnects() >= 1);

    // And notifications work again: with a 60 s poll, only a NOTIFY can wake the claimer in time.
    let claimer = {
        let pool = pool.clone();
        let mut waiter = listener.waiter(JOBS_CHANNEL);
        tokio::spawn(async move {
            claim_with_wakeups(&pool, &mut waiter, Duration::from_secs(60)).await
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let id = enqueue(&pool, &NewJob::new(tenant_id, KIND, json!({"n": 2})))
        .await
        .unwrap()
        .id;
    let (claimed, woke) = tokio::time::timeout(Duration::from_secs(10), claimer)
        .await
        .expect("woken by NOTIFY after the reconnect")
        .unwrap();
    assert_eq!((claimed, woke), (id, Woke::Notified));

    stop.send(true).unwrap();
    task.await.unwrap();
}
