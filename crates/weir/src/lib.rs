//! weir, the application: listeners, connection drivers, the stream hub, config and CLI.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
