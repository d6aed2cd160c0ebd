//! The source side of a transfer: opening volumes, cutting them into chunks,
//! hashing and compressing them, and sending them.

pub mod chunk;
pub mod link;
pub mod netcheck;
mod pipeline;
pub mod rate;
pub mod record;
pub mod schedule;
pub mod send;
pub mod streams;
pub mod tally;
pub mod volumes;
pub mod watch;
