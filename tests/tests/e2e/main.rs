//! The end-to-end tests: the gateway, the worker with the real default model, PostgreSQL and fake
//! platform APIs on loopback. One test binary, because each binary links mistral.rs, which costs
//! link time and disk: `cargo test --release -p sentinel-e2e --test e2e <module>::` runs one file.
//! Tests that time themselves, count every log line or load the machine on purpose take it alone
//! (`sentinel_e2e::alone`); the rest share it (`sentinel_e2e::shared`).
#![allow(clippy::unwrap_used)]

mod agents;
mod burst;
mod faults;
mod forward_fairness;
mod llm;
mod logs;
mod outbox;
mod replies;
mod scale;
mod slow_platform;
