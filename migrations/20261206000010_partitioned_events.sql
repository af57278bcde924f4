-- `events` partitioned by day (issue 30, item 4): retention drops a whole day's partition instead
-- of deleting its rows in batches, so one of the busiest tables no longer leaves a day's worth of
-- dead tuples, index entries and WAL for autovacuum to clean up after every retention pass.
--
-- Partition key: created_at, by RANGE, one partition per UTC day (events_pYYYYMMDD, holding
-- [day 00:00 UTC, next day 00:00 UTC)). Why a day:
-- - retention is set in whole days (SENTINEL_RETENTION_DAYS, default 7), so a day is the unit it
--   is stated in, and an event outlives the retention by at most one day (see below);
-- - the readers cannot prune by created_at (the hub and the SSE streams read by seq), so each of
--   them probes every partition's index once: with 7 days of retention that is about 12
--   partitions (the 7 days before today, the oldest holding the cutoff; today; 3 made ahead; the
--   default). Hourly partitions would multiply that by 24; weekly ones would keep events up to a
--   week past the retention. A retention of months would call for weekly partitions, so that
--   readers keep probing a dozen partitions, not hundreds.
--
-- Primary key: (seq, created_at). A partitioned table's unique constraints must contain the
-- partition key. seq alone stays unique because only the sequence events_seq_seq hands it out
-- (nothing inserts an explicit seq); nothing refers to events.seq (no foreign key, no
-- ON CONFLICT (seq)). Each partition's index on (seq, created_at) serves the readers' lookups and
-- ranges by seq: `WHERE seq = $1`, `WHERE seq > $1 ORDER BY seq` (a Merge Append of one index scan
-- per partition), and max(seq). The other indexes are kept, partitioned: (tenant_id, seq) for a
-- tenant's stream, (job_id, seq) for a job's, brin (created_at) for retention's deletes in the
-- default partition.
--
-- The default partition (events_default) catches any row no day's partition takes, so an insert
-- never fails: a created_at far in the past or future, or days nobody made a partition for (no
-- worker ran retention for longer than the days made ahead). sentinel_events_ensure_partitions()
-- makes today's partition and the next days' ahead of time (the migration, then every retention
-- pass); should the default already hold rows of a day being made, they move into it first
-- (Postgres refuses to attach a range the default partition holds rows of), under events' ACCESS
-- EXCLUSIVE lock, so that no insert races the move.
-- sentinel_events_drop_partitions() drops the partitions that end at or before a cutoff, counting
-- their rows first.
--
-- Retention granularity (queue/src/retention.rs): a day's partition is dropped once its end is
-- older than the retention, so an event in a day's partition lives between the retention and the
-- retention plus one day. Rows in the default partition are deleted in batches once older than
-- the retention, as before.
--
-- Existing rows are copied inside this migration, which holds events' ACCESS EXCLUSIVE lock for
-- the copy: writers of events (every job state change) wait for it. The oldest rows' day gets a
-- partition, and every day since, up to 31 days back; older rows go to the default partition,
-- where retention deletes them in batches. seq values, their sequence and its position are kept.
-- The code already running (readers by seq, tenant and job; inserts naming their columns; the
-- batch deletes of the previous retention) works unchanged on the partitioned table.

LOCK TABLE events IN ACCESS EXCLUSIVE MODE;

ALTER TABLE events RENAME TO events_unpartitioned;
-- The sequence outlives the old table: the new seq column takes it over, at its current value.
ALTER SEQUENCE events_seq_seq OWNED BY NONE;

-- Append-only. Every job state change appends one row in the same transaction as the change.
CREATE TABLE events (
    seq        bigint NOT NULL DEFAULT nextval('events_seq_seq'),
    tenant_id  uuid NOT NULL,
    job_id     bigint,
    type       text NOT NULL,
    data       jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
) PARTITION BY RANGE (created_at);
ALTER SEQUENCE events_seq_seq OWNED BY events.seq;

-- Storage parameters cannot be set on a partitioned table; each partition gets the ones events
-- had (an append-only table needs insert-driven vacuums for its visibility map).
CREATE TABLE events_default PARTITION OF events DEFAULT
    WITH (autovacuum_vacuum_insert_scale_factor = 0.05, autovacuum_vacuum_scale_factor = 0.05);

-- Makes the partition of UTC day p_day unless it exists; returns whether it made it. Rows of that
-- day in the default partition move into it first. Callers hold the advisory lock of
-- sentinel_events_ensure_partitions (or, as this migration, the table itself).
--
-- It holds ACCESS EXCLUSIVE on events meanwhile: readers and writers wait for it, a few
-- milliseconds when the default partition is empty (as it is when partitions are made ahead).
-- A lighter lock is not safe: ATTACH PARTITION alone takes SHARE UPDATE EXCLUSIVE, and an insert
-- that chose the default partition before the attach then fails on the default's new constraint
-- ("new row for relation events_default violates partition constraint", seen while a day nobody
-- had made a partition for was being made). Waiting for the lock is bounded by the callers'
-- lock_timeout.
CREATE FUNCTION sentinel_events_create_partition(p_day date)
RETURNS boolean
LANGUAGE plpgsql
SET TimeZone = 'UTC'
SET DateStyle = 'ISO, YMD'
AS $$
DECLARE
    v_name text := 'events_p' || to_char(p_day, 'YYYYMMDD');
    v_from timestamptz := p_day::timestamp AT TIME ZONE 'UTC';
    v_to   timestamptz := (p_day + 1)::timestamp AT TIME ZONE 'UTC';
