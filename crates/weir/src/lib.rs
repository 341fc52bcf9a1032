//! weir, the application: listeners, connection drivers, the stream hub, config and CLI.
//!
//! Start a server in-process with [`Server::start`]; the `weir` binary does exactly that with
//! the configuration from its command line.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod config;
pub mod hub;
mod rtmp;
mod server;

pub use config::Config;
pub use server::Server;
