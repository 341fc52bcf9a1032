//! The index of a fragmented MP4 recording, read from its top-level boxes: where the init
//! segment ends, and each whole fragment's byte range, start, duration, wall clock and
//! whether it starts with a key frame. Sans-IO: the caller reads each top-level box header
//! ([`box_header`]), hands over the bodies of the small boxes the index needs (`moov`,
//! `prft`, `moof`: [`Indexer::wants_body`]) and skips the rest (`mdat`).
//!
//! A file cut short (a crash while a fragment was written) ends at its last whole fragment.

use super::ntp_to_unix_ms;

/// Largest `moov` or `moof` body read (a recording's are a few KB).
pub const MAX_BOX_BODY: u64 = 4 << 20;

/// A top-level box header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BoxHeader {
    /// The four-character type.
    pub kind: [u8; 4],
    /// The whole box, header included; `None` for "to the end of the file" (size 0).
    pub size: Option<u64>,
    /// 8, or 16 with a 64-bit size.
    pub header_len: u8,
}

/// Reads a box header from the start of `bytes` (at least 16 bytes, or what remains of the
/// file); `None` if they cannot hold one or it is malformed.
pub fn box_header(bytes: &[u8]) -> Option<BoxHeader> {
    let size = u32::from_be_bytes(bytes.get(..4)?.try_into().ok()?);
    let kind: [u8; 4] = bytes.get(4..8)?.try_into().ok()?;
    match size {
        0 => Some(BoxHeader {
            kind,
            size: None,
            header_len: 8,
        }),
        1 => {
            let large = u64::from_be_bytes(bytes.get(8..16)?.try_into().ok()?);
            (large >= 16).then_some(BoxHeader {
                kind,
                size: Some(large),
                header_len: 16,
            })
        }
        2..=7 => None,
        n => Some(BoxHeader {
            kind,
            size: Some(u64::from(n)),
            header_len: 8,
        }),
    }
}

/// One track of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexTrack {
    /// Its track id.
    pub id: u32,
    /// Ticks per second.
    pub timescale: u32,
    /// A video track (`vide` handler); otherwise audio or other.
    pub video: bool,
}

/// One whole fragment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fragment {
    /// Where it starts (its `prft`, else its `moof`).
    pub offset: u64,
    /// Its bytes up to the end of its `mdat`.
    pub len: u64,
    /// The leading track's decode time at its start, seconds from the file's start.
    pub start: f64,
    /// The leading track's samples' duration in it, seconds.
    pub duration: f64,
    /// Wall clock at its start, ms since the Unix epoch, when the file says.
    pub wall_ms: Option<u64>,
    /// Its leading track's first sample is a sync sample.
    pub independent: bool,
}

/// What a recording holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FileIndex {
    /// Bytes of `ftyp` + `moov` (the init segment at offset 0); 0 without a `moov`.
    pub init_len: u64,
    /// Its tracks.
    pub tracks: Vec<IndexTrack>,
    /// Its whole fragments, in file order.
    pub fragments: Vec<Fragment>,
}

impl FileIndex {
    /// The first video track, else the first track.
    pub fn leader(&self) -> Option<IndexTrack> {
        self.tracks
            .iter()
            .find(|t| t.video)
            .or_else(|| self.tracks.first())
            .copied()
    }

    /// Seconds of media in the whole fragments.
    pub fn duration(&self) -> f64 {
        match (self.fragments.first(), self.fragments.last()) {
            (Some(first), Some(last)) => (last.start + last.duration - first.start).max(0.0),
            _ => 0.0,
        }
    }

    /// Wall clock of the first fragment, ms since the Unix epoch.
    pub fn start_wall_ms(&self) -> Option<u64> {
        self.fragments.first().and_then(|f| f.wall_ms)
    }
}

/// Why a file is not a recording weir can index.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IndexError {
    /// No `moov` before the first fragment.
    #[error("no moov box before the first fragment")]
    NoMoov,
    /// A box the index reads is larger than [`MAX_BOX_BODY`].
    #[error("a {0} box of {1} bytes is too large")]
    TooLarge(String, u64),
}

/// Builds a [`FileIndex`] box by box; see the module docs.
#[derive(Debug, Default)]
pub struct Indexer {
    index: FileIndex,
    /// A `prft` waiting for its `moof`: (offset, wall ms, media ticks, track id, end).
    prft: Option<(u64, u64, u64, u32, u64)>,
    /// A `moof` waiting for its `mdat`.
    moof: Option<PendingMoof>,
}

#[derive(Debug, Clone, Copy)]
struct PendingMoof {
    offset: u64,
    start_ticks: u64,
    duration_ticks: u64,
    independent: bool,
    wall_ms: Option<u64>,
}

impl Indexer {
    /// An index of nothing yet.
    pub fn new() -> Indexer {
        Indexer::default()
    }

