//! The typing indicator: while a turn runs, the platform shows "typing…" in its conversation
//! (Telegram `sendChatAction`, the WhatsApp Cloud API's typing indicator), for every kind of
//! agent whose source has it on (`turns.typing`; by default, the built-in agent's).
//!
//! Every [`EVERY`], each worker takes the running turns whose indicator is due
//! (`sentinel_queue::conversations::typing_due`, `FOR UPDATE SKIP LOCKED`, so across workers each
//! turn's indicator goes once per period) and sends them, [`AT_ONCE`] at a time with a short
//! timeout. An indicator is a courtesy: a failure is logged and never retried, and never touches
//! the turn or the outbox's breakers.

use std::{sync::Arc, time::Duration};

use futures::StreamExt as _;
use sentinel_queue::{
    conversations::{self, Typing},
    platform::{Outgoing, Platform},
};
use tokio::sync::watch;

use crate::services::Services;

/// How often a running turn's indicator is sent: Telegram shows one for 5 s.
pub const EVERY: Duration = Duration::from_secs(4);
/// The most indicators one pass takes.
const BATCH: i64 = 256;
/// How many are sent at once.
const AT_ONCE: usize = 16;
/// How long one send may take.
const TIMEOUT: Duration = Duration::from_secs(3);

/// Sends the due indicators every [`EVERY`] until `shutdown` turns true.
pub async fn run(services: Arc<Services>, mut shutdown: watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval(EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        match conversations::typing_due(&services.pool, EVERY, BATCH).await {
            Ok(due) => {
                futures::stream::iter(due)
                    .for_each_concurrent(AT_ONCE, |typing| send(&services, typing))
                    .await;
            }
            Err(error) => tracing::warn!(%error, "reading the due typing indicators failed"),
        }
    }
}

/// Sends one indicator, if its platform has one.
async fn send(services: &Services, typing: Typing) {
    let Ok(platform) = typing.platform.parse::<Platform>() else {
        return;
    };
    let Some(api) = &platform.spec().reply else {
        return;
    };
    let Some(request) = api.typing else {
        return;
    };
    let base = services.api_bases.base(platform, api);
    let Some(outgoing) = request(&Outgoing {
        base: &base,
        credentials: &typing.credentials,
        address: &typing.address,
        text: "",
    }) else {
        return;
    };
    let mut request = services
        .http
        .post(outgoing.url)
        .timeout(TIMEOUT)
        .json(&outgoing.body);
    if let Some(token) = outgoing.bearer {
        request = request.bearer_auth(token);
    }
    match request.send().await {
        Ok(response) if response.status().is_success() => {}
        Ok(response) => tracing::debug!(
            job.id = typing.job_id,
            %platform,
            status = response.status().as_u16(),
            "the platform refused the typing indicator"
        ),
        // Without the URL: a Telegram URL carries the bot token.
        Err(error) => tracing::debug!(
            job.id = typing.job_id,
            %platform,
            error = %error.without_url(),
            "the typing indicator was not sent"
        ),
    }
}
