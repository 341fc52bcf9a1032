//! An async RTMP client on top of `weir_rtmp::session::ClientSession` (placeholder).
