//! The outgoing byte queue of a connection, holding chunked messages without copying their
//! payloads.
//!
//! A message longer than a chunk is queued as its first header, the shared payload and the
//! continuation header to put between its chunks. The writer asks for [`IoSlice`]s and gets
//! the payload pieces straight from the shared `Bytes` with the continuation headers between
//! them, so a frame sent to a thousand players is never copied a thousand times. Small
//! messages (control, commands, small audio frames) are copied into one contiguous scratch
//! buffer, which is cheaper than tracking them separately.

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::{Bytes, BytesMut};

/// Allocation size of the scratch buffer that holds headers and small messages.
const SCRATCH_BLOCK: usize = 4096;

/// Payloads up to this size are copied into the scratch buffer instead of being shared.
const COPY_THRESHOLD: usize = 256;

/// A continuation chunk header: basic header (1-3 bytes) and, when an extended timestamp is
/// in force, the 4-byte extended timestamp.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Continuation {
    bytes: [u8; 7],
    len: u8,
}

impl Continuation {
    pub(crate) fn new(basic: &[u8], extended: Option<u32>) -> Self {
        let mut bytes = [0u8; 7];
        let mut len = basic.len().min(3);
        bytes[..len].copy_from_slice(&basic[..len]);
        if let Some(value) = extended {
            bytes[len..len + 4].copy_from_slice(&value.to_be_bytes());
            len += 4;
        }
        Self {
            bytes,
            len: len as u8,
        }
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// A shared payload with its first chunk header kept inline (no allocation, no reference
/// count of its own) and, when it is longer than one chunk, the continuation header that
/// separates its chunks.
#[derive(Debug)]
struct Chunked {
    header: [u8; MAX_HEADER],
    header_len: u8,
    payload: Bytes,
    chunk_size: usize,
    continuation: Continuation,
}

/// The longest first chunk header: 3-byte basic header, 11-byte message header, 4-byte
/// extended timestamp.
const MAX_HEADER: usize = 18;

impl Chunked {
    fn header(&self) -> &[u8] {
        &self.header[..usize::from(self.header_len)]
    }

    fn pieces(&self) -> usize {
        self.payload.len().div_ceil(self.chunk_size).max(1)
    }

    /// The chunked payload's length, without the first header.
    fn body_len(&self) -> usize {
        self.payload.len() + (self.pieces() - 1) * self.continuation.as_slice().len()
    }

    fn len(&self) -> usize {
        self.header().len() + self.body_len()
    }
}

#[derive(Debug)]
enum Item {
    Bytes(Bytes),
    Chunked(Chunked),
}

impl Item {
    fn len(&self) -> usize {
        match self {
            Self::Bytes(bytes) => bytes.len(),
            Self::Chunked(chunked) => chunked.len(),
        }
    }
}

/// Bytes waiting to be written, in order.
#[derive(Debug, Default)]
pub struct TransmitQueue {
    items: VecDeque<Item>,
    scratch: BytesMut,
    /// Bytes of the front item already written.
    offset: usize,
    /// Bytes queued and not yet written.
    len: usize,
}

impl TransmitQueue {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes queued and not yet written.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Queues a copy of `bytes`.
    pub fn push_copy(&mut self, bytes: &[u8]) {
        if self.scratch.capacity() - self.scratch.len() < bytes.len() {
            // Grow in blocks: after a flush the scratch has no room left, and a fresh
            // allocation per header would be one per frame per viewer.
            self.scratch.reserve(bytes.len().max(SCRATCH_BLOCK));
        }
        self.scratch.extend_from_slice(bytes);
        self.len += bytes.len();
    }

    /// Queues one message: its first chunk header, then its payload split every `chunk_size`
    /// bytes with `continuation` between the pieces.
    pub(crate) fn push_message(
        &mut self,
        header: &[u8],
        payload: Bytes,
        chunk_size: usize,
        continuation: Continuation,
    ) {
        if payload.len() <= COPY_THRESHOLD || header.len() > MAX_HEADER {
            self.push_copy(header);
            let mut pieces = payload.chunks(chunk_size);
            if let Some(first) = pieces.next() {
                self.push_copy(first);
            }
            for piece in pieces {
                self.push_copy(continuation.as_slice());
                self.push_copy(piece);
            }
            return;
        }
        self.flush_scratch();
        let mut inline = [0u8; MAX_HEADER];
        inline[..header.len()].copy_from_slice(header);
        let item = Item::Chunked(Chunked {
            header: inline,
            header_len: header.len() as u8,
            payload,
            chunk_size,
            continuation,
        });
        self.len += item.len();
        self.items.push_back(item);
    }

    fn flush_scratch(&mut self) {
        if !self.scratch.is_empty() {
            let bytes = self.scratch.split().freeze();
            self.items.push_back(Item::Bytes(bytes));
        }
    }

    /// Fills `out` with up to `max_slices` slices covering the front of the queue, and returns
    /// how many bytes they cover. Write them, then call [`Self::advance`] with the count written.
    pub fn io_slices<'a>(&'a mut self, out: &mut Vec<IoSlice<'a>>, max_slices: usize) -> usize {
        self.flush_scratch();
        let mut total = 0;
        let mut offset = self.offset;
        for item in &self.items {
            if out.len() >= max_slices {
                break;
            }
            match item {
                Item::Bytes(bytes) => {
                    let slice = &bytes[offset.min(bytes.len())..];
                    total += slice.len();
                    out.push(IoSlice::new(slice));
                }
                Item::Chunked(chunked) => {
                    total += chunked_slices(chunked, offset, out, max_slices);
                }
            }
            offset = 0;
        }
        total
    }

    /// Drops the first `written` bytes (as reported by a write).
    pub fn advance(&mut self, mut written: usize) {
        self.len = self.len.saturating_sub(written);
        while written > 0 {
            let Some(front) = self.items.front() else {
                // Only the scratch is left (io_slices flushed it, so this is not reached
                // unless the caller over-reports); drop from the scratch.
                let n = written.min(self.scratch.len());
                let _ = self.scratch.split_to(n);
                return;
            };
            let remaining = front.len() - self.offset;
            if written < remaining {
                self.offset += written;
                return;
            }
            written -= remaining;
            self.offset = 0;
            self.items.pop_front();
        }
    }

    /// Takes everything queued as one contiguous buffer (copying shared payloads). For tests
    /// and low-rate users; high-rate writers use [`Self::io_slices`].
    pub fn take_contiguous(&mut self) -> Option<Bytes> {
        if self.is_empty() {
            return None;
        }
        if self.items.is_empty() {
            self.len = 0;
            return Some(self.scratch.split().freeze());
        }
        let mut out = BytesMut::with_capacity(self.len);
        loop {
            let mut slices = Vec::with_capacity(64);
            let n = self.io_slices(&mut slices, 1024);
            if n == 0 {
                break;
            }
            for slice in &slices {
                out.extend_from_slice(slice);
            }
            drop(slices);
            self.advance(n);
        }
        Some(out.freeze())
    }
}

/// Slices of a chunked payload from `offset` on; returns the bytes covered.
fn chunked_slices<'a>(
    chunked: &'a Chunked,
    mut offset: usize,
    out: &mut Vec<IoSlice<'a>>,
    max_slices: usize,
) -> usize {
    let mut total = 0;
    let header = chunked.header();
    if offset < header.len() {
        if out.len() >= max_slices {
            return 0;
        }
        out.push(IoSlice::new(&header[offset..]));
        total += header.len() - offset;
        offset = 0;
    } else {
        offset -= header.len();
    }
    let size = chunked.chunk_size;
    let continuation = chunked.continuation.as_slice();
    let unit = size + continuation.len();
    let pieces = chunked.pieces();
    let end = chunked.body_len();
    while offset < end && out.len() < max_slices {
        let piece = offset / unit;
        let within = offset % unit;
        let slice = if within < size {
            let start = piece * size + within;
            let stop = ((piece + 1) * size).min(chunked.payload.len());
            &chunked.payload[start..stop]
        } else if piece + 1 < pieces {
            &continuation[within - size..]
        } else {
            break;
        };
        offset += slice.len();
        total += slice.len();
        out.push(IoSlice::new(slice));
    }
    total
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn flatten(queue: &mut TransmitQueue, max_slices: usize, max_write: usize) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let mut slices = Vec::new();
            let n = queue.io_slices(&mut slices, max_slices);
            if n == 0 {
                break;
            }
            let mut budget = max_write.min(n);
            let mut written = 0;
            for slice in &slices {
                let take = slice.len().min(budget);
                out.extend_from_slice(&slice[..take]);
                budget -= take;
                written += take;
                if budget == 0 {
                    break;
                }
            }
            drop(slices);
            queue.advance(written);
        }
        assert!(queue.is_empty());
        out
    }

    #[test]
    fn chunked_payload_gets_continuation_headers_between_pieces() {
        let mut queue = TransmitQueue::new();
        let payload = Bytes::from((0..600u32).map(|i| i as u8).collect::<Vec<_>>());
        queue.push_message(
            &[0x07, 0xAA],
            payload.clone(),
            256,
            Continuation::new(&[0xC7], None),
        );
        let mut expected = vec![0x07, 0xAA];
        expected.extend_from_slice(&payload[..256]);
        expected.push(0xC7);
        expected.extend_from_slice(&payload[256..512]);
        expected.push(0xC7);
        expected.extend_from_slice(&payload[512..]);
        assert_eq!(queue.len(), expected.len());
        assert_eq!(flatten(&mut queue, 1024, usize::MAX), expected);
    }

    proptest! {
        #[test]
        fn partial_writes_and_slice_limits_give_the_same_bytes(
            sizes in proptest::collection::vec(0usize..3000, 1..12),
            chunk_size in 1usize..700,
            extended in proptest::option::of(any::<u32>()),
            max_slices in 1usize..40,
            max_write in 1usize..5000,
        ) {
            let continuation = Continuation::new(&[0xC6], extended);
            let mut queue = TransmitQueue::new();
            let mut expected = Vec::new();
            for (i, size) in sizes.iter().enumerate() {
                let payload = Bytes::from(vec![i as u8; *size]);
                let header = [0x06, i as u8, 0xFF];
                queue.push_message(&header, payload.clone(), chunk_size, continuation);
                expected.extend_from_slice(&header);
                let mut pieces = payload.chunks(chunk_size);
                if let Some(first) = pieces.next() {
                    expected.extend_from_slice(first);
                }
                for piece in pieces {
                    expected.extend_from_slice(continuation.as_slice());
                    expected.extend_from_slice(piece);
                }
                queue.push_copy(&[0xEE]);
                expected.push(0xEE);
            }
            prop_assert_eq!(queue.len(), expected.len());
            prop_assert_eq!(flatten(&mut queue, max_slices, max_write), expected);
        }
    }
}
