//! Server and client sessions (placeholder until implemented).
