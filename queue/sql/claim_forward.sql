-- The forward claim (queue/src/agent.rs, claim_forwards): up to $6 ready agent.forward jobs for
-- worker $1 with a lease of $7 seconds; at most $3[i] of source $2[i], whose tenant has turn
-- $4[i], and at most $5[t - 1] of the tenant with turn t. The caller holds those tenants' locks
-- and has taken their free places, under max_in_flight and the tenant cap, into $3 and $5.
--
-- Fair across tenants as the other lanes' claim (claim.sql): the shares are interleaved, the
-- first job of every turn, then the second, ..., so the tenant with the fewest running forwards
-- goes first and none takes another's share. Within a tenant, jobs go by priority, then run_at,
-- then id, across its sources. The candidates are read without locks (no other forward claim
-- takes these tenants' jobs while the caller holds their locks) and only the picked rows are
-- locked; a row locked by anything else is skipped, never waited for. The predicate is
-- jobs_forward_claim's.
-- The picked jobs are started by start_jobs() (migrations/…_start_jobs.sql), the one statement all
-- three claims share: marked running with the lease, one job.running event each, one NOTIFY. It is
-- not called when nothing was picked.
WITH wanted AS (
    SELECT source_id, n, turn FROM unnest($2::uuid[], $3::int8[], $4::int8[]) AS w (source_id, n, turn)
    WHERE n > 0
),
shares AS (
    SELECT turn, n FROM unnest($5::int8[]) WITH ORDINALITY AS s (n, turn)
),
candidates AS (
    SELECT j.id, w.turn,
           row_number() OVER (PARTITION BY w.turn ORDER BY j.priority, j.run_at, j.id) AS rank
    FROM wanted w
    CROSS JOIN LATERAL (
        SELECT id, priority, run_at FROM jobs
        WHERE source_id = w.source_id AND status = 'queued' AND kind = 'agent.forward' AND run_at <= now()
        ORDER BY priority, run_at, id
        LIMIT w.n
    ) j
),
picked AS (
    SELECT c.id FROM candidates c
    JOIN shares s ON s.turn = c.turn
    WHERE c.rank <= s.n
    ORDER BY c.rank, c.turn
    LIMIT $6
),
locked AS (
    SELECT id FROM jobs
    WHERE id IN (SELECT id FROM picked) AND status = 'queued' AND kind = 'agent.forward'
    FOR UPDATE SKIP LOCKED
)
SELECT id AS "id!", tenant_id AS "tenant_id!", source_id, kind AS "kind!", status AS "status!: JobStatus",
       priority AS "priority!", run_at AS "run_at!", attempt AS "attempt!", max_attempts AS "max_attempts!",
       lease_owner, lease_expires_at, cancel_requested_at, dedupe_key, input AS "input!", raw_body, headers,
       result, last_error, replay_of, created_at AS "created_at!", started_at, finished_at
FROM (SELECT ARRAY(SELECT id FROM locked) AS ids) chosen
CROSS JOIN LATERAL start_jobs(chosen.ids, $1, $7::float8)
WHERE cardinality(chosen.ids) > 0
ORDER BY priority, run_at, id
