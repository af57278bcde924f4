-- A cap on each tenant's queued jobs: beyond it the gateway refuses new work with 429 `queue_full`,
-- so one tenant's flood cannot grow the queue without bound. Expand-only: running code ignores it.
ALTER TABLE tenants
    ADD COLUMN max_queued_jobs integer NOT NULL DEFAULT 100000 CHECK (max_queued_jobs > 0);
