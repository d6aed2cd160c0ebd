//! The receiver: listener, sessions, targets and journal.

pub mod journal;
pub mod server;
pub mod session;
pub mod sink;
pub mod tracker;

pub use server::{ReceiveConfig, Receiver};
