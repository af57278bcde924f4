-- The agent reads the last messages of a conversation from the jobs that carried them: the
-- healed message and the reply of each succeeded webhook.inbound job. This index serves that
-- read (worker/src/reply.rs) and operators who look up a conversation with SQL.
CREATE INDEX jobs_conversation
    ON jobs (tenant_id, source_id, (result #>> '{message,conversation_id}'), finished_at DESC)
    WHERE kind = 'webhook.inbound' AND status = 'succeeded';
