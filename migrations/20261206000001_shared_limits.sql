-- Limits that hold across gateways (issue 30). A tenant's rate limits (events and API requests
-- per second) and its caps on open event streams and waiting long polls were kept in each gateway
-- process, so N gateways admitted up to N times a limit. They now live here, and a gateway leases
-- from them instead of asking per request (sentinel_queue::tables::limits, api/src/limits.rs):
--
-- - rate_buckets: one token bucket per (tenant, budget). A gateway takes a slice of tokens at a
--   time (lease_rate_tokens) and spends it locally, with no round trip, for at most a second; what
--   it did not spend goes back (return_rate_tokens). Tokens only come out of the bucket, so the
--   gateways together admit at most the bucket's burst plus its rate times the elapsed time, plus
--   the tokens refilled while slices were out: at most per_sec × the lease's second.
-- - limit_slots: how many of a tenant's capped places (open streams, waiting polls) each gateway
--   holds, with an expiry the gateway renews while it lives. lease_limit_slot takes one under the
--   (tenant, slot) lock only while the live rows sum below the cap, so the cap holds across
--   gateways; a gateway that dies without giving its places back loses them when they expire.
--
-- Both tables are UNLOGGED: they are rewritten many times a second, need no WAL, and hold nothing
-- that must survive a crash. After a crash or a failover they start empty: every bucket full, no
-- places held (the gateways that held them reconnect and renew theirs).

CREATE UNLOGGED TABLE rate_buckets (
    tenant_id uuid NOT NULL,
    budget text NOT NULL,
    tokens double precision NOT NULL,
    burst double precision NOT NULL,
    refilled_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, budget)
);

-- Takes `need` tokens and up to `extra` more from (tenant, budget), refilled at per_sec up to
-- burst since it was last touched, after putting back `returned` (a gateway's unspent slice).
-- All of `need` or nothing: granted is 0 when the bucket holds fewer than `need`, and wait_secs
-- then says when it will hold them. A bucket is made full on first use.
CREATE FUNCTION lease_rate_tokens(
    p_tenant uuid, p_budget text, p_per_sec double precision, p_burst double precision,
    p_need double precision, p_extra double precision, p_returned double precision
) RETURNS TABLE (granted double precision, wait_secs double precision)
LANGUAGE plpgsql AS $$
DECLARE
    v_now timestamptz := clock_timestamp();
    v_tokens double precision;
    v_at timestamptz;
    v_available double precision;
BEGIN
    INSERT INTO rate_buckets (tenant_id, budget, tokens, burst, refilled_at)
    VALUES (p_tenant, p_budget, p_burst, p_burst, v_now)
    ON CONFLICT DO NOTHING;
    SELECT b.tokens, b.refilled_at INTO v_tokens, v_at
    FROM rate_buckets b
    WHERE b.tenant_id = p_tenant AND b.budget = p_budget
    FOR UPDATE;
    v_available := least(
        p_burst,
        v_tokens + greatest(p_returned, 0)
            + greatest(extract(epoch FROM v_now - v_at), 0) * p_per_sec
    );
    IF v_available >= p_need THEN
        granted := p_need + least(greatest(p_extra, 0), floor(v_available - p_need));
        wait_secs := 0;
    ELSE
        granted := 0;
        wait_secs := (least(p_need, p_burst) - v_available) / greatest(p_per_sec, 1e-9);
    END IF;
    UPDATE rate_buckets b
    SET tokens = v_available - granted, burst = p_burst, refilled_at = v_now
    WHERE b.tenant_id = p_tenant AND b.budget = p_budget;
    RETURN NEXT;
END
$$;

-- Puts gateways' unspent slices back, never past a bucket's burst.
CREATE FUNCTION return_rate_tokens(p_tenants uuid[], p_budgets text[], p_tokens double precision[])
RETURNS void
LANGUAGE sql AS $$
    UPDATE rate_buckets b
    SET tokens = least(b.burst, b.tokens + r.tokens)
    FROM unnest(p_tenants, p_budgets, p_tokens) AS r (tenant_id, budget, tokens)
    WHERE b.tenant_id = r.tenant_id AND b.budget = r.budget AND r.tokens > 0;
$$;

CREATE UNLOGGED TABLE limit_slots (
    tenant_id uuid NOT NULL,
    slot text NOT NULL,
    gateway_id uuid NOT NULL,
    held integer NOT NULL CHECK (held >= 0),
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, slot, gateway_id)
);

-- Takes one of (tenant, slot)'s `cap` places for `gateway`, or returns the places already held by
-- live gateways when they are all taken (then nothing is taken). Serialised per (tenant, slot) by
-- a transaction-level advisory lock, so two gateways cannot both take the last place.
CREATE FUNCTION lease_limit_slot(
    p_tenant uuid, p_slot text, p_gateway uuid, p_cap integer, p_ttl_secs double precision
) RETURNS TABLE (taken boolean, held bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_now timestamptz := clock_timestamp();
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('sentinel_limit_slot:' || p_tenant::text || ':' || p_slot, 0));
    DELETE FROM limit_slots s
    WHERE s.tenant_id = p_tenant AND s.slot = p_slot AND s.expires_at < v_now;
    SELECT coalesce(sum(s.held), 0) INTO held
    FROM limit_slots s
    WHERE s.tenant_id = p_tenant AND s.slot = p_slot;
    taken := held < p_cap;
    IF taken THEN
        INSERT INTO limit_slots (tenant_id, slot, gateway_id, held, expires_at)
        VALUES (p_tenant, p_slot, p_gateway, 1, v_now + make_interval(secs => p_ttl_secs))
        ON CONFLICT (tenant_id, slot, gateway_id) DO UPDATE
        SET held = limit_slots.held + 1, expires_at = excluded.expires_at;
        held := held + 1;
    END IF;
    RETURN NEXT;
END
$$;

-- Gives one place back.
CREATE FUNCTION release_limit_slot(p_tenant uuid, p_slot text, p_gateway uuid) RETURNS void
LANGUAGE sql AS $$
    UPDATE limit_slots s SET held = greatest(s.held - 1, 0)
    WHERE s.tenant_id = p_tenant AND s.slot = p_slot AND s.gateway_id = p_gateway;
$$;

-- A gateway's heartbeat: what it holds now, renewed for p_ttl_secs (and written again where the
-- rows were lost: a failover empties this unlogged table); rows it no longer holds are dropped.
CREATE FUNCTION renew_limit_slots(
    p_gateway uuid, p_tenants uuid[], p_slots text[], p_held integer[], p_ttl_secs double precision
) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_expires timestamptz := clock_timestamp() + make_interval(secs => p_ttl_secs);
BEGIN
    DELETE FROM limit_slots s
    WHERE s.gateway_id = p_gateway
      AND NOT EXISTS (
          SELECT FROM unnest(p_tenants, p_slots, p_held) AS r (tenant_id, slot, held)
          WHERE r.tenant_id = s.tenant_id AND r.slot = s.slot AND r.held > 0
      );
    INSERT INTO limit_slots (tenant_id, slot, gateway_id, held, expires_at)
    SELECT r.tenant_id, r.slot, p_gateway, r.held, v_expires
    FROM unnest(p_tenants, p_slots, p_held) AS r (tenant_id, slot, held)
    WHERE r.held > 0
    ON CONFLICT (tenant_id, slot, gateway_id) DO UPDATE
    SET held = excluded.held, expires_at = excluded.expires_at;
END
$$;
