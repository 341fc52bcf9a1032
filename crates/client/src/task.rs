//! The connection task: it owns the transport and the sans-IO [`ClientSession`], and talks to
//! the [`crate::Client`] handle over two bounded channels.
//!
//! One `select!` loop, in this order of preference:
//! 1. hand waiting events to the handle (as the event channel has room);
//! 2. write the transmit queue with vectored writes (payload slices, no copy);
//! 3. read the transport continuously into the session, so a publisher answers pings, sends
//!    acknowledgements and sees an error status or the server's close at once;
//! 4. call the session's `handle_timeout` at its `poll_timeout` (and fail a write that makes
//!    no progress for the write timeout);
//! 5. take the handle's requests (publish, play, media, metadata, close).
//!
//! Reads come before timeouts so that a player whose reads were paused (see the event policy
//! in the crate documentation) reads what waited before its idle deadline is checked.

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::debug;
use weir_rtmp::chunk::TransmitQueue;
use weir_rtmp::session::{ClientEvent, ClientSession, MediaType, SessionError};

use crate::ClientError;

/// Most pieces handed to one vectored write.
const MAX_IO_SLICES: usize = 512;
/// Room reserved in the read buffer before each read.
const READ_CHUNK: usize = 64 * 1024;
/// Once this many bytes wait to be written, requests wait in their channel: senders feel the
/// peer's pace instead of the queue growing.
pub(crate) const MAX_QUEUED_OUTPUT: usize = 1 << 20;
/// Events waiting for room in the event channel beyond which a player stops reading the
/// transport (backpressure to the server).
const PLAYER_BACKLOG: usize = 64;
/// Status and user control events kept for a publisher that does not read its events; the
/// oldest are dropped beyond this.
pub(crate) const PUBLISHER_BACKLOG: usize = 1024;
/// How long a close waits for the server to close its side.
pub(crate) const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// What the handle asks of the task.
#[derive(Debug)]
pub(crate) enum Request {
    /// Publish this stream name.
    Publish(String),
    /// Play this stream name.
    Play(String),
    /// Send audio or video on the publishing stream.
    Media {
        media_type: MediaType,
        timestamp: u32,
        payload: Bytes,
    },
    /// Send metadata (`["onMetaData", {...}]`) on the publishing stream.
    Metadata { timestamp: u32, payload: Bytes },
    /// Stop the stream, flush, close our side and wait briefly for the server's close.
    Close,
}

/// The task's state.
pub(crate) struct Task<S> {
    reader: ReadHalf<S>,
    writer: WriteHalf<S>,
    session: ClientSession,
    requests: mpsc::Receiver<Request>,
    events: mpsc::Sender<ClientEvent>,
    /// Events waiting for room in `events`.
    backlog: VecDeque<ClientEvent>,
    read_buf: BytesMut,
    bytes_received: Arc<AtomicU64>,
    write_timeout: Duration,
    /// Since when queued output has waited without a byte written.
    write_stalled_since: Option<Instant>,
    /// While closing: when to give up waiting for the server's close.
    closing: Option<Instant>,
    /// Our side of the transport is shut down.
    shut_down: bool,
    /// Events dropped under the publisher policy.
    dropped_events: u64,
}

