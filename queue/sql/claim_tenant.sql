-- The worker API's claim: up to $6 ready jobs of one tenant ($2), of the tenant-defined kinds $3,
-- at most $4[i] of kind $3[i], for lease owner $1 with a lease of $5 seconds. The jobs' stored
-- inputs add up to at most $7 bytes (always at least one job), so one answer stays bounded. The caller has already
-- taken each kind's pause and concurrency cap into $4 (queue/src/claim.rs, claim_for_tenant).
--
-- Jobs go by priority, then run_at, then id, across the kinds. Rows locked by another claimer are
-- skipped, never waited for. The built-in kinds (sentinel_builtin_kinds(), checked against
-- sentinel_queue::kinds::WORKER_KINDS at start-up) are excluded word for word as in the partial
-- index jobs_worker_claim, which is what lets the planner use it.
-- The picked jobs are started by start_jobs() (migrations/…_start_jobs.sql), the one statement all
-- three claims share: marked running with the lease, one job.running event each, one NOTIFY. It is
-- not called when nothing was picked.
WITH wanted AS (
    SELECT kind, n FROM unnest($3::text[], $4::int8[]) AS w (kind, n) WHERE n > 0
),
candidates AS (
    SELECT j.id, j.priority, j.run_at, j.bytes
    FROM wanted w
    CROSS JOIN LATERAL (
        SELECT id, priority, run_at, octet_length(input::text)::bigint AS bytes
        FROM jobs
        WHERE tenant_id = $2 AND kind = w.kind AND status = 'queued' AND run_at <= now()
          AND kind <> ALL (sentinel_builtin_kinds())
        ORDER BY priority, run_at, id
        LIMIT w.n
        FOR UPDATE SKIP LOCKED
    ) j
),
picked AS (
    SELECT id FROM (
        SELECT id, row_number() OVER w AS n, sum(bytes) OVER w AS bytes_so_far
        FROM candidates
        WINDOW w AS (ORDER BY priority, run_at, id)
    ) sized
    WHERE n = 1 OR bytes_so_far <= $7::bigint
    ORDER BY n
    LIMIT $6
)
SELECT id AS "id!", tenant_id AS "tenant_id!", source_id, kind AS "kind!", status AS "status!: JobStatus",
       priority AS "priority!", run_at AS "run_at!", attempt AS "attempt!", max_attempts AS "max_attempts!",
       lease_owner, lease_expires_at, cancel_requested_at, dedupe_key, input AS "input!", raw_body, headers,
       result, last_error, replay_of, created_at AS "created_at!", started_at, finished_at
FROM (SELECT ARRAY(SELECT id FROM picked) AS ids) chosen
CROSS JOIN LATERAL start_jobs(chosen.ids, $1, $5::float8)
WHERE cardinality(chosen.ids) > 0
ORDER BY priority, run_at, id