    /// Whether the index needs the body of a box of this type.
    pub fn wants_body(kind: &[u8; 4]) -> bool {
        matches!(kind, b"moov" | b"moof" | b"prft")
    }

    /// Takes the top-level box at `offset` (its header, and its body when
    /// [`Indexer::wants_body`] says so). The box must be whole in the file.
    pub fn push_box(
        &mut self,
        offset: u64,
        header: BoxHeader,
        body: Option<&[u8]>,
    ) -> Result<(), IndexError> {
        let size = header.size.unwrap_or(0);
        match (&header.kind, body) {
            // Only the first `moov` describes the file.
            (b"moov", Some(body)) if self.index.init_len == 0 => {
                self.index.init_len = offset.saturating_add(size);
                self.index.tracks = parse_moov(body);
            }
            (b"prft", Some(body)) => {
                let end = offset.saturating_add(size);
                self.prft =
                    parse_prft(body).map(|(track, wall, ticks)| (offset, wall, ticks, track, end));
            }
            (b"moof", Some(body)) => {
                if self.index.init_len == 0 {
                    return Err(IndexError::NoMoov);
                }
                let leader = self.index.leader();
                let prft = self.prft.take();
                // A `prft` right before the `moof` belongs to its fragment.
                let prft = prft.filter(|p| p.4 == offset);
                let start_offset = prft.map_or(offset, |p| p.0);
                self.moof = leader.and_then(|leader| {
                    let run = parse_moof(body, leader.id)?;
                    let scale = u64::from(leader.timescale.max(1));
                    let wall_ms =
                        prft.filter(|p| p.3 == leader.id)
                            .map(|(_, wall, ticks, _, _)| {
                                let after =
                                    run.start_ticks.saturating_sub(ticks).saturating_mul(1000)
                                        / scale;
                                wall.saturating_add(after)
                            });
                    Some(PendingMoof {
                        offset: start_offset,
                        start_ticks: run.start_ticks,
                        duration_ticks: run.duration_ticks,
                        independent: run.independent,
                        wall_ms,
                    })
                });
            }
            (b"mdat", _) => {
                if let (Some(moof), Some(leader)) = (self.moof.take(), self.index.leader()) {
                    let scale = leader.timescale.max(1) as f64;
                    let previous = self.index.fragments.last().copied();
                    let start = moof.start_ticks as f64 / scale;
                    let wall_ms = moof.wall_ms.or_else(|| {
                        let p = previous?;
                        Some(
                            p.wall_ms?
                                .saturating_add(((start - p.start) * 1000.0).max(0.0) as u64),
                        )
                    });
                    self.index.fragments.push(Fragment {
                        offset: moof.offset,
                        len: offset.saturating_add(size).saturating_sub(moof.offset),
                        start,
                        duration: moof.duration_ticks as f64 / scale,
                        wall_ms,
                        independent: moof.independent,
                    });
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// The index of the boxes taken.
    pub fn finish(self) -> FileIndex {
        self.index
    }
}

/// Reads a whole file held in memory (tests, small files).
pub fn index_bytes(file: &[u8]) -> Result<FileIndex, IndexError> {
    let mut indexer = Indexer::new();
    let mut at = 0usize;
    while let Some(header) = file.get(at..).and_then(box_header) {
        let Some(size) = header.size else { break };
        let Some(end) = usize::try_from(size).ok().and_then(|s| at.checked_add(s)) else {
            break;
        };
        if end > file.len() {
            break;
        }
        let body = Indexer::wants_body(&header.kind)
            .then(|| &file[at + usize::from(header.header_len)..end]);
        if body.is_some() && size > MAX_BOX_BODY {
            return Err(IndexError::TooLarge(
                String::from_utf8_lossy(&header.kind).into(),
                size,
            ));
        }
        indexer.push_box(at as u64, header, body)?;
        at = end;
    }
    Ok(indexer.finish())
}

/// The boxes directly inside `body`: (type, content).
fn children(body: &[u8]) -> impl Iterator<Item = ([u8; 4], &[u8])> {
    let mut at = 0usize;
    std::iter::from_fn(move || {
        let header = box_header(body.get(at..)?)?;
        let size = usize::try_from(header.size.unwrap_or((body.len() - at) as u64)).ok()?;
        let end = at.checked_add(size).filter(|&e| e <= body.len())?;
        let content = &body[at + usize::from(header.header_len)..end];
        at = end;
        Some((header.kind, content))
    })
}

fn child<'a>(body: &'a [u8], kind: &[u8; 4]) -> Option<&'a [u8]> {
    children(body).find(|(k, _)| k == kind).map(|(_, c)| c)
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// The tracks of a `moov` body.
fn parse_moov(moov: &[u8]) -> Vec<IndexTrack> {
    children(moov)
        .filter(|(k, _)| k == b"trak")
        .filter_map(|(_, trak)| {
            let tkhd = child(trak, b"tkhd")?;
            let id = u32_at(tkhd, if tkhd.first() == Some(&1) { 20 } else { 12 })?;
            let mdia = child(trak, b"mdia")?;
            let mdhd = child(mdia, b"mdhd")?;
            let timescale = u32_at(mdhd, if mdhd.first() == Some(&1) { 20 } else { 12 })?;
            let hdlr = child(mdia, b"hdlr")?;
            let video = hdlr.get(8..12) == Some(b"vide");
            Some(IndexTrack {
                id,
                timescale,
                video,
            })
        })
        .collect()
}

/// (reference track, wall ms, media ticks) of a `prft` body.
fn parse_prft(prft: &[u8]) -> Option<(u32, u64, u64)> {
    let version = *prft.first()?;
    let track = u32_at(prft, 4)?;
    let ntp = u64_at(prft, 8)?;
    let ticks = if version == 1 {
        u64_at(prft, 16)?
    } else {
        u64::from(u32_at(prft, 16)?)
    };
    Some((track, ntp_to_unix_ms(ntp), ticks))
}

/// The leading track's run in a `moof`.
struct Run {
    start_ticks: u64,
    duration_ticks: u64,
    independent: bool,
}

/// The run of track `leader` in a `moof` body.
fn parse_moof(moof: &[u8], leader: u32) -> Option<Run> {
    children(moof)
        .filter(|(k, _)| k == b"traf")
        .find_map(|(_, traf)| {
            let tfhd = child(traf, b"tfhd")?;
            if u32_at(tfhd, 4)? != leader {
                return None;
            }
            let tfhd_flags = u32_at(tfhd, 0)? & 0xff_ffff;
            // Optional fields after the track id, in order.
            let mut at = 8;
            if tfhd_flags & 0x01 != 0 {
                at += 8;
            }
            if tfhd_flags & 0x02 != 0 {
                at += 4;
            }
            let default_duration = if tfhd_flags & 0x08 != 0 {
                let d = u32_at(tfhd, at);
                at += 4;
                d
            } else {
                None
            };
            if tfhd_flags & 0x10 != 0 {
                at += 4;
            }
            let default_flags = (tfhd_flags & 0x20 != 0).then(|| u32_at(tfhd, at)).flatten();
            let tfdt = child(traf, b"tfdt")?;
            let start_ticks = if tfdt.first() == Some(&1) {
                u64_at(tfdt, 4)?
            } else {
                u64::from(u32_at(tfdt, 4)?)
            };
            let mut duration_ticks = 0u64;
            let mut first_flags = None;
            for (_, trun) in children(traf).filter(|(k, _)| k == b"trun") {
                let flags = u32_at(trun, 0)? & 0xff_ffff;
                let count = u32_at(trun, 4)?;
                let mut at = 8;
                if flags & 0x01 != 0 {
                    at += 4;
                }
                let first_sample_flags = if flags & 0x04 != 0 {
                    let f = u32_at(trun, at);
                    at += 4;
                    f
                } else {
                    None
                };
                let per_sample = [0x100, 0x200, 0x400, 0x800]
                    .iter()
                    .filter(|&&bit| flags & bit != 0)
                    .count()
                    * 4;
                // A count the box cannot hold is cut to what it holds (samples without
                // per-sample fields take no room: at most one is looked at).
                let room = trun.len().saturating_sub(at);
                let count = (count as usize).min(room.checked_div(per_sample).unwrap_or(1));
                if per_sample == 0 && flags & 0x100 == 0 {
                    let all = u64::from(u32_at(trun, 4)?);
                    duration_ticks = duration_ticks.saturating_add(
                        all.saturating_mul(u64::from(default_duration.unwrap_or(0))),
                    );
                    if first_flags.is_none() && all > 0 {
                        first_flags = first_sample_flags.or(default_flags);
                    }
                    continue;
                }
                for i in 0..count {
                    let sample = at + i * per_sample;
                    let mut field = sample;
                    let duration = if flags & 0x100 != 0 {
                        let d = u32_at(trun, field)?;
                        field += 4;
                        d
                    } else {
                        default_duration.unwrap_or(0)
                    };
                    if flags & 0x200 != 0 {
                        field += 4;
                    }
                    if i == 0 && first_flags.is_none() {
                        first_flags = first_sample_flags
                            .or_else(|| (flags & 0x400 != 0).then(|| u32_at(trun, field)).flatten())
                            .or(default_flags);
                    }
                    duration_ticks = duration_ticks.saturating_add(u64::from(duration));
                }
            }
            // sample_is_non_sync_sample is bit 16 of the flags.
            let independent = first_flags.is_none_or(|f| f & 0x0001_0000 == 0);
            Some(Run {
                start_ticks,
                duration_ticks,
                independent,
            })
        })
}
