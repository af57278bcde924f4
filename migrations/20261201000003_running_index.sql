-- no-transaction
-- The claim counts each ready tenant's running jobs (fairness by running slots, queue/sql/claim.sql).
-- Running jobs are few, but without this index the count walks all of a tenant's rows.
CREATE INDEX CONCURRENTLY IF NOT EXISTS jobs_running_tenant ON jobs (tenant_id, kind, stage) WHERE status = 'running';
