//! The receiver: listener, sessions, targets and journal.

pub mod echo;
pub mod journal;
pub mod probe;
pub mod server;
pub mod session;
pub mod sink;
pub mod tracker;

pub use server::{ReceiveConfig, Receiver};
