-- Conversations as lanes (issue 28): at most one agent turn runs per (source, conversation) at a
-- time, whatever answers it; turns take the conversation's unanswered messages in the user's
-- order; a burst is answered as one turn once the conversation has been quiet for the source's
-- turn_quiet_ms (or turn_max_wait_ms after its first unanswered message).
--
-- Three tables, written by sentinel_queue::conversations:
-- - conversations: one row per conversation, the lane's head. turn_job_id names the turn holding
--   the lane (its job queued or running), NULL when the lane is free. Only free lanes with
--   something to answer are in conversations_due, so the starter's cost follows the conversations
--   that are due, not all of them (the lesson of graphile/worker PR#558).
-- - conversation_messages: every message appended, in the platform's order (order_key: Telegram's
--   update_id, WhatsApp's timestamp, Slack's ts; NULL: arrival order, id), bound to the turn that
--   answers it and given its place in the history (position) when that turn is made.
-- - conversation_turns: one row per turn, with the reply it queued, read back as history.
--
-- Only additions: code that does not know these tables is unaffected by them.

ALTER TABLE sources
    ADD COLUMN turn_quiet_ms integer NOT NULL DEFAULT 1500
        CONSTRAINT sources_turn_quiet_ms CHECK (turn_quiet_ms BETWEEN 0 AND 60000),
    ADD COLUMN turn_max_wait_ms integer NOT NULL DEFAULT 8000
        CONSTRAINT sources_turn_max_wait_ms CHECK (turn_max_wait_ms BETWEEN 0 AND 600000),
    ADD CONSTRAINT sources_turn_wait CHECK (turn_max_wait_ms >= turn_quiet_ms),
    -- What a message arriving while a turn holds the lane does: 'wait' for the next turn, or
    -- 'interrupt' the turn (its job is canceled; its messages are answered by the next turn).
    ADD COLUMN turn_on_new_message text NOT NULL DEFAULT 'wait'
        CONSTRAINT sources_turn_on_new_message CHECK (turn_on_new_message IN ('wait', 'interrupt')),
    -- Whether the platform shows "typing…" while a turn runs; NULL: only for the built-in agent.
    ADD COLUMN turn_typing boolean;

CREATE TABLE conversations (
    source_id           uuid NOT NULL REFERENCES sources (id) ON DELETE CASCADE,
    conversation_id     text NOT NULL CHECK (length(conversation_id) BETWEEN 1 AND 512),
    tenant_id           uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    -- The turn holding the lane; NULL: free.
    turn_job_id         bigint,
    -- Arrival of the oldest unanswered message (NULL: none), and of the newest message.
    first_unanswered_at timestamptz,
    last_message_at     timestamptz NOT NULL,
    -- When the next turn may start: turn_start_at(first_unanswered_at, last_message_at, …).
    next_start_at       timestamptz,
    -- The next place in the history to give a message.
    next_position       bigint NOT NULL DEFAULT 1,
    turns               bigint NOT NULL DEFAULT 0,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source_id, conversation_id),
    CHECK ((next_start_at IS NULL) = (first_unanswered_at IS NULL))
);
CREATE INDEX conversations_due ON conversations (next_start_at)
    WHERE turn_job_id IS NULL AND next_start_at IS NOT NULL;
CREATE UNIQUE INDEX conversations_turn ON conversations (turn_job_id) WHERE turn_job_id IS NOT NULL;
-- GET /v1/conversations: a tenant's conversations, most recent first (keyset pages).
CREATE INDEX conversations_recent ON conversations (tenant_id, last_message_at DESC, source_id, conversation_id);
-- Retention's: idle heads, no turn open and nothing unanswered.
CREATE INDEX conversations_idle ON conversations (updated_at)
    WHERE turn_job_id IS NULL AND next_start_at IS NULL;
-- Heads are updated on every message and turn: room for HOT updates.
ALTER TABLE conversations SET (fillfactor = 70);

