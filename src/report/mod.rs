//! Task records: the state machine and status, the events log, the report files.

pub mod events;
pub mod files;
pub mod task;
