-- The one "start the claimed jobs" step of every claim (queue/sql/claim.sql, claim_tenant.sql and
-- claim_forward.sql): marks the jobs p_ids running for worker p_worker_id, with a lease of
-- p_lease_secs seconds from now, appends one job.running event per job, and wakes the gateways
-- ('sentinel_events', once, when it started any). Returns the started rows. The caller has
-- locked the rows (FOR UPDATE SKIP LOCKED) and chosen them by its own rule; this only starts them.
-- The claims that do not call it yet (code still running during a deploy) do the same inline, so
-- this is safe to apply under them.
CREATE FUNCTION start_jobs(p_ids bigint[], p_worker_id text, p_lease_secs float8)
RETURNS SETOF jobs
LANGUAGE plpgsql
AS $$
DECLARE
    v_started bigint;
BEGIN
    RETURN QUERY
    WITH claimed AS (
        UPDATE jobs
        SET status = 'running',
            attempt = attempt + 1,
            lease_owner = p_worker_id,
            lease_expires_at = clock_timestamp() + make_interval(secs => p_lease_secs),
            started_at = clock_timestamp()
        WHERE jobs.id = ANY (p_ids)
        RETURNING jobs.*
    ),
    appended AS (
        INSERT INTO events (tenant_id, job_id, type, data)
        SELECT c.tenant_id, c.id, 'job.running',
               job_event_data(c.id, c.kind, 'running', c.attempt, jsonb_build_object('worker_id', p_worker_id))
        FROM claimed c
        RETURNING 1
    )
    SELECT * FROM claimed;
    GET DIAGNOSTICS v_started = ROW_COUNT;
    IF v_started > 0 THEN
        PERFORM pg_notify('sentinel_events', '');
    END IF;
END
$$;

-- The kinds Sentinel's own worker runs, in SQL: sentinel_queue::kinds::WORKER_KINDS, as of this
-- migration. Migrating (sentinel_queue::db::migrate) makes it the build's list with
-- sync_sentinel_builtin_kinds() below, so a new built-in kind needs no migration; every process
-- checks at start-up that the two lists are equal (sentinel_queue::db::check_schema) and refuses
-- to start otherwise. builtin_job_kind(), the partial index jobs_worker_claim and the queries that
-- must match that index (queue/sql/claim_tenant.sql, tenant_kinds::list) read it from here.
--
-- IMMUTABLE, because an index predicate uses it: changing the list rebuilds jobs_worker_claim.
CREATE FUNCTION sentinel_builtin_kinds() RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT ARRAY['webhook.inbound', 'payload.heal', 'llm.generate', 'reply.deliver', 'agent.forward']
$$;

-- True for the kinds Sentinel's own worker runs, as before, from the one list.
CREATE OR REPLACE FUNCTION builtin_job_kind(p_kind text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT p_kind = ANY (sentinel_builtin_kinds())
$$;

-- The worker API's claim index, as before, with its predicate read from the one list. The queries
-- repeat it word for word, which is how the planner knows the index applies. Rebuilt in the
-- migration's transaction, as …_agents.sql did: the index holds only queued jobs of the kinds the
-- worker API runs.
DROP INDEX jobs_worker_claim;
CREATE INDEX jobs_worker_claim ON jobs (tenant_id, kind, priority, run_at, id)
    WHERE status = 'queued' AND kind <> ALL (sentinel_builtin_kinds());

-- Makes sentinel_builtin_kinds() the list p_kinds (in any order) if it is not already, and then
-- rebuilds jobs_worker_claim, whose predicate reads it; true when it changed anything. Called by
-- every migration run (sentinel_queue::db::migrate) with the build's WORKER_KINDS, under a
-- transaction-scoped advisory lock, so two processes migrating at once change it once. The index
-- is rebuilt in the caller's transaction: writes to jobs wait for the build, which happens only
-- when a deploy changes the list.
CREATE FUNCTION sync_sentinel_builtin_kinds(p_kinds text[]) RETURNS boolean
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('sentinel_builtin_kinds'));
    IF (SELECT array_agg(k ORDER BY k) FROM unnest(p_kinds) k)
       IS NOT DISTINCT FROM (SELECT array_agg(k ORDER BY k) FROM unnest(sentinel_builtin_kinds()) k) THEN
        RETURN false;
    END IF;
    EXECUTE format(
        'CREATE OR REPLACE FUNCTION sentinel_builtin_kinds() RETURNS text[] '
        'LANGUAGE sql IMMUTABLE PARALLEL SAFE AS %L',
        format('SELECT %L::text[]', p_kinds));
    DROP INDEX jobs_worker_claim;
    CREATE INDEX jobs_worker_claim ON jobs (tenant_id, kind, priority, run_at, id)
        WHERE status = 'queued' AND kind <> ALL (sentinel_builtin_kinds());
    RETURN true;
END
$$;
