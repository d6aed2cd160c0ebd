//! Table-driven reflected CRC-32 variants used by on-disk formats.
//!
//! Each function takes the running value and returns it without a final inversion,
//! matching the kernel's `crc32c_le` (ext4) and LVM2's `calc_crc`.

const fn table(poly: u32) -> [u32; 256] {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { (c >> 1) ^ poly } else { c >> 1 };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
}

static CRC32C: [u32; 256] = table(0x82F6_3B78);
static CRC32: [u32; 256] = table(0xEDB8_8320);

fn run(t: &[u32; 256], mut crc: u32, data: &[u8]) -> u32 {
    for &b in data {
        crc = t[((crc ^ b as u32) & 0xff) as usize] ^ (crc >> 8);
    }
    crc
}

/// CRC-32C (Castagnoli) update without pre/post inversion.
pub fn crc32c_raw(crc: u32, data: &[u8]) -> u32 {
    run(&CRC32C, crc, data)
}

/// CRC-32 (IEEE, reflected) update without pre/post inversion.
pub fn crc32_raw(crc: u32, data: &[u8]) -> u32 {
    run(&CRC32, crc, data)
}

/// CRC-16 (ANSI, reflected poly 0xA001) update, as ext4's `gdt_csum` uses.
pub fn crc16(mut crc: u16, data: &[u8]) -> u16 {
    for &b in data {
        crc ^= b as u16;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xA001
            } else {
                crc >> 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        // Standard check values for "123456789".
        assert_eq!(!crc32c_raw(!0, b"123456789"), 0xE306_9283);
        assert_eq!(!crc32_raw(!0, b"123456789"), 0xCBF4_3926);
        assert_eq!(crc16(0, b"123456789"), 0xBB3D);
    }
}
