-- The forward claim (queue/src/agent.rs, claim_forwards): up to $4 ready agent.forward jobs, at most
-- $3[i] of source $2[i], for worker $1 with a lease of $5 seconds. The caller holds the sources'
-- locks and has taken each one's max_in_flight and running forwards into $3.
--
-- Jobs go by priority, then run_at, then id, across the sources. Rows locked by another claimer are
-- skipped, never waited for. The predicate is jobs_forward_claim's.
WITH wanted AS (
    SELECT source_id, n FROM unnest($2::uuid[], $3::int8[]) AS w (source_id, n) WHERE n > 0
),
candidates AS (
    SELECT j.id, j.priority, j.run_at
    FROM wanted w
    CROSS JOIN LATERAL (
        SELECT id, priority, run_at FROM jobs
        WHERE source_id = w.source_id AND status = 'queued' AND kind = 'agent.forward' AND run_at <= now()
        ORDER BY priority, run_at, id
        LIMIT w.n
        FOR UPDATE SKIP LOCKED
    ) j
    ORDER BY j.priority, j.run_at, j.id
    LIMIT $4
),
claimed AS (
    UPDATE jobs
    SET status = 'running',
        attempt = attempt + 1,
        lease_owner = $1,
        lease_expires_at = clock_timestamp() + make_interval(secs => $5::float8),
        started_at = clock_timestamp()
    FROM candidates
    WHERE jobs.id = candidates.id
    RETURNING jobs.*
),
appended AS (
    INSERT INTO events (tenant_id, job_id, type, data)
    SELECT tenant_id, id, 'job.running', job_event_data(id, kind, 'running', attempt, jsonb_build_object('worker_id', $1::text))
    FROM claimed
    RETURNING 1
)
SELECT id AS "id!", tenant_id AS "tenant_id!", source_id, kind AS "kind!", status AS "status!: JobStatus",
       priority AS "priority!", run_at AS "run_at!", attempt AS "attempt!", max_attempts AS "max_attempts!",
       lease_owner, lease_expires_at, cancel_requested_at, dedupe_key, input AS "input!", raw_body, headers,
       result, last_error, replay_of, created_at AS "created_at!", started_at, finished_at,
       (SELECT count(*) FROM (SELECT pg_notify('sentinel_events', '') WHERE EXISTS (SELECT 1 FROM appended)) n)
           AS "notified!"
FROM claimed
ORDER BY priority, run_at, id
