//! Heap buffers aligned for O_DIRECT (offsets, lengths and buffer addresses
//! must all be multiples of the device's logical block size; 4096 covers
//! every disk and filesystem ferry meets).

/// Alignment of O_DIRECT transfers: offsets, lengths and buffer addresses.
pub const DIRECT_ALIGN: usize = 4096;

/// Whether a transfer of `len` bytes at `offset` into or out of `ptr` may go
/// through an O_DIRECT descriptor.
pub fn is_aligned(ptr: *const u8, len: usize, offset: u64) -> bool {
    len > 0
        && offset.is_multiple_of(DIRECT_ALIGN as u64)
        && len.is_multiple_of(DIRECT_ALIGN)
        && (ptr as usize).is_multiple_of(DIRECT_ALIGN)
}

/// A zeroed heap buffer aligned for O_DIRECT, meant to be reused.
pub struct AlignedBuf {
    ptr: std::ptr::NonNull<u8>,
    layout: std::alloc::Layout,
}

// SAFETY: the buffer owns its allocation exclusively (like a `Vec<u8>`); moving
// it to another thread moves that ownership.
unsafe impl Send for AlignedBuf {}
// SAFETY: a shared `&AlignedBuf` only hands out `&[u8]` (like `&Vec<u8>`);
// writing needs `&mut`.
unsafe impl Sync for AlignedBuf {}

impl AlignedBuf {
    pub fn new(len: usize) -> Self {
        let layout =
            std::alloc::Layout::from_size_align(len.max(1), DIRECT_ALIGN).expect("valid layout");
        // SAFETY: the layout has a non-zero size.
        let raw = unsafe { std::alloc::alloc_zeroed(layout) };
        let ptr =
            std::ptr::NonNull::new(raw).unwrap_or_else(|| std::alloc::handle_alloc_error(layout));
        AlignedBuf { ptr, layout }
    }

    /// Capacity in bytes.
    pub fn len(&self) -> usize {
        self.layout.size()
    }

    pub fn is_empty(&self) -> bool {
        false
    }
}

impl AsRef<[u8]> for AlignedBuf {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: `ptr` points at `layout.size()` initialised (zeroed) bytes we own.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.layout.size()) }
    }
}

impl AsMut<[u8]> for AlignedBuf {
    fn as_mut(&mut self) -> &mut [u8] {
        // SAFETY: as above, and `&mut self` makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.layout.size()) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this very layout.
        unsafe { std::alloc::dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned() {
        let mut b = AlignedBuf::new(8192);
        assert_eq!(b.len(), 8192);
        assert!(b.as_ref().iter().all(|&x| x == 0));
        assert!(is_aligned(b.as_mut().as_ptr(), 8192, 4096));
        assert!(!is_aligned(b.as_ref()[1..].as_ptr(), 4096, 4096));
        assert!(!is_aligned(b.as_ref().as_ptr(), 4095, 4096));
        assert!(!is_aligned(b.as_ref().as_ptr(), 4096, 512));
        assert!(!is_aligned(b.as_ref().as_ptr(), 0, 0));
    }
}
