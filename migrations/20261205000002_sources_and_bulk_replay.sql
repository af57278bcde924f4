-- Sources you can change without a new ingest URL (PATCH /v1/sources/{id}). Rotating a source's
-- secrets keeps the ones it replaces valid until previous_secrets_until, so webhooks the platform
-- signed with the old secret while the change reached it are still taken.
ALTER TABLE sources
    ADD COLUMN previous_secrets       jsonb,
    ADD COLUMN previous_secrets_until timestamptz,
    ADD COLUMN updated_at             timestamptz;

-- Which jobs were replayed: bulk replay leaves them out.
CREATE INDEX jobs_replay_of ON jobs (replay_of) WHERE replay_of IS NOT NULL;

-- Bulk replay by filter, for operators and for POST /v1/jobs/replay: the tenant's finished jobs
-- (p_status: 'dead' by default, or 'succeeded' / 'canceled') of one kind and source if given,
-- created in [p_since, p_until), oldest first, at most p_limit of them (1 to 1000), each replayed
-- with replay_job. A job that was replayed before (by this or by replay_job) is left out, so running
-- the same filter twice replays each job once. Returns each original and its replay. With p_dry_run
-- it replays nothing and returns the jobs it would replay (replay_id NULL).
CREATE FUNCTION replay_jobs(p_tenant_id uuid, p_status text DEFAULT 'dead', p_kind text DEFAULT NULL,
                            p_source_id uuid DEFAULT NULL, p_since timestamptz DEFAULT NULL,
                            p_until timestamptz DEFAULT NULL, p_limit integer DEFAULT 100,
                            p_dry_run boolean DEFAULT false)
RETURNS TABLE (job_id bigint, replay_id bigint)
LANGUAGE plpgsql
AS $$
BEGIN
    IF p_status NOT IN ('dead', 'succeeded', 'canceled') THEN
        RAISE EXCEPTION 'replay_jobs: status must be dead, succeeded or canceled, not %', p_status
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_limit NOT BETWEEN 1 AND 1000 THEN
        RAISE EXCEPTION 'replay_jobs: limit must be from 1 to 1000, not %', p_limit
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN QUERY
    SELECT m.id, CASE WHEN p_dry_run THEN NULL ELSE replay_job(m.id) END
    FROM (
        SELECT j.id FROM jobs j
        WHERE j.tenant_id = p_tenant_id AND j.status = p_status
          AND (p_kind IS NULL OR j.kind = p_kind)
          AND (p_source_id IS NULL OR j.source_id = p_source_id)
          AND (p_since IS NULL OR j.created_at >= p_since)
          AND (p_until IS NULL OR j.created_at < p_until)
          AND NOT EXISTS (SELECT 1 FROM jobs r WHERE r.replay_of = j.id)
        ORDER BY j.id
        LIMIT p_limit
    ) m
    ORDER BY m.id;
END
$$;
