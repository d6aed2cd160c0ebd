//! The migration plan: which volumes go, to which target disk, and how the
//! target's partitions and volumes grow; then, on the receiver, applying it
//! (tables written last, filesystems and LVM grown).

pub mod target;
