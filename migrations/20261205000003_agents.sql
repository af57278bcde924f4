-- Agents per source (sources.agent): the built-in reply (`builtin`, the default), heal only
-- (`none`), an agent turn for the tenant's own workers (`external`: agent.turn jobs through the
-- worker API) or a signed POST to the tenant's agent (`forward`: agent.forward jobs, which the
-- built-in worker sends). See sentinel_queue::agent.
ALTER TABLE sources
    ADD COLUMN agent jsonb NOT NULL DEFAULT '{"mode": "builtin"}'
        CHECK (agent ->> 'mode' IN ('builtin', 'none', 'external', 'forward')),
    -- The Standard Webhooks secret (whsec_…) forward requests are signed with. Shown once, when it
    -- is made; never returned after. After a rotation the previous one signs too, until
    -- previous_agent_secret_until, so the receiver can switch keys without refusing a request.
    ADD COLUMN agent_secret                text,
    ADD COLUMN previous_agent_secret       text,
    ADD COLUMN previous_agent_secret_until timestamptz;

-- agent.turn is now claimed through the worker API, like a tenant-defined kind; agent.forward is
-- the built-in worker's. The kinds Sentinel's own worker runs (sentinel_queue::kinds::WORKER_KINDS)
-- are the ones the worker API never claims.
CREATE OR REPLACE FUNCTION builtin_job_kind(p_kind text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT p_kind = ANY (ARRAY['webhook.inbound', 'payload.heal', 'llm.generate', 'reply.deliver', 'agent.forward'])
$$;

DROP INDEX jobs_worker_claim;
CREATE INDEX jobs_worker_claim ON jobs (tenant_id, kind, priority, run_at, id)
    WHERE status = 'queued'
      AND kind <> ALL (ARRAY['webhook.inbound', 'payload.heal', 'llm.generate', 'reply.deliver', 'agent.forward']);

-- Serves the forward claim (queue/src/agent.rs): one source's ready agent.forward jobs, taken up
-- to the source's max_in_flight.
CREATE INDEX jobs_forward_claim ON jobs (source_id, priority, run_at, id)
    WHERE status = 'queued' AND kind = 'agent.forward';

-- A stage of its own for an inbound message whose source's agent is external or forward: the
-- deterministic lane hands it to 'agent', where the worker's agent lane reads the conversation's
-- history and makes the agent.turn or agent.forward job (queue/src/agent.rs).
ALTER TABLE jobs DROP CONSTRAINT jobs_stage_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_stage_check
    CHECK (stage IN ('new', 'model', 'llm_heal', 'agent')) NOT VALID;
ALTER TABLE jobs VALIDATE CONSTRAINT jobs_stage_check;
