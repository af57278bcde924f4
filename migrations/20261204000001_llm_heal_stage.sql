-- A stage of its own for the LLM healing step: a payload no deterministic step could heal is handed
-- off to 'llm_heal', which a smaller share of the model's slots claims (SENTINEL_HEAL_SEQS), so
-- healing generations never hold the slots that agent replies and llm.generate jobs run in.
-- 'model' keeps the agent's replies (and healing jobs handed off before this migration).
-- NOT VALID, then VALIDATE: the check of existing rows takes no lock that blocks writes.
ALTER TABLE jobs DROP CONSTRAINT jobs_stage_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_stage_check
    CHECK (stage IN ('new', 'model', 'llm_heal')) NOT VALID;
ALTER TABLE jobs VALIDATE CONSTRAINT jobs_stage_check;
