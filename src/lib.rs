//! ferry: bootable live migration for bare-metal block cloning.
//!
//! The library holds every operation; `src/main.rs`, the TUI and the unattended
//! boot mode are thin callers.

pub mod boot;
pub mod cli;
pub mod disk;
pub mod inventory;
pub mod job;
pub mod layout;
pub mod plan;
pub mod proto;
pub mod receiver;
pub mod report;
pub mod source;
pub mod tui;
pub mod units;
