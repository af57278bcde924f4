-- The planner settings every Sentinel connection asks for (sentinel_queue::db::SESSION_OPTIONS),
-- made the database's defaults, so a connection through a pooler in transaction mode (issue 30),
-- which sends no session settings, plans the same way: each statement for its own parameters
-- (plan_cache_mode = force_custom_plan), without JIT compilation (jit = off). They apply to
-- sessions that start after this migration. A role that does not own the database cannot set
-- them; then a notice says so, and connections through a pooler plan with the server's defaults
-- (correct, and measured 3-4x slower for the claim).
DO $$
BEGIN
    EXECUTE format('ALTER DATABASE %I SET plan_cache_mode = force_custom_plan', current_database());
    EXECUTE format('ALTER DATABASE %I SET jit = off', current_database());
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'could not set plan_cache_mode and jit for database %: %', current_database(), SQLERRM;
END
$$;
