//! Task records: the events log (and, with the reports issue, the report files).

pub mod events;
pub mod files;
