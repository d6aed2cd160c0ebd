//! The migration plan: which volumes go, to which target disk, and how the
//! target's partitions and volumes grow; then, on the receiver, applying it
//! (tables written last, filesystems and LVM grown).

pub mod apply;
mod disk;
pub mod explain;
pub mod layout;
mod lvm;
mod select;
pub mod spec;
pub mod target;

pub use explain::explain;
pub use layout::{PlanError, Planned, compute};

pub use spec::PlanSpec;

#[cfg(test)]
mod tests;
