//! The worker's integration tests, in one binary because each binary links mistral.rs (link time
//! and disk): `cargo test --release -p sentinel-worker --test worker <module>::` runs one file.
#![allow(clippy::unwrap_used)]

mod heal;
mod kernels;
mod process;
