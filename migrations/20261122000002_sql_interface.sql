-- The SQL interface for operators: the event payload shape, replay, and audit views.
-- These names are a stable interface (docs/SQL.md); change them only by adding new ones.

-- The JSON `data` of every job event. One definition, used by the application's queries and by replay_job.
CREATE FUNCTION job_event_data(p_job_id bigint, p_kind text, p_status text, p_attempt integer,
                               p_extra jsonb DEFAULT '{}'::jsonb)
RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT jsonb_build_object('job_id', p_job_id, 'kind', p_kind, 'status', p_status,
                              'attempt', p_attempt, 'at', now()) || p_extra
$$;

-- Replays one job: a new queued job with the same tenant, source, kind, input, raw body and headers,
-- whose replay_of names the original. It appends the job.queued event and wakes the workers,
-- exactly as the API's replay does (the API calls this function).
CREATE FUNCTION replay_job(p_job_id bigint)
RETURNS bigint
LANGUAGE plpgsql
AS $$
DECLARE
    v_new_id    bigint;
    v_tenant_id uuid;
    v_kind      text;
BEGIN
    INSERT INTO jobs (tenant_id, source_id, kind, priority, max_attempts, input, raw_body, headers, replay_of)
    SELECT tenant_id, source_id, kind, priority, max_attempts, input, raw_body, headers, id
    FROM jobs
    WHERE id = p_job_id
    RETURNING id, tenant_id, kind INTO v_new_id, v_tenant_id, v_kind;

    IF v_new_id IS NULL THEN
        RAISE EXCEPTION 'replay_job: job % does not exist', p_job_id USING ERRCODE = 'no_data_found';
    END IF;

    INSERT INTO events (tenant_id, job_id, type, data)
    VALUES (v_tenant_id, v_new_id, 'job.queued',
            job_event_data(v_new_id, v_kind, 'queued', 0, jsonb_build_object('replay_of', p_job_id)));

    -- Identical notifications within one transaction are folded into one by Postgres,
    -- so replaying many jobs in one statement still sends one wake-up per channel.
    PERFORM pg_notify('sentinel_jobs', '');
    PERFORM pg_notify('sentinel_events', '');
    RETURN v_new_id;
END
$$;

-- One tenant's job history, newest first: `SELECT * FROM tenant_job_history WHERE tenant_id = '…'`.
CREATE VIEW tenant_job_history AS
SELECT j.tenant_id, t.name AS tenant_name, j.id AS job_id, j.kind, j.status, j.attempt, j.max_attempts,
       j.source_id, s.platform, j.dedupe_key, j.replay_of, j.created_at, j.started_at, j.finished_at,
       j.finished_at - j.created_at AS total_time, j.last_error
FROM jobs j
JOIN tenants t ON t.id = j.tenant_id
LEFT JOIN sources s ON s.id = j.source_id
ORDER BY j.id DESC;

-- What the gateway dropped at the edge, with the tenant's name.
CREATE VIEW ingress_drop_log AS
SELECT d.id, d.received_at, d.tenant_id, t.name AS tenant_name, d.source_id, d.platform, d.reason, d.dedupe_key
FROM ingress_drops d
JOIN tenants t ON t.id = d.tenant_id
ORDER BY d.id DESC;

-- Dead jobs with their last error and the attempt that produced it.
CREATE VIEW dead_jobs AS
SELECT j.id AS job_id, j.tenant_id, j.kind, j.source_id, j.attempt, j.max_attempts, j.finished_at,
       j.last_error, a.worker_id AS last_worker_id, a.outcome AS last_outcome, j.replay_of
FROM jobs j
LEFT JOIN LATERAL (
    SELECT worker_id, outcome FROM job_attempts WHERE job_id = j.id ORDER BY attempt DESC, id DESC LIMIT 1
) a ON true
WHERE j.status = 'dead'
ORDER BY j.finished_at DESC;
