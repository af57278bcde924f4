-- The outbox holds through platform outages (worker/src/deliver.rs).
--
-- sources.reply_ttl: how long, in seconds, a reply (a reply.deliver job) keeps being retried
-- through network errors, timeouts and 5xx answers, counted from the job's created_at; after it the
-- job ends dead with `reply_expired` (and can be replayed). NULL means the default, one hour
-- (sentinel_queue::agent::DEFAULT_REPLY_TTL_SECS). Expand only: code that does not know the column
-- ignores it.
ALTER TABLE sources
    ADD COLUMN reply_ttl integer CHECK (reply_ttl BETWEEN 60 AND 604800);

-- The conversation a reply.deliver job writes to, for the order of replies within a conversation:
-- the `conversation_id` its creator wrote (the send API, agent turns and forwards), else the
-- conversation part of its address, whose field the platform's reply API names (Telegram
-- `chat_id`, Slack `channel`, WhatsApp `to`: `ReplyApi::send_address` in queue/src/platform/).
-- tests/tests/e2e/outbox.rs checks this against every platform's address, so a new platform whose
-- address names its conversation differently fails a test.
CREATE FUNCTION reply_conversation(p_input jsonb) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT coalesce(p_input ->> 'conversation_id',
                    p_input #>> '{address,chat_id}',
                    p_input #>> '{address,channel}',
                    p_input #>> '{address,to}')
$$;

-- A delivery first looks for an older reply of its source and conversation that is not final yet
-- (queued or running) and waits behind it; this index answers that from the undelivered replies
-- alone. Like jobs_forward_claim, it is built in the migration's transaction.
CREATE INDEX jobs_reply_order ON jobs (source_id, reply_conversation(input), id)
    WHERE kind = 'reply.deliver' AND status IN ('queued', 'running');
