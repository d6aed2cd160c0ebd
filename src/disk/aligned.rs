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

/// Buffers this large are mapped from the kernel, whose pages are zero
/// until first touched: no up-front pass zeroing them (tens of
/// milliseconds for a pipeline's read buffers), and each page is faulted
/// in by the read that first fills it, alongside the other reads, as a
/// huge page where the kernel has them.
const MAP_MIN: usize = 1 << 20;

/// A zeroed buffer aligned for O_DIRECT, meant to be reused.
pub struct AlignedBuf {
    ptr: std::ptr::NonNull<u8>,
    len: usize,
    /// From the heap with this layout; `None`: mapped (`MAP_MIN` and up).
    heap: Option<std::alloc::Layout>,
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
        if len >= MAP_MIN {
            // SAFETY: a fresh private anonymous mapping; nothing else refers to it.
            let raw = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                )
            };
            if raw == libc::MAP_FAILED {
                std::alloc::handle_alloc_error(layout);
            }
            // Huge pages where the kernel has them: a 32 MiB buffer faults
            // in as 16 pages instead of 8192. Only advice; failure is fine.
            // SAFETY: advice on the mapping just made.
            unsafe { libc::madvise(raw, len, libc::MADV_HUGEPAGE) };
            let ptr = std::ptr::NonNull::new(raw.cast::<u8>())
                .unwrap_or_else(|| std::alloc::handle_alloc_error(layout));
            return AlignedBuf {
                ptr,
                len,
                heap: None,
            };
        }
        // SAFETY: the layout has a non-zero size.
        let raw = unsafe { std::alloc::alloc_zeroed(layout) };
        let ptr =
            std::ptr::NonNull::new(raw).unwrap_or_else(|| std::alloc::handle_alloc_error(layout));
        AlignedBuf {
            ptr,
            len: layout.size(),
            heap: Some(layout),
        }
    }

    /// Capacity in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        false
    }
}

impl AsRef<[u8]> for AlignedBuf {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: `ptr` points at `len` initialised (zeroed) bytes we own
        // (a mapping's untouched pages read as zeros).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl AsMut<[u8]> for AlignedBuf {
    fn as_mut(&mut self) -> &mut [u8] {
        // SAFETY: as above, and `&mut self` makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        match self.heap {
            // SAFETY: allocated in `new` with this very layout.
            Some(layout) => unsafe { std::alloc::dealloc(self.ptr.as_ptr(), layout) },
            // SAFETY: mapped in `new` with this length, and no slice of it outlives `self`.
            None => unsafe {
                libc::munmap(self.ptr.as_ptr().cast(), self.len);
            },
        }
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

    #[test]
    fn large_buffers_are_mapped_zeroed_and_aligned() {
        let len = MAP_MIN + 3 * DIRECT_ALIGN;
        let mut b = AlignedBuf::new(len);
        assert_eq!(b.len(), len);
        assert!(b.as_ref().iter().all(|&x| x == 0));
        assert!(is_aligned(b.as_ref().as_ptr(), len, 0));
        b.as_mut()[len - 1] = 7;
        assert_eq!(b.as_ref()[len - 1], 7);
        let moved = std::thread::spawn(move || b.as_ref()[len - 1])
            .join()
            .unwrap();
        assert_eq!(moved, 7);
    }
}
