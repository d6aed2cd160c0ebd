//! The receiver: listener, sessions, targets and journal.

pub mod api;
pub mod conn;
pub mod echo;
pub mod hashlog;
pub mod join;
pub mod journal;
pub mod listen;
pub mod pool;
pub mod post;
pub mod probe;
pub mod server;
pub mod session;
pub mod sink;
pub mod tasks;
pub mod tracker;
pub mod verify;
pub mod write;

pub use server::{ReceiveConfig, Receiver};
