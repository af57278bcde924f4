-- The worker API's wake-ups name what they are about: the payload of 'sentinel_worker_jobs' is
-- '<tenant id>:<kind>', so a gateway wakes only the long-polling claims waiting on that tenant's
-- kind (api/src/claims.rs), never every waiting claim of every tenant. New jobs
-- (queue/sql/enqueue_many.sql) and rescued ones (queue/sql/rescue.sql) send the same payload.
-- A gateway still running the earlier code reads any payload as "look again", so this is safe to
-- apply under it.
CREATE OR REPLACE FUNCTION replay_job(p_job_id bigint)
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
    -- so replaying many jobs in one statement still sends one wake-up per channel and key.
    PERFORM pg_notify('sentinel_jobs', '');
    PERFORM pg_notify('sentinel_events', '');
    IF NOT builtin_job_kind(v_kind) THEN
        PERFORM pg_notify('sentinel_worker_jobs', v_tenant_id::text || ':' || v_kind);
    END IF;
    RETURN v_new_id;
END
$$;