CREATE TABLE conversation_messages (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source_id       uuid NOT NULL,
    conversation_id text NOT NULL,
    tenant_id       uuid NOT NULL,
    -- The webhook.inbound job that carried it (no foreign key: retention deletes jobs).
    inbound_job_id  bigint NOT NULL,
    order_key       numeric,
    arrived_at      timestamptz NOT NULL,
    -- The canonical message, its text, and where its reply goes (platform::reply_address).
    message         jsonb NOT NULL,
    text            text NOT NULL DEFAULT '',
    address         jsonb NOT NULL DEFAULT 'null',
    -- The turn answering it, and its place in the history; NULL while unanswered.
    turn_job_id     bigint,
    position        bigint,
    -- Why no turn answers it (the reply policy refused it, the source's agent is none): such a
    -- message is in the history, never in a turn.
    dropped         text,
    FOREIGN KEY (source_id, conversation_id) REFERENCES conversations ON DELETE CASCADE
);
CREATE UNIQUE INDEX conversation_messages_inbound ON conversation_messages (source_id, inbound_job_id);
CREATE INDEX conversation_messages_unanswered
    ON conversation_messages (source_id, conversation_id, order_key, id)
    WHERE turn_job_id IS NULL AND dropped IS NULL;
CREATE INDEX conversation_messages_history
    ON conversation_messages (source_id, conversation_id, position) WHERE position IS NOT NULL;
CREATE INDEX conversation_messages_turn ON conversation_messages (turn_job_id)
    WHERE turn_job_id IS NOT NULL;

CREATE TABLE conversation_turns (
    -- The turn's job: agent.reply, agent.turn or agent.forward.
    job_id          bigint PRIMARY KEY,
    source_id       uuid NOT NULL,
    conversation_id text NOT NULL,
    tenant_id       uuid NOT NULL,
    kind            text NOT NULL,
    -- open: holds the lane; answered: queued a reply; unanswered: ended without one (the agent
    -- chose not to answer); failed: its job is dead; canceled: its job was canceled (its
    -- messages stay unanswered); interrupted: canceled by a newer message under
    -- on_new_message = 'interrupt' (its messages go to the next turn).
    status          text NOT NULL DEFAULT 'open'
                    CHECK (status IN ('open', 'answered', 'unanswered', 'failed', 'canceled', 'interrupted')),
    -- When a newer message asked for it to be interrupted.
    interrupted_at  timestamptz,
    -- When a worker last sent the platform's typing indicator for it.
    typing_at       timestamptz,
    -- The history positions of the messages it answers.
    first_position  bigint NOT NULL,
    last_position   bigint NOT NULL,
    -- The reply it queued (reply.deliver), recorded in the transaction that queued it.
    reply           text,
    reply_job_id    bigint,
    created_at      timestamptz NOT NULL DEFAULT now(),
    ended_at        timestamptz,
    FOREIGN KEY (source_id, conversation_id) REFERENCES conversations ON DELETE CASCADE
);
-- The lane's invariant, held by the database whatever the code does: one open turn per
-- conversation.
CREATE UNIQUE INDEX conversation_turns_open ON conversation_turns (source_id, conversation_id)
    WHERE status = 'open';
CREATE INDEX conversation_turns_conversation ON conversation_turns (source_id, conversation_id, job_id);
CREATE INDEX conversation_turns_reply ON conversation_turns (reply_job_id) WHERE reply_job_id IS NOT NULL;

-- When a conversation whose oldest unanswered message arrived at p_first and newest at p_last
-- may start its next turn: once quiet for p_quiet_ms, and never later than p_max_wait_ms after
-- p_first. NULL when nothing is unanswered.
CREATE FUNCTION turn_start_at(p_first timestamptz, p_last timestamptz, p_quiet_ms int, p_max_wait_ms int)
RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN p_first IS NOT NULL THEN
        least(p_last + p_quiet_ms * interval '1 ms', p_first + p_max_wait_ms * interval '1 ms')
    END
$$;

-- The data of a turn.started or turn.ended event (the job's fields, as every event has, with
-- the turn's): the turn's job, its kind, the turn's status, its conversation, how many messages
-- it answers, and the reply it queued.
CREATE FUNCTION turn_event_data(p_job_id bigint, p_kind text, p_status text, p_source_id uuid,
                                p_conversation_id text, p_messages bigint, p_reply_job_id bigint)
RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT job_event_data(p_job_id, p_kind, p_status, 0,
                          jsonb_build_object('source_id', p_source_id,
                                             'conversation_id', p_conversation_id,
                                             'messages', p_messages,
                                             'reply_job_id', p_reply_job_id))
$$;

-- The kinds of a turn's job: sentinel_queue::kinds::TURN_KINDS, checked at start-up
-- (sentinel_queue::db::check_schema).
CREATE FUNCTION sentinel_turn_kinds() RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT ARRAY['agent.reply', 'agent.turn', 'agent.forward']
$$;

-- Frees the lane of the turn p_job_id, which ended with job status p_status: records how it
-- ended, hands an interrupted turn's messages back to the conversation, sets when the next turn
-- may start (from the messages still unanswered), appends the turn.ended event and wakes the
-- turn starters. Does nothing for a job that is not an open turn (a replay, a job of another
-- kind). Runs in the transaction that ended the job (the trigger below), after the job's row:
-- nothing that holds a head ever waits for a job row, so the order is the same everywhere.
CREATE FUNCTION free_lane(p_job_id bigint, p_status text) RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    v_turn conversation_turns;
BEGIN
    UPDATE conversation_turns
    SET ended_at = now(),
        status = CASE
            WHEN p_status = 'succeeded' AND reply_job_id IS NOT NULL THEN 'answered'
            WHEN p_status = 'succeeded' THEN 'unanswered'
            WHEN p_status = 'dead' THEN 'failed'
            -- Asked for by a newer message: in this transaction (sentinel.interrupting names the
            -- job, set by sentinel_queue::conversations::append) or earlier (interrupted_at).
            WHEN interrupted_at IS NOT NULL
                 OR current_setting('sentinel.interrupting', true) = p_job_id::text THEN 'interrupted'
            ELSE 'canceled'
        END
    WHERE job_id = p_job_id AND status = 'open'
    RETURNING * INTO v_turn;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF v_turn.status = 'interrupted' THEN
        -- Unanswered again: the next turn carries them with the message that interrupted.
        UPDATE conversation_messages
        SET turn_job_id = NULL, position = NULL
        WHERE turn_job_id = p_job_id;
    END IF;
    UPDATE conversations c
    SET turn_job_id = NULL,
        updated_at = now(),
        -- An interrupted turn gives its places in the history back when they are the last ones.
        next_position = CASE WHEN v_turn.status = 'interrupted'
                                  AND c.next_position = v_turn.last_position + 1
                             THEN v_turn.first_position ELSE c.next_position END,
        first_unanswered_at = u.first,
        next_start_at = turn_start_at(u.first, greatest(c.last_message_at, u.last),
                                      s.turn_quiet_ms, s.turn_max_wait_ms)
    FROM sources s,
         LATERAL (SELECT min(m.arrived_at) AS first, max(m.arrived_at) AS last
                  FROM conversation_messages m
                  WHERE m.source_id = v_turn.source_id AND m.conversation_id = v_turn.conversation_id
                    AND m.turn_job_id IS NULL AND m.dropped IS NULL) u
    WHERE c.source_id = v_turn.source_id AND c.conversation_id = v_turn.conversation_id
      AND c.turn_job_id = p_job_id AND s.id = c.source_id;
    INSERT INTO events (tenant_id, job_id, type, data)
    VALUES (v_turn.tenant_id, p_job_id, 'turn.ended',
            turn_event_data(p_job_id, v_turn.kind, v_turn.status, v_turn.source_id,
                            v_turn.conversation_id,
                            v_turn.last_position - v_turn.first_position + 1, v_turn.reply_job_id));
    -- Each folded into one per transaction by Postgres.
    PERFORM pg_notify('sentinel_turns', '');
    PERFORM pg_notify('sentinel_events', '');
END
$$;

CREATE FUNCTION end_turn() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM free_lane(NEW.id, NEW.status);
    RETURN NULL;
END
$$;

-- Every path that ends a job ends its turn in the same transaction: finish (the worker's lanes,
-- the worker API's complete and fail), rescue, cancel, an operator's UPDATE. A retry (back to
-- queued) keeps the lane: the same turn runs again. WHEN keeps the cost off every other kind.
CREATE TRIGGER jobs_turn_end
    AFTER UPDATE OF status ON jobs
    FOR EACH ROW
    WHEN (NEW.status IN ('succeeded', 'dead', 'canceled')
          AND OLD.status IN ('queued', 'running')
          AND NEW.kind = ANY (sentinel_turn_kinds()))
    EXECUTE FUNCTION end_turn();

-- A turn job deleted while open (retention, an operator) frees its lane too.
CREATE FUNCTION end_deleted_turn() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM free_lane(OLD.id, 'canceled');
    RETURN NULL;
END
$$;

CREATE TRIGGER jobs_turn_deleted
    AFTER DELETE ON jobs
    FOR EACH ROW
    WHEN (OLD.status IN ('queued', 'running') AND OLD.kind = ANY (sentinel_turn_kinds()))
    EXECUTE FUNCTION end_deleted_turn();

-- For operators: each conversation's state, and its transcript in the order the agent saw it.
-- SELECT * FROM conversation_state WHERE state <> 'idle';
-- SELECT role, text, turn_job_id FROM conversation_transcript
--     WHERE source_id = '…' AND conversation_id = '…' ORDER BY position, role DESC;
CREATE VIEW conversation_state AS
SELECT c.tenant_id, c.source_id, c.conversation_id,
       CASE WHEN c.turn_job_id IS NOT NULL THEN 'running'
            WHEN c.next_start_at IS NOT NULL THEN 'waiting'
            ELSE 'idle' END AS state,
       c.turn_job_id, c.next_start_at, c.first_unanswered_at, c.last_message_at, c.turns,
       c.created_at, c.updated_at
FROM conversations c;

CREATE VIEW conversation_transcript AS
SELECT m.tenant_id, m.source_id, m.conversation_id, m.position, 'user' AS role, m.text,
       m.arrived_at AS at, m.inbound_job_id AS job_id, m.turn_job_id, m.dropped AS note
FROM conversation_messages m
UNION ALL
SELECT t.tenant_id, t.source_id, t.conversation_id, t.last_position, 'agent', t.reply,
       t.ended_at, t.reply_job_id, t.job_id, t.status
FROM conversation_turns t
WHERE t.reply IS NOT NULL;

-- agent.reply is a kind the built-in worker runs. (Every migration run sets this list from the
-- build, sentinel_queue::db::sync_builtin_kinds; a database migrated by sqlx alone, as the tests'
-- are, takes it from here.)
SELECT sync_sentinel_builtin_kinds(
    ARRAY['webhook.inbound', 'payload.heal', 'llm.generate', 'reply.deliver', 'agent.reply', 'agent.forward']);
