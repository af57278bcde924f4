-- no-transaction
-- The forward claim's tenant fairness (queue/src/agent.rs, claim_forwards): tenants with the same
-- number of running forwards go least recently served first, by the latest started_at of their
-- agent.forward jobs. Without this index that max walks a tenant's other jobs (its webhooks and
-- replies) back to its last forward; with it, it is one probe. Only forwards are in it.
CREATE INDEX CONCURRENTLY IF NOT EXISTS jobs_forward_started ON jobs (tenant_id, started_at)
    WHERE kind = 'agent.forward' AND started_at IS NOT NULL;
