-- Claims up to $3 ready jobs for worker $1, with a lease of $4 seconds. The jobs it may take are
-- given as pairs: kind $2[i] at stage $5[i] (see migrations/…_stages.sql). With $6, the jobs'
-- stored input and raw body add up to at most $6 bytes (always at least one job), so a batch of
-- large bodies cannot take the worker's memory.
--
-- Fair across tenants by running slots: the tenants with ready work are taken fewest running jobs
-- of these kinds first (then least recently served), each gets an equal share of the free slots,
-- and the shares are interleaved, so one tenant's 100k queued jobs, or its long jobs, cannot starve
-- another's 10. Within a tenant, jobs go by priority, then run_at, then id. Rows locked by another
-- claimer are skipped, never waited for.
-- The picked jobs are started by start_jobs() (migrations/…_start_jobs.sql), the one statement all
-- three claims share: marked running with the lease, one job.running event each, one NOTIFY. It is
-- not called when nothing was picked.
WITH RECURSIVE ready_tenants AS (
    -- A loose index scan over jobs_claim: one probe per tenant that has ready work.
    (
        SELECT tenant_id FROM jobs
        WHERE status = 'queued' AND run_at <= now() AND (kind, stage) IN (SELECT * FROM unnest($2::text[], $5::text[]))
        ORDER BY tenant_id
        LIMIT 1
    )
    UNION ALL
    SELECT (
        SELECT j.tenant_id FROM jobs j
        WHERE j.status = 'queued' AND j.run_at <= now() AND (j.kind, j.stage) IN (SELECT * FROM unnest($2::text[], $5::text[]))
          AND j.tenant_id > r.tenant_id
        ORDER BY j.tenant_id
        LIMIT 1
    )
    FROM ready_tenants r
    WHERE r.tenant_id IS NOT NULL
),
turns AS (
    SELECT r.tenant_id,
           row_number() OVER (ORDER BY busy.running, served.last_served NULLS FIRST, r.tenant_id) AS turn
    FROM ready_tenants r
    CROSS JOIN LATERAL (
        SELECT max(started_at) AS last_served FROM jobs s
        WHERE s.tenant_id = r.tenant_id AND s.started_at IS NOT NULL
    ) served
    CROSS JOIN LATERAL (
        SELECT count(*) AS running FROM jobs b
        WHERE b.status = 'running' AND b.tenant_id = r.tenant_id
          AND (b.kind, b.stage) IN (SELECT * FROM unnest($2::text[], $5::text[]))
    ) busy
    WHERE r.tenant_id IS NOT NULL
    ORDER BY busy.running, served.last_served NULLS FIRST, r.tenant_id
    LIMIT $3
),
share AS (
    SELECT ceil($3::float8 / greatest(count(*), 1))::bigint AS per_tenant FROM turns
),
candidates AS (
    SELECT j.id, t.turn, j.bytes,
           row_number() OVER (PARTITION BY t.turn ORDER BY j.priority, j.run_at, j.id) AS rank
    FROM turns t
    CROSS JOIN share
    CROSS JOIN LATERAL (
        SELECT id, priority, run_at,
               pg_column_size(input)::bigint + coalesce(octet_length(raw_body), 0)::bigint AS bytes
        FROM jobs
        WHERE tenant_id = t.tenant_id AND status = 'queued' AND run_at <= now() AND (kind, stage) IN (SELECT * FROM unnest($2::text[], $5::text[]))
        ORDER BY priority, run_at, id
        LIMIT share.per_tenant
        FOR UPDATE SKIP LOCKED
    ) j
),
picked AS (
    SELECT id FROM (
        SELECT id, row_number() OVER w AS n, sum(bytes) OVER w AS bytes_so_far
        FROM candidates
        WINDOW w AS (ORDER BY rank, turn)
    ) sized
    WHERE n = 1 OR $6::bigint IS NULL OR bytes_so_far <= $6::bigint
    ORDER BY n
    LIMIT $3
)
SELECT id AS "id!", tenant_id AS "tenant_id!", source_id, kind AS "kind!", status AS "status!: JobStatus",
       priority AS "priority!", run_at AS "run_at!", attempt AS "attempt!", max_attempts AS "max_attempts!",
       lease_owner, lease_expires_at, cancel_requested_at, dedupe_key, input AS "input!", raw_body, headers,
       result, last_error, replay_of, created_at AS "created_at!", started_at, finished_at
FROM (SELECT ARRAY(SELECT id FROM picked) AS ids) chosen
CROSS JOIN LATERAL start_jobs(chosen.ids, $1, $4::float8)
WHERE cardinality(chosen.ids) > 0
ORDER BY priority, run_at, id
