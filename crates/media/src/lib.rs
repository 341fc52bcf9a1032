//! Sans-IO media for weir: frames, FLV tag headers, codec configuration records, GOP cache and
//! timestamp rebasing. No IO, no clock, no async runtime.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod aac;
pub mod audio_config;
pub mod av1;
pub mod avc;
pub mod cmaf;
pub mod flv;
pub mod flv_file;
pub mod flv_stream;
pub mod fmp4;
pub mod frame;
pub mod gop;
pub mod health;
pub mod hevc;
pub mod hls;
pub mod rebase;
pub mod record;
#[cfg(test)]
mod test_util;
pub mod track_info;
pub mod ts;

pub use aac::{AacError, AudioSpecificConfig};
pub use avc::{AvcDecoderConfig, AvcError, SequenceParameterSet};
pub use flv::{
    single_track, track_form, AudioPacket, AudioTagHeader, Codec, FlvError, SingleTrack, TrackKind,
    TrackPacket, TrackPacketType, Tracks, VideoFrameType, VideoPacket, VideoTagHeader, Withheld,
};
pub use flv_file::{FlvFileError, FlvReader, FlvTag};
pub use frame::{Audience, Frame, FrameInfo, MediaKind};
pub use gop::{GopCache, GopLimits};
pub use rebase::TimestampRebaser;
pub use track_info::{CodecDetails, TrackInfo, TrackTable};
