-- Cancels one job of one tenant: a queued job at once (with its job.canceled event),
-- a running job by setting cancel_requested_at, which its worker sees at the next heartbeat.
-- $1 job id, $2 tenant id.
WITH target AS (
    SELECT id, status FROM jobs WHERE id = $1 AND tenant_id = $2 FOR UPDATE
),
canceled AS (
    UPDATE jobs j
    SET status = 'canceled', finished_at = now()
    FROM target t
    WHERE j.id = t.id AND t.status = 'queued'
    RETURNING j.id, j.tenant_id, j.kind, j.attempt
),
requested AS (
    UPDATE jobs j
    SET cancel_requested_at = coalesce(j.cancel_requested_at, now())
    FROM target t
    WHERE j.id = t.id AND t.status = 'running' AND j.cancel_requested_at IS NULL
    RETURNING j.id
),
appended AS (
    INSERT INTO events (tenant_id, job_id, type, data)
    SELECT tenant_id, id, 'job.canceled', job_event_data(id, kind, 'canceled', attempt) FROM canceled
    RETURNING pg_notify('sentinel_events', '')
)
SELECT
    CASE WHEN EXISTS (SELECT 1 FROM canceled) THEN 'canceled' ELSE t.status END AS "status!",
    EXISTS (SELECT 1 FROM canceled) OR EXISTS (SELECT 1 FROM requested) AS changed,
    (SELECT count(*) FROM appended) AS appended
FROM target t
