//! One bad row fails alone: a finish the database refuses, or a result holding U+0000, among other
//! tenants' rows; claims bounded by bytes; fairness by running slots.
#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod common;

use common::{enqueue_n, kinds, tenant, KIND, LEASE};
use sentinel_queue::{
    claim_batch, claim_batch_within, complete, enqueue_many, finish_many_isolated, Finish, Job,
    JobStatus, NewJob, Outcome,
};
use serde_json::json;
use sqlx::PgPool;

#[sqlx::test(migrator = "sentinel_queue::MIGRATOR")]
async fn a_result_with_nul_or_one_the_database_refuses_fails_only_its_own_job(pool: PgPool) {
    let acme = tenant(&pool, "acme").await;
    let other = tenant(&pool, "other").await;
    // A result the database refuses (a trigger stands in for any value it cannot take).
    sqlx::raw_sql(
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN IF NEW.result ? 'refused' THEN RAISE EXCEPTION 'refused result'; END IF; RETURN NEW; END $$;
         CREATE TRIGGER refuse BEFORE UPDATE ON jobs FOR EACH ROW EXECUTE FUNCTION refuse();",
    )
    .execute(&pool)
    .await
    .unwrap();
    enqueue_n(&pool, acme, 2).await;
    enqueue_n(&pool, other, 20).await;
    // One batch holds both tenants' jobs (each claim gives each tenant an equal share).
    let mut jobs = Vec::new();
    while jobs.len() < 22 {
        let claimed = claim_batch(&pool, "w", &kinds(), 22 - jobs.len(), LEASE)
            .await
            .unwrap();
        assert!(!claimed.is_empty());
        jobs.extend(claimed);
    }
    let mut acme_jobs = jobs.iter().filter(|job| job.tenant_id == acme);
    let (nul_job, refused_job) = (acme_jobs.next().unwrap().id, acme_jobs.next().unwrap().id);
    let finishes: Vec<Finish> = jobs
        .iter()
        .map(|job| Finish {
            lease: job.lease().unwrap(),
            outcome: Outcome::Succeeded {
                result: if job.id == nul_job {
                    json!({"text": "a\u{0}b", "k\u{0}": 1})
                } else if job.id == refused_job {
                    json!({"refused": true})
                } else {
                    json!({"ok": true})
                },
            },
        })
        .collect();

    let finished = finish_many_isolated(&pool, &finishes).await.unwrap();
    assert_eq!(finished.len(), 22, "every attempt was ended");
    let after: Vec<Job> =
        Job::fetch_many(&pool, &jobs.iter().map(|job| job.id).collect::<Vec<_>>())
            .await
            .unwrap();
    for job in &after {
        if job.id == refused_job {
            assert_eq!(job.status, JobStatus::Dead);
            let error = job.last_error.as_ref().unwrap();
            assert_eq!(error["code"], "unstorable_outcome");
            assert!(
                error["message"]
                    .as_str()
                    .unwrap()
                    .contains("refused result"),
                "{error}"
            );
        } else if job.id == nul_job {
            assert_eq!(job.status, JobStatus::Succeeded);
            assert_eq!(
                job.result,
                Some(json!({"text": "a\u{FFFD}b", "k\u{FFFD}": 1}))
            );
        } else {
            assert_eq!(job.status, JobStatus::Succeeded, "job {}", job.id);
        }
    }
}

#[sqlx::test(migrator = "sentinel_queue::MIGRATOR")]
async fn a_claim_under_a_byte_budget_takes_what_fits_and_at_least_one(pool: PgPool) {
    let acme = tenant(&pool, "acme").await;
    let jobs: Vec<NewJob> = (0..10)
        .map(|i| {
            let mut job = NewJob::new(acme, KIND, json!({"i": i}));
            job.raw_body = Some(vec![b'x'; 1_000_000]);
            job
        })
        .collect();
    enqueue_many(&pool, &jobs).await.unwrap();
    let claimed = claim_batch_within(&pool, "w", &kinds(), 512, LEASE, Some(3_500_000))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 3, "3 bodies of 1 MB fit 3.5 MB");
    let alone = claim_batch_within(&pool, "w", &kinds(), 512, LEASE, Some(10))
        .await
        .unwrap();
    assert_eq!(
        alone.len(),
        1,
        "a job larger than the budget is claimed alone"
    );
    let rest = claim_batch_within(&pool, "w", &kinds(), 512, LEASE, None)
        .await
        .unwrap();
    assert_eq!(rest.len(), 6);
}

#[sqlx::test(migrator = "sentinel_queue::MIGRATOR")]
async fn a_free_slot_goes_to_the_tenant_with_fewest_running_jobs(pool: PgPool) {
    let busy = tenant(&pool, "busy").await;
    let idle = tenant(&pool, "idle").await;
    enqueue_n(&pool, busy, 6).await;
    // The busy tenant holds three slots with long jobs.
    let held = claim_batch(&pool, "w", &kinds(), 3, LEASE).await.unwrap();
    assert!(held.iter().all(|job| job.tenant_id == busy));
    // The idle tenant was served more recently than the busy one, and has nothing running.
    enqueue_n(&pool, idle, 2).await;
    let first = claim_batch(&pool, "w", &kinds(), 1, LEASE).await.unwrap();
    assert_eq!(first[0].tenant_id, idle);
    complete(&pool, &first[0].lease().unwrap(), json!({}))
        .await
        .unwrap();
    // "Least recently served" alone would now pick the busy tenant; its running slots say no.
    let next = claim_batch(&pool, "w", &kinds(), 1, LEASE).await.unwrap();
    assert_eq!(
        next[0].tenant_id, idle,
        "the tenant with 0 running jobs gets the slot over the one with 3"
    );
}
