//! Sans-IO RTMP for weir.
//!
//! This crate turns bytes into RTMP events and events into bytes. It never touches a socket,
//! never reads the clock (time comes in as `now: Instant` arguments) and never spawns tasks.
//! Layers, in the order the spec describes them:
//!
//! * [`handshake`]: C0/C1/C2 and S0/S1/S2, simple and complex (digest) styles;
//! * [`chunk`]: the chunk stream codec (decoder and encoder);
//! * [`amf0`] and [`amf3`]: the Action Message Formats used by commands and metadata;
//! * [`message`]: protocol control, user control, media and command messages;
//! * [`command`]: NetConnection/NetStream commands and their replies;
//! * [`session`]: server and client sessions tying it all together;
//! * [`time`]: wrapping 32-bit RTMP timestamps.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod amf0;
pub mod amf3;
pub mod caps;
pub mod chunk;
pub mod command;
pub mod handshake;
pub mod message;
pub mod session;
pub mod time;
