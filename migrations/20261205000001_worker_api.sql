-- Tenant-defined job kinds, run by the tenant's own workers through the worker API (/v1/worker/*).
-- The built-in worker names the kinds it runs, so it never claims these.

-- Per-kind controls an operator sets with PATCH /v1/kinds/{kind}: a paused kind is not claimed, and
-- at most max_running jobs of a kind run at once across all of the tenant's workers. The claim
-- locks the row of a capped kind, so two claims never both take the last slot.
CREATE TABLE job_kinds (
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    kind        text NOT NULL CHECK (length(kind) BETWEEN 1 AND 64),
    paused      boolean NOT NULL DEFAULT false,
    max_running integer CHECK (max_running >= 0),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, kind)
);

-- Serves the worker API's claim: one tenant's ready jobs of one kind. Partial, so the webhook and
-- healing traffic (the built-in kinds) never pays for it. The predicate is repeated word for word in
-- queue/sql/claim_tenant.sql, which is how the planner knows the index applies; the list is
-- sentinel_queue::kinds::BUILTIN_KINDS.
CREATE INDEX jobs_worker_claim ON jobs (tenant_id, kind, priority, run_at, id)
    WHERE status = 'queued'
      AND kind <> ALL (ARRAY['webhook.inbound', 'payload.heal', 'llm.generate', 'reply.deliver', 'agent.turn']);

-- True for the kinds Sentinel's own worker runs (sentinel_queue::kinds::BUILTIN_KINDS).
CREATE FUNCTION builtin_job_kind(p_kind text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT p_kind = ANY (ARRAY['webhook.inbound', 'payload.heal', 'llm.generate', 'reply.deliver', 'agent.turn'])
$$;

-- replay_job, as before, and it wakes the worker API's long-polling claims ('sentinel_worker_jobs')
-- when the replayed job is of a tenant-defined kind. New jobs (enqueue_many.sql) and rescued ones
-- (rescue.sql) do the same; a retry or snooze that comes due later is found by the claims' poll.
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
    -- so replaying many jobs in one statement still sends one wake-up per channel.
    PERFORM pg_notify('sentinel_jobs', '');
    PERFORM pg_notify('sentinel_events', '');
    IF NOT builtin_job_kind(v_kind) THEN
        PERFORM pg_notify('sentinel_worker_jobs', '');
    END IF;
    RETURN v_new_id;
END
$$;
