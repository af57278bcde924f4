-- Inserts a batch of jobs in one statement, appends their job.queued events and wakes the workers.
-- Rows are passed as parallel arrays ($1..$10). A row whose (tenant, source, dedupe_key) already
-- exists, in the table or earlier in the batch, inserts nothing and resolves to the existing job.
--
-- The no-op DO UPDATE (rather than DO NOTHING) makes RETURNING yield the existing row even when a
-- concurrent transaction committed it after this statement's snapshot was taken; `xmax = 0` tells
-- freshly inserted rows from existing ones.
WITH input AS (
    SELECT i.*,
           -- Rows that share a group key are one job: the tenant, source and dedupe key when there
           -- is a key (UUIDs are fixed-width, so the concatenation is unambiguous), else the row.
           CASE WHEN i.dedupe_key IS NULL THEN 'row/' || i.ord
                ELSE i.tenant_id::text || '/' || coalesce(i.source_id::text, '') || '/' || i.dedupe_key
           END AS group_key
    FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::int2[], $5::timestamptz[], $6::int4[],
                $7::text[], $8::jsonb[], $9::bytea[], $10::jsonb[])
         WITH ORDINALITY AS i (tenant_id, source_id, kind, priority, run_at, max_attempts,
                               dedupe_key, input, raw_body, headers, ord)
),
-- The first row of each group is the one written.
firsts AS (
    SELECT DISTINCT ON (group_key) nextval(pg_get_serial_sequence('jobs', 'id')) AS new_id, *
    FROM input
    ORDER BY group_key, ord
),
written AS (
    INSERT INTO jobs AS j (id, tenant_id, source_id, kind, priority, run_at, max_attempts,
                           dedupe_key, input, raw_body, headers)
    SELECT new_id, tenant_id, source_id, kind, priority, coalesce(run_at, now()), max_attempts,
           dedupe_key, input, raw_body, headers
    FROM firsts
    -- Key order, so two batches that share keys take their locks in the same order and never deadlock.
    ORDER BY group_key
    ON CONFLICT (tenant_id, coalesce(source_id, '00000000-0000-0000-0000-000000000000'::uuid), dedupe_key)
        WHERE dedupe_key IS NOT NULL
        DO UPDATE SET dedupe_key = EXCLUDED.dedupe_key
    RETURNING j.id, j.tenant_id, j.kind, j.status, (j.xmax::text = '0') AS inserted,
              j.tenant_id::text || '/' || coalesce(j.source_id::text, '') || '/' || j.dedupe_key AS group_key
),
appended AS (
    INSERT INTO events (tenant_id, job_id, type, data)
    SELECT tenant_id, id, 'job.queued', job_event_data(id, kind, 'queued', 0)
    FROM written
    WHERE inserted
    RETURNING 1
),
-- Each group's job: the row it inserted, or the existing row its key ran into.
resolved AS (
    SELECT f.group_key, f.ord AS first_ord, w.id, w.status, w.inserted
    FROM firsts f JOIN written w ON w.id = f.new_id
    UNION ALL
    SELECT f.group_key, f.ord, w.id, w.status, w.inserted
    FROM firsts f JOIN written w ON w.group_key = f.group_key AND NOT w.inserted
)
SELECT
    i.ord AS "ord!",
    r.id AS "id!",
    r.status AS "status!",
    (r.inserted AND r.first_ord = i.ord) AS "inserted!",
    (SELECT count(pg_notify(channel, ''))
     FROM unnest(ARRAY['sentinel_jobs', 'sentinel_events']) AS channel
     WHERE EXISTS (SELECT 1 FROM appended)) AS "notified!",
    -- The worker API's long-polling claims wake only for tenant-defined kinds, not for every webhook,
    -- and only the claims waiting on that tenant's kind: one notification per (tenant, kind).
    (SELECT count(pg_notify('sentinel_worker_jobs', k.tenant_id::text || ':' || k.kind))
     FROM (SELECT DISTINCT tenant_id, kind FROM written WHERE inserted AND NOT builtin_job_kind(kind)) k)
        AS "woke_worker_api!"
FROM input i
JOIN resolved r ON r.group_key = i.group_key
ORDER BY i.ord
