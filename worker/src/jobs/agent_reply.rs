//! `agent.reply`: a turn of the built-in agent. The conversation's history is read when the turn
//! runs (every earlier message and the reply it got, the turn just before included), the turn's
//! messages follow it (a burst as one user message), the model generates once, and the reply is
//! queued in the outbox and recorded on the turn in one transaction, so the next turn's history
//! holds it.
//!
//! The outbox job's dedupe key is `reply:<inbound job id>` (the turn's last message), so a retried
//! attempt that generates again still delivers once: it finds the first attempt's job and reports
//! that job's text.

use sentinel_queue::{
    conversations, enqueue,
    kinds::{agent_turn, agent_turn::Turn, reply_deliver},
    tables::sources,
    Job, JobError, JobResult,
};
use serde_json::{json, Value as JsonValue};

use super::answer::DEFAULT_SYSTEM_PROMPT;
use crate::{
    attempt::JobContext,
    model::{
        self,
        llm::{ChatMessage, Role},
        Purpose, Request,
    },
    services::Services,
};

pub async fn handle(services: &Services, job: &Job, context: &JobContext) -> JobResult {
    let input = agent_turn::Input::of(&job.input)
        .map_err(|problem| JobError::fatal("invalid_input", problem))?;
    let source = sources::for_reply(&services.pool, input.source_id)
        .await?
        .ok_or_else(|| JobError::fatal("source_deleted", "the turn's source was deleted"))?;
    let history = conversations::history(&services.pool, &[job.id])
        .await?
        .remove(&job.id)
        .unwrap_or(input.history.clone());
    let prompt = prompt(source.system_prompt, &history, &input);
    let generation = model::generate(
        services.llm.as_deref(),
        &services.pool,
        context,
        Request {
            purpose: Purpose::Reply,
            messages: &prompt,
            max_tokens: services.max_tokens,
            schema: None,
        },
    )
    .await?;
    let text = generation.text.trim().to_owned();
    if text.is_empty() {
        return Err(JobError::retry(
            "empty_reply",
            "the model produced an empty reply",
        ));
    }
    let usage = json!(generation.usage);
    if !source.has_credentials {
        return Ok(json!({
            "reply": text,
            "reply_usage": usage,
            "delivery": {"skipped": "the source has no reply credentials"},
        }));
    }
    let (delivery_id, text) = queue_reply(services, job, text).await?;
    Ok(json!({"reply": text, "reply_usage": usage, "delivery": {"job_id": delivery_id}}))
}

/// Queues the reply in the outbox and records it on the turn, in one transaction. Returns the
/// outbox job's id and the text it delivers: an earlier attempt's, when that one already queued a
/// reply.
async fn queue_reply(
    services: &Services,
    job: &Job,
    mut text: String,
) -> Result<(i64, String), JobError> {
    let deliver = reply_deliver::answer(job, &text)
        .map_err(|problem| JobError::fatal("invalid_input", problem))?;
    let mut tx = services.pool.begin().await?;
    let enqueued = enqueue(&mut *tx, &deliver).await?;
    if !enqueued.inserted {
        if let Some(existing) = Job::fetch(&mut *tx, enqueued.id).await? {
            if let Some(earlier) = existing.input.get("text").and_then(JsonValue::as_str) {
                text = earlier.to_owned();
            }
        }
    }
    conversations::record_reply(&mut *tx, job.id, &text, enqueued.id).await?;
    tx.commit().await?;
    Ok((enqueued.id, text))
}

/// The prompt of a turn: the system prompt, the history, then the turn's messages, consecutive
/// entries of one role merged into one message (a burst is one user message, and a message that
/// got no reply never puts two user turns side by side, which some chat templates refuse).
fn prompt(
    system_prompt: Option<String>,
    history: &[Turn],
    input: &agent_turn::Input,
) -> Vec<ChatMessage> {
    let system = system_prompt
        .filter(|prompt| !prompt.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_SYSTEM_PROMPT.into());
    let mut entries: Vec<(Role, String)> = history
        .iter()
        .map(|turn| {
            let role = if turn.role == "user" {
                Role::User
            } else {
                Role::Assistant
            };
            (role, turn.text.clone())
        })
        .collect();
    let messages = if input.messages.is_empty() {
        std::slice::from_ref(&input.message)
    } else {
        &input.messages[..]
    };
    entries.extend(
        messages
            .iter()
            .filter_map(|message| message.get("text").and_then(JsonValue::as_str))
            .filter(|text| !text.is_empty())
            .map(|text| (Role::User, text.to_owned())),
    );
    let mut prompt = vec![ChatMessage::new(Role::System, system)];
    let mut merged: Vec<(Role, String)> = Vec::new();
    for (role, text) in entries {
        match merged.last_mut() {
            Some((last, joined)) if *last == role => {
                joined.push('\n');
                joined.push_str(&text);
            }
            _ => merged.push((role, text)),
        }
    }
    prompt.extend(
        merged
            .into_iter()
            .map(|(role, text)| ChatMessage::new(role, text)),
    );
    prompt
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_one_user_message_after_the_history() {
        let history = vec![
            Turn {
                role: "user".into(),
                text: "hi".into(),
            },
            Turn {
                role: "agent".into(),
                text: "Hello! How can I help?".into(),
            },
            Turn {
                role: "user".into(),
                text: "unanswered".into(),
            },
        ];
        let input = agent_turn::Input {
            source_id: sqlx::types::Uuid::nil(),
            platform: "telegram".into(),
            inbound_job_id: 3,
            message: json!({"text": "with my order 1234"}),
            messages: vec![
                json!({"text": "I need help"}),
                json!({"text": "with my order 1234"}),
            ],
            history: Vec::new(),
            address: JsonValue::Null,
        };
        let prompt = prompt(None, &history, &input);
        let shown: Vec<(Role, &str)> = prompt
            .iter()
            .map(|message| (message.role, message.content.as_str()))
            .collect();
        assert_eq!(
            shown,
            [
                (Role::System, DEFAULT_SYSTEM_PROMPT),
                (Role::User, "hi"),
                (Role::Assistant, "Hello! How can I help?"),
                (Role::User, "unanswered\nI need help\nwith my order 1234"),
            ]
        );
    }
}
