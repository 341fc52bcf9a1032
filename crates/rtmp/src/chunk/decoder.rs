//! Chunk stream decoder (placeholder until implemented).

/// Limits on what a peer may make the decoder hold.
#[derive(Clone, Debug)]
pub struct DecoderLimits;

/// Errors from the chunk decoder.
#[derive(Debug)]
pub struct ChunkError;

/// Reassembles messages from chunks.
#[derive(Debug)]
pub struct ChunkDecoder;
