-- Ends a batch of attempts. Each row is fenced by (job id, attempt, lease owner) and status
-- 'running': a worker whose lease expired and whose job was rescued changes nothing.
--
-- $1 job ids, $2 attempts, $3 worker ids, $4 requested outcomes
-- ('succeeded' | 'retry' | 'dead' | 'snoozed' | 'canceled' | 'handed_off'), $5 results, $6 errors,
-- $7 delays in seconds before the job runs again (for 'retry' and 'snoozed'), $8 the stage a
-- 'handed_off' job moves to (see migrations/…_stages.sql).
-- A 'retry' whose attempts are spent becomes 'dead'. Neither a snooze nor a hand-off counts as an
-- attempt. A hand-off wakes the workers at once.
WITH input AS (
    SELECT *
    FROM unnest($1::int8[], $2::int4[], $3::text[], $4::text[], $5::jsonb[], $6::jsonb[], $7::float8[],
                $8::text[])
         AS i (job_id, attempt, worker_id, requested, result, error, delay_secs, stage)
),
finished AS (
    UPDATE jobs j
    SET status = CASE
            WHEN i.requested = 'succeeded' THEN 'succeeded'
            WHEN i.requested = 'canceled' THEN 'canceled'
            WHEN i.requested IN ('snoozed', 'handed_off') THEN 'queued'
            WHEN i.requested = 'retry' AND j.attempt < j.max_attempts THEN 'queued'
            ELSE 'dead'
        END,
        result = CASE WHEN i.requested = 'succeeded' THEN i.result ELSE j.result END,
        last_error = coalesce(i.error, j.last_error),
        run_at = CASE
            WHEN i.requested IN ('snoozed', 'handed_off') OR (i.requested = 'retry' AND j.attempt < j.max_attempts)
                THEN now() + make_interval(secs => coalesce(i.delay_secs, 0))
            ELSE j.run_at
        END,
        max_attempts = CASE WHEN i.requested IN ('snoozed', 'handed_off') THEN j.max_attempts + 1 ELSE j.max_attempts END,
        stage = CASE WHEN i.requested = 'handed_off' THEN i.stage ELSE j.stage END,
        finished_at = CASE
            WHEN i.requested IN ('snoozed', 'handed_off') OR (i.requested = 'retry' AND j.attempt < j.max_attempts) THEN NULL
            ELSE now()
        END,
        lease_owner = NULL,
        lease_expires_at = NULL
    FROM input i
    WHERE j.id = i.job_id AND j.attempt = i.attempt AND j.lease_owner = i.worker_id AND j.status = 'running'
    RETURNING j.id, j.tenant_id, j.kind, j.attempt, j.status, j.run_at, j.started_at, j.stage, i.worker_id, i.error,
              CASE WHEN i.requested = 'retry' AND j.status = 'dead' THEN 'dead' ELSE i.requested END AS outcome
),
audit AS (
    INSERT INTO job_attempts (job_id, attempt, worker_id, started_at, outcome, error)
    SELECT id, attempt, worker_id, coalesce(started_at, now()), outcome, error FROM finished
),
appended AS (
    INSERT INTO events (tenant_id, job_id, type, data)
    SELECT tenant_id, id,
           CASE outcome
               WHEN 'succeeded' THEN 'job.succeeded'
               WHEN 'canceled' THEN 'job.canceled'
               WHEN 'dead' THEN 'job.dead'
               WHEN 'retry' THEN 'job.retrying'
               ELSE 'job.queued'
           END,
           job_event_data(id, kind, status, attempt, jsonb_strip_nulls(jsonb_build_object(
               'error', error,
               'run_at', CASE WHEN status = 'queued' THEN run_at END,
               'stage', CASE WHEN outcome = 'handed_off' THEN stage END)))
    FROM finished
    RETURNING 1
)
SELECT id AS "job_id!", status AS "status!: JobStatus", run_at AS "run_at!",
       (SELECT count(*) FROM (SELECT pg_notify('sentinel_events', '') WHERE EXISTS (SELECT 1 FROM appended)) n)
           AS "notified!",
       (SELECT count(*) FROM (SELECT pg_notify('sentinel_jobs', '')
                              WHERE EXISTS (SELECT 1 FROM finished WHERE outcome = 'handed_off')) n)
           AS "woke!"
FROM finished
