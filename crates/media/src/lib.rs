//! Sans-IO media for weir: frames, FLV tag headers, codec configuration records, GOP cache and
//! timestamp rebasing. No IO, no clock, no async runtime.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
