-- Inserts a batch of jobs in one statement, appends their job.queued events and wakes the workers.
-- Rows are passed as parallel arrays ($1..$10). A row whose (tenant, source, dedupe_key) already
-- exists, in the table or earlier in the batch, inserts nothing and resolves to the existing job.
--
-- The no-op DO UPDATE (rather than DO NOTHING) makes RETURNING yield the existing row even when a
-- concurrent transaction committed it after this statement's snapshot was taken; `xmax = 0` tells
-- freshly inserted rows from existing ones.
WITH input AS (
    SELECT *
    FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::int2[], $5::timestamptz[], $6::int4[],
                $7::text[], $8::jsonb[], $9::bytea[], $10::jsonb[])
         WITH ORDINALITY AS i (tenant_id, source_id, kind, priority, run_at, max_attempts,
                               dedupe_key, input, raw_body, headers, ord)
),
-- The first row of each dedupe key is the one written; rows without a key are each their own.
firsts AS (
    SELECT DISTINCT ON (tenant_id, coalesce(source_id, '00000000-0000-0000-0000-000000000000'::uuid),
                        coalesce(dedupe_key, ''), CASE WHEN dedupe_key IS NULL THEN ord END)
           nextval(pg_get_serial_sequence('jobs', 'id')) AS new_id, *
    FROM input
    ORDER BY tenant_id, coalesce(source_id, '00000000-0000-0000-0000-000000000000'::uuid),
             coalesce(dedupe_key, ''), CASE WHEN dedupe_key IS NULL THEN ord END, ord
),
written AS (
    INSERT INTO jobs AS j (id, tenant_id, source_id, kind, priority, run_at, max_attempts,
                           dedupe_key, input, raw_body, headers)
    SELECT new_id, tenant_id, source_id, kind, priority, coalesce(run_at, now()), max_attempts,
           dedupe_key, input, raw_body, headers
    FROM firsts
    -- Key order, so two batches that share keys take their locks in the same order and never deadlock.
    ORDER BY tenant_id, coalesce(source_id, '00000000-0000-0000-0000-000000000000'::uuid), dedupe_key, ord
    ON CONFLICT (tenant_id, coalesce(source_id, '00000000-0000-0000-0000-000000000000'::uuid), dedupe_key)
        WHERE dedupe_key IS NOT NULL
        DO UPDATE SET dedupe_key = EXCLUDED.dedupe_key
    RETURNING j.id, j.tenant_id, j.source_id, j.kind, j.dedupe_key, j.status, (j.xmax::text = '0') AS inserted
),
appended AS (
    INSERT INTO events (tenant_id, job_id, type, data)
    SELECT tenant_id, id, 'job.queued', job_event_data(id, kind, 'queued', 0)
    FROM written
    WHERE inserted
    RETURNING 1
),
resolved AS (
    SELECT f.ord AS first_ord, w.id, w.status, w.inserted, f.tenant_id, f.source_id, f.dedupe_key
    FROM firsts f
    JOIN written w
      ON w.id = f.new_id
      OR (f.dedupe_key IS NOT NULL AND w.dedupe_key = f.dedupe_key
          AND w.tenant_id = f.tenant_id AND w.source_id IS NOT DISTINCT FROM f.source_id)
)
SELECT
    i.ord AS "ord!",
    r.id AS "id!",
    r.status AS "status!",
    (r.inserted AND r.first_ord = i.ord) AS "inserted!",
    (SELECT count(pg_notify(channel, ''))
     FROM unnest(ARRAY['sentinel_jobs', 'sentinel_events']) AS channel
     WHERE EXISTS (SELECT 1 FROM appended)) AS "notified!"
FROM input i
JOIN resolved r
  ON r.tenant_id = i.tenant_id
 AND r.source_id IS NOT DISTINCT FROM i.source_id
 AND ((i.dedupe_key IS NULL AND r.first_ord = i.ord) OR r.dedupe_key = i.dedupe_key)
ORDER BY i.ord
