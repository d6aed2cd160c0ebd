//! (being written)
use crate::disk::ReadAt;
use crate::layout::ranges::RangeSet;
use crate::layout::{Result};
use super::FsInfo;

pub fn probe(_dev: &dyn ReadAt) -> Result<Option<FsInfo>> {
    Ok(None)
}

pub fn used(dev: &dyn ReadAt) -> Result<RangeSet> {
    Ok(RangeSet::full(dev.size()))
}
