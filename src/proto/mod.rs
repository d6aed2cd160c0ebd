//! The data protocol between a source and a receiver (port 8703): versions,
//! messages, frames, TLS identity and pairing. docs/protocol.md is its twin.

pub mod codec;
pub mod digest;
pub mod message;
pub mod pairing;
pub mod tls;
pub mod udp;
pub mod version;
pub mod wire;

pub use codec::{FrameError, MAX_FRAME};
pub use message::Message;