impl<S: AsyncRead + AsyncWrite + Send + 'static> Task<S> {
    pub(crate) fn new(
        io: S,
        session: ClientSession,
        requests: mpsc::Receiver<Request>,
        events: mpsc::Sender<ClientEvent>,
        bytes_received: Arc<AtomicU64>,
        write_timeout: Duration,
    ) -> Self {
        let (reader, writer) = tokio::io::split(io);
        Self {
            reader,
            writer,
            session,
            requests,
            events,
            backlog: VecDeque::new(),
            read_buf: BytesMut::with_capacity(READ_CHUNK),
            bytes_received,
            write_timeout,
            write_stalled_since: None,
            closing: None,
            shut_down: false,
            dropped_events: 0,
        }
    }

    /// Runs the connection to its end; returns why it ended ([`ClientError::Closed`] after a
    /// clean close by either side).
    pub(crate) async fn run(mut self) -> ClientError {
        let end = match self.drive().await {
            Ok(()) => ClientError::Closed,
            Err(ClientError::Session(SessionError::Timeout(what))) => ClientError::Timeout(what),
            Err(err) => err,
        };
        // What was read before the end (a refusal before the server's close) still reaches
        // the handle, as far as the channel has room.
        if self.closing.is_none() {
            while let Some(event) = self.backlog.pop_front() {
                if self.events.try_send(event).is_err() {
                    self.dropped_events += 1 + self.backlog.len() as u64;
                    break;
                }
            }
        }
        if self.dropped_events > 0 {
            debug!(
                dropped = self.dropped_events,
                "client dropped events nobody read"
            );
        }
        debug!(%end, "client connection ended");
        end
    }

    async fn drive(&mut self) -> Result<(), ClientError> {
        loop {
            let now = Instant::now();
            let queued = self.session.transmit_queue().len();
            self.write_stalled_since = match (queued, self.write_stalled_since) {
                (0, _) => None,
                (_, None) => Some(now),
                (_, since) => since,
            };
            if self.closing.is_some() && queued == 0 && !self.shut_down {
                self.shut_down = true;
                // The server may already be gone; its close is what we wait for anyway.
                let _ = tokio::time::timeout(self.write_timeout, self.writer.shutdown()).await;
            }
            let reading = self.closing.is_some()
                || self.session.is_publishing()
                || self.backlog.len() < PLAYER_BACKLOG;
            let deadline = self.deadline(reading);
            let taking_requests = self.closing.is_none() && queued < MAX_QUEUED_OUTPUT;
            let handing_events = self.closing.is_none() && !self.backlog.is_empty();
            let writing = queued > 0 && !self.shut_down;
            self.read_buf.reserve(READ_CHUNK);

            let Self {
                reader,
                writer,
                session,
                requests,
                events,
                backlog,
                read_buf,
                ..
            } = self;
            tokio::select! {
                biased;
                handed = hand_event(events, backlog), if handing_events => {
                    if !handed {
                        // The handle is gone: end as it would have asked.
                        self.start_close(now);
                    }
                }
                written = write_some(writer, session.transmit_queue()), if writing => {
                    match written {
                        Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero).into()),
                        Ok(n) => {
                            self.session.transmit_queue().advance(n);
                            self.write_stalled_since = None;
                        }
                        Err(err) => return Err(err.into()),
                    }
                }
                read = reader.read_buf(read_buf), if reading => {
                    if self.handle_read(read)? {
                        return Ok(());
                    }
                }
                () = tokio::time::sleep_until(deadline.unwrap_or(now)), if deadline.is_some() => {
                    self.handle_deadline()?;
                    if self.closing.is_some_and(|grace| Instant::now() >= grace) {
                        return Ok(());
                    }
                }
                request = requests.recv(), if taking_requests => match request {
                    Some(request) => self.handle_request(request),
                    None => self.start_close(now),
                },
            }
        }
    }

    /// The earliest of the write-stall deadline, the close grace and (while reading) the
    /// session's next deadline.
    fn deadline(&self, reading: bool) -> Option<Instant> {
        let stall = self
            .write_stalled_since
            .map(|since| since + self.write_timeout);
        let other = match self.closing {
            Some(grace) => Some(grace),
            None if reading => self.session.poll_timeout().map(Instant::from_std),
            None => None,
        };
        match (stall, other) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn handle_deadline(&mut self) -> Result<(), ClientError> {
        let now = Instant::now();
        if let Some(since) = self.write_stalled_since {
            if now >= since + self.write_timeout {
                return Err(ClientError::Timeout("write"));
            }
        }
        if self.closing.is_none() {
            self.session.handle_timeout(now.into_std())?;
        }
        Ok(())
    }

    /// Feeds what was read to the session; true when a close is complete (the server closed
    /// its side after ours).
    fn handle_read(&mut self, read: io::Result<usize>) -> Result<bool, ClientError> {
        let n = match read {
            Ok(n) => n,
            // Closing: the server may reset instead of closing; either way it is over.
            Err(_) if self.closing.is_some() => 0,
            Err(err) => return Err(err.into()),
        };
        if n == 0 {
            return match self.closing {
                Some(_) => Ok(true),
                None => Err(ClientError::Closed),
            };
        }
        if self.closing.is_some() {
            self.read_buf.clear();
            return Ok(false);
        }
        let now = Instant::now().into_std();
        self.session.handle_input_buf(now, &mut self.read_buf)?;
        self.bytes_received
            .store(self.session.bytes_received(), Ordering::Relaxed);
        self.collect_events();
        Ok(false)
    }

    /// Moves the session's events to the backlog, applying the publisher policy: media and
    /// data events are dropped, and at most [`PUBLISHER_BACKLOG`] others are kept.
    fn collect_events(&mut self) {
        while let Some(event) = self.session.poll_event() {
            if self.session.is_publishing() {
                if matches!(event, ClientEvent::Media { .. } | ClientEvent::Data { .. }) {
                    self.dropped_events += 1;
                    continue;
                }
                if self.backlog.len() >= PUBLISHER_BACKLOG {
                    self.backlog.pop_front();
                    self.dropped_events += 1;
                }
            }
            self.backlog.push_back(event);
        }
    }

    fn handle_request(&mut self, request: Request) {
        let now = Instant::now().into_std();
        match request {
            Request::Publish(name) => self.session.publish(now, &name),
            Request::Play(name) => self.session.play(now, &name),
            Request::Media {
                media_type,
                timestamp,
                payload,
            } => {
                if !self.session.send_media(media_type, timestamp, payload) {
                    debug!("client dropped media sent while not publishing");
                }
            }
            Request::Metadata { timestamp, payload } => {
                if !self.session.send_metadata(timestamp, &payload) {
                    debug!("client dropped metadata sent while not publishing");
                }
            }
            Request::Close => self.start_close(Instant::now()),
        }
    }

    /// Stops the stream (FCUnpublish, deleteStream) and starts closing: flush, shut down our
    /// side, wait up to [`CLOSE_GRACE`] for the server's close. Events are no longer handed
    /// out and requests no longer taken.
    fn start_close(&mut self, now: Instant) {
        if self.closing.is_none() {
            self.session.close_stream();
            self.closing = Some(now + CLOSE_GRACE);
            self.backlog.clear();
        }
    }
}

/// Waits for room in the event channel and moves the oldest waiting event into it; false when
/// the handle is gone. Cancel-safe: the event leaves `backlog` only when it is sent.
async fn hand_event(
    events: &mpsc::Sender<ClientEvent>,
    backlog: &mut VecDeque<ClientEvent>,
) -> bool {
    match events.reserve().await {
        Ok(permit) => {
            if let Some(event) = backlog.pop_front() {
                permit.send(event);
            }
            true
        }
        Err(_) => false,
    }
}

/// One vectored write of the front of `queue`; the caller advances the queue by the result.
async fn write_some<W: AsyncWrite + Unpin>(
    writer: &mut W,
    queue: &mut TransmitQueue,
) -> io::Result<usize> {
    let mut slices = Vec::with_capacity(16);
    queue.io_slices(&mut slices, MAX_IO_SLICES);
    writer.write_vectored(&slices).await
}
