-- The stage of a job's processing that runs next, so that each worker lane claims only what it
-- can run. Healing jobs (webhook.inbound, payload.heal) start at 'new', where the deterministic
-- lane claims them hundreds at a time and heals them without the model. One that needs the model
-- (the LLM healing step, or the agent's reply) is handed off to 'model', which only the model
-- lane claims, a few at a time. Every other kind stays at 'new'.
-- A hand-off is an attempt row with outcome 'handed_off'; it does not spend an attempt.
ALTER TABLE jobs ADD COLUMN stage text NOT NULL DEFAULT 'new' CHECK (stage IN ('new', 'model'));

ALTER TABLE job_attempts DROP CONSTRAINT job_attempts_outcome_check;
ALTER TABLE job_attempts ADD CONSTRAINT job_attempts_outcome_check
    CHECK (outcome IN ('succeeded', 'retry', 'dead', 'snoozed', 'canceled', 'lease_expired', 'handed_off'));
