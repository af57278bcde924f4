-- Which healing steps may trigger the agent's automatic reply to a source's messages:
-- `deterministic` (the platform's adapter, repair and unwrapping: the default), `extracted` (the
-- generic extractor's heals too), `any` (the model's heals too) or `never`. A message healed below the policy still succeeds; its job records
-- `result.reply_skipped`. Expand-only: running code ignores the column.
ALTER TABLE sources
    ADD COLUMN reply_policy text NOT NULL DEFAULT 'deterministic'
        CHECK (reply_policy IN ('deterministic', 'extracted', 'any', 'never'));
