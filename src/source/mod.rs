//! The source side of a transfer: opening volumes, cutting them into chunks,
//! hashing and compressing them, and sending them.

pub mod chunk;
pub mod netcheck;
pub mod rate;
pub mod send;
pub mod volumes;
