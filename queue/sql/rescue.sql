-- Rescues up to $1 running jobs whose lease expired: back to 'queued' while attempts remain,
-- 'dead' when they are spent, 'canceled' when cancellation had been requested.
-- Rows another rescuer holds are skipped, so any number of rescuers may run at once.
WITH expired AS (
    SELECT id, lease_owner, lease_expires_at, started_at
    FROM jobs
    WHERE status = 'running' AND lease_expires_at < now()
    ORDER BY lease_expires_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
),
rescued AS (
    UPDATE jobs j
    SET status = CASE
            WHEN j.cancel_requested_at IS NOT NULL THEN 'canceled'
            WHEN j.attempt >= j.max_attempts THEN 'dead'
            ELSE 'queued'
        END,
        run_at = now(),
        finished_at = CASE
            WHEN j.cancel_requested_at IS NULL AND j.attempt < j.max_attempts THEN NULL
            ELSE now()
        END,
        last_error = jsonb_build_object(
            'code', 'lease_expired',
            'message', format('worker %s did not finish attempt %s before its lease expired at %s',
                              e.lease_owner, j.attempt, e.lease_expires_at)),
        lease_owner = NULL,
        lease_expires_at = NULL
    FROM expired e
    WHERE j.id = e.id
    RETURNING j.id, j.tenant_id, j.kind, j.attempt, j.status, j.last_error, e.lease_owner, e.started_at
),
audit AS (
    INSERT INTO job_attempts (job_id, attempt, worker_id, started_at, outcome, error)
    SELECT id, attempt, lease_owner, coalesce(started_at, now()), 'lease_expired', last_error FROM rescued
),
appended AS (
    INSERT INTO events (tenant_id, job_id, type, data)
    SELECT tenant_id, id,
           CASE status WHEN 'queued' THEN 'job.retrying' WHEN 'dead' THEN 'job.dead' ELSE 'job.canceled' END,
           job_event_data(id, kind, status, attempt, jsonb_build_object('error', last_error))
    FROM rescued
    RETURNING 1
)
SELECT id AS "job_id!", status AS "status!: JobStatus",
       (SELECT count(pg_notify(channel, ''))
        FROM unnest(ARRAY['sentinel_jobs', 'sentinel_events']) AS channel
        WHERE EXISTS (SELECT 1 FROM appended)) AS "notified!",
       -- The worker API's long-polling claims of that tenant's kind, when a tenant-defined kind went
       -- back to the queue (or a capped kind's slot came free).
       (SELECT count(pg_notify('sentinel_worker_jobs', k.tenant_id::text || ':' || k.kind))
        FROM (SELECT DISTINCT tenant_id, kind FROM rescued WHERE NOT builtin_job_kind(kind)) k)
           AS "woke_worker_api!"
FROM rescued