BEGIN
    IF to_regclass(v_name) IS NOT NULL THEN
        RETURN false;
    END IF;
    LOCK TABLE events IN ACCESS EXCLUSIVE MODE;
    EXECUTE format(
        'CREATE TABLE %I (LIKE events) WITH (autovacuum_vacuum_insert_scale_factor = 0.05, '
        'autovacuum_vacuum_scale_factor = 0.05)', v_name);
    -- Postgres refuses to attach a range the default partition holds rows of.
    EXECUTE format(
        'WITH moved AS (DELETE FROM events_default WHERE created_at >= $1 AND created_at < $2 '
        'RETURNING seq, tenant_id, job_id, type, data, created_at) '
        'INSERT INTO %I (seq, tenant_id, job_id, type, data, created_at) '
        'SELECT seq, tenant_id, job_id, type, data, created_at FROM moved', v_name)
        USING v_from, v_to;
    EXECUTE format('ALTER TABLE events ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                   v_name, v_from, v_to);
    RETURN true;
END
$$;

-- Makes the partitions of today (UTC) and the p_days_ahead days after it that do not exist yet;
-- returns how many it made. Called by every retention pass. One caller at a time: a second one
-- (another worker's retention) returns 0 at once. lock_timeout bounds how long it waits for
-- events' lock (behind a long transaction that read or wrote events), and so how long readers and
-- writers queue behind its request: it then fails, and the next pass tries again, days before the
-- partition is needed.
CREATE FUNCTION sentinel_events_ensure_partitions(p_days_ahead integer)
RETURNS integer
LANGUAGE plpgsql
SET lock_timeout = '1s'
AS $$
DECLARE
    v_today   date := (now() AT TIME ZONE 'UTC')::date;
    v_made    integer := 0;
BEGIN
    IF NOT pg_try_advisory_xact_lock(hashtext('sentinel_events_partitions')) THEN
        RETURN 0;
    END IF;
    FOR v_day_offset IN 0 .. greatest(p_days_ahead, 0) LOOP
        IF sentinel_events_create_partition(v_today + v_day_offset) THEN
            v_made := v_made + 1;
        END IF;
    END LOOP;
    RETURN v_made;
END
$$;

-- Drops every day's partition whose upper bound is at or before p_older_than, so no row younger
-- than p_older_than goes; returns how many it dropped and the rows they held. The default
-- partition and any partition without a timestamp upper bound are never dropped.
--
-- Each partition is counted under a SHARE lock (writers of that old day wait, readers do not),
-- all before the first DROP: a DROP takes ACCESS EXCLUSIVE on events (and on the default
-- partition) until the function's transaction commits, so nothing slow may follow it. One caller
-- at a time, as sentinel_events_ensure_partitions; lock_timeout bounds how long readers and
-- writers queue behind the DROP's lock request.
CREATE FUNCTION sentinel_events_drop_partitions(p_older_than timestamptz)
RETURNS TABLE (n_partitions integer, n_events bigint)
LANGUAGE plpgsql
SET TimeZone = 'UTC'
SET DateStyle = 'ISO, YMD'
SET lock_timeout = '1s'
AS $$
DECLARE
    v_old   regclass[] := '{}';
    v_part  regclass;
    v_rows  bigint;
BEGIN
    n_partitions := 0;
    n_events := 0;
    IF NOT pg_try_advisory_xact_lock(hashtext('sentinel_events_partitions')) THEN
        RETURN NEXT;
        RETURN;
    END IF;
    -- The bound is read back in the function's own TimeZone and DateStyle, so the text
    -- pg_get_expr writes parses to the same instant.
    SELECT coalesce(array_agg(part ORDER BY upper_bound), '{}') INTO v_old
    FROM (SELECT c.oid::regclass AS part,
                 (regexp_match(pg_get_expr(c.relpartbound, c.oid),
                               'TO \(''([^'']+)''\)'))[1]::timestamptz AS upper_bound
          FROM pg_inherits i
          JOIN pg_class c ON c.oid = i.inhrelid
          WHERE i.inhparent = 'events'::regclass) AS bounds
    WHERE upper_bound <= p_older_than;
    FOREACH v_part IN ARRAY v_old LOOP
        EXECUTE format('LOCK TABLE %s IN SHARE MODE', v_part);
        EXECUTE format('SELECT count(*) FROM %s', v_part) INTO v_rows;
        n_events := n_events + v_rows;
    END LOOP;
    FOREACH v_part IN ARRAY v_old LOOP
        EXECUTE format('DROP TABLE %s', v_part);
        n_partitions := n_partitions + 1;
    END LOOP;
    RETURN NEXT;
END
$$;

-- The days before today that existing rows need (from the oldest row's day, at most 31 back),
-- today and 3 ahead, then the rows, in seq order.
SELECT sentinel_events_create_partition(today - days_back)
FROM (SELECT (now() AT TIME ZONE 'UTC')::date AS today,
             (SELECT min(created_at) AT TIME ZONE 'UTC' FROM events_unpartitioned)::date AS oldest
     ) AS known,
     generate_series(1, least(today - coalesce(oldest, today), 31)) AS days_back;
SELECT sentinel_events_ensure_partitions(3);

INSERT INTO events (seq, tenant_id, job_id, type, data, created_at)
SELECT seq, tenant_id, job_id, type, data, created_at
FROM events_unpartitioned
ORDER BY seq;

DROP TABLE events_unpartitioned;

-- Built after the copy, once per partition; a partition made later gets them when it is attached.
ALTER TABLE events ADD CONSTRAINT events_pkey PRIMARY KEY (seq, created_at);
CREATE INDEX events_tenant_seq ON events (tenant_id, seq);
CREATE INDEX events_job ON events (job_id, seq);
CREATE INDEX events_created ON events USING brin (created_at);
