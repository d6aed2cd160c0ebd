//! Chunk digests: the hash that decides whether a chunk is intact or already
//! held (BLAKE3, or xxh3-128 when CPU is scarce), and the CRC-64 (NVMe
//! polynomial) that reports list.

use super::message::{HASH_LEN, HashAlgo};

pub fn hash(algo: HashAlgo, data: &[u8]) -> [u8; HASH_LEN] {
    match algo {
        HashAlgo::Blake3 => *blake3::hash(data).as_bytes(),
        HashAlgo::Xxh3_128 => {
            let mut out = [0u8; HASH_LEN];
            out[..16].copy_from_slice(&xxhash_rust::xxh3::xxh3_128(data).to_le_bytes());
            out
        }
    }
}

pub fn crc64(data: &[u8]) -> u64 {
    let mut d = crc64fast_nvme::Digest::new();
    d.write(data);
    d.sum64()
}

/// Whether every byte is zero (such chunks travel as `Codec::Zero`).
pub fn is_zero(data: &[u8]) -> bool {
    let mut words = data.chunks_exact(16);
    words
        .by_ref()
        .all(|w| u128::from_ne_bytes(w.try_into().expect("16 bytes")) == 0)
        && words.remainder().iter().all(|&b| b == 0)
}

/// Hex text of a hash, trimmed to the algorithm's length.
pub fn hash_hex(algo: HashAlgo, h: &[u8; HASH_LEN]) -> String {
    let n = match algo {
        HashAlgo::Blake3 => 32,
        HashAlgo::Xxh3_128 => 16,
    };
    h[..n].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests() {
        assert_eq!(
            hash_hex(HashAlgo::Blake3, &hash(HashAlgo::Blake3, b"")),
            "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
        );
        let x = hash(HashAlgo::Xxh3_128, b"ferry");
        assert!(x[16..].iter().all(|&b| b == 0));
        assert_ne!(x, hash(HashAlgo::Xxh3_128, b"ferrx"));
        // CRC-64/NVME check value.
        assert_eq!(crc64(b"123456789"), 0xae8b_1486_0a79_9888);
        let mut z = vec![0u8; 4099];
        assert!(is_zero(&z[1..]));
        z[4098] = 1;
        assert!(!is_zero(&z[1..]));
        z[4098] = 0;
        z[1] = 1;
        assert!(!is_zero(&z[1..]));
        assert!(is_zero(&[]));
    }
}
