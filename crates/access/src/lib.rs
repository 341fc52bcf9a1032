//! Sans-IO pieces of weir's access control: parsers for what arrives from outside before a
//! client is let in. No IO, no clock, no async runtime; each parser has named limits, unit and
//! property tests, and a fuzz target (`fuzz/`).
//!
//! - [`webhook`]: the reply of an `on_connect` / `on_publish` / `on_play` webhook.
//! - [`proxy`]: PROXY protocol v1 (text) and v2 (binary) headers from a TCP load balancer.
//! - [`forwarded`]: the client address in `X-Forwarded-For` from trusted reverse proxies.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod forwarded;
pub mod proxy;
pub mod webhook;
