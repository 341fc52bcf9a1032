//! Chunk stream encoder (placeholder until implemented).

/// Splits messages into chunks.
#[derive(Debug)]
pub struct ChunkEncoder;
