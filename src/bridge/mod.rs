//! The bridge side of the socket: a client that holds a transport session
//! and forwards messages to `hearth serve`. [`simulate`] replaces the
//! transport with stdin/stdout (tests, benchmarks, trying Hearth without a
//! phone); the WhatsApp adapter comes later.
//!
//! Must not open the store, the index or a model: the bridge only maps
//! transport messages to protocol frames and back.

pub mod simulate;
