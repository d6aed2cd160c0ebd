//! The receiver: listener, sessions, targets and journal.

pub mod journal;
pub mod sink;
