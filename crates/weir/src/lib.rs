//! weir, the application: listeners, connection drivers, the access policy, the stream hub,
//! the viewer core every output shares, live stats, the connection registry, config and CLI.
//!
//! Start a server in-process with [`Server::start`] (or [`Server::start_with_policy`]); the
//! `weir` binary does exactly that with the configuration from its command line. The design
//! is described in `docs/ARCHITECTURE.md`.
#![deny(unsafe_code)] // allowed in one place: handoff.rs (two setsockopt calls)
#![warn(missing_docs)]

pub mod api;
pub mod auth;
mod cluster;
pub mod config;
mod handoff;
mod health_log;
mod http;
pub mod hub;
mod limits;
mod listeners;
mod log_throttle;
pub mod metrics;
pub mod policy;
mod proxy;
mod pull;
mod record;
pub mod registry;
mod relay;
pub mod reload;
mod rtmp;
mod server;
pub mod stats;
pub mod stream_key;
#[cfg(test)]
mod test_frames;
pub mod viewer;

pub use config::Config;
pub use server::Server;
pub use stream_key::StreamKey;
