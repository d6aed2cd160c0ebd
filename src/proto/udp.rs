//! Netcheck's UDP probes on the data port (8703/udp): the source sends small
//! datagrams, the receiver echoes each one back unchanged. A probe carries a
//! tag keyed with the pairing code, so the receiver only echoes to holders of
//! the code and cannot be used to reflect traffic at a third party.
//!
//! Layout (40 bytes): `"FERRYUDP"` | u32 LE sequence | u32 LE run id |
//! u64 LE send time (µs, the sender's clock) | 16-byte truncated
//! HMAC-SHA256 over the first 24 bytes, keyed like the Hello proof.

use ring::hmac;

pub const MAGIC: &[u8; 8] = b"FERRYUDP";
pub const PROBE_LEN: usize = 40;

/// One probe's fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    pub seq: u32,
    pub run: u32,
    pub sent_micros: u64,
}

fn key(code: &str, fingerprint: &[u8; 32]) -> hmac::Key {
    let mut k = b"ferry udp probe v1\0".to_vec();
    k.extend_from_slice(super::pairing::normalize(code).as_bytes());
    k.extend_from_slice(fingerprint);
    hmac::Key::new(hmac::HMAC_SHA256, &k)
}

/// The datagram for `p`.
pub fn encode(code: &str, fingerprint: &[u8; 32], p: Probe) -> [u8; PROBE_LEN] {
    let mut b = [0u8; PROBE_LEN];
    b[..8].copy_from_slice(MAGIC);
    b[8..12].copy_from_slice(&p.seq.to_le_bytes());
    b[12..16].copy_from_slice(&p.run.to_le_bytes());
    b[16..24].copy_from_slice(&p.sent_micros.to_le_bytes());
    let tag = hmac::sign(&key(code, fingerprint), &b[..24]);
    b[24..].copy_from_slice(&tag.as_ref()[..16]);
    b
}

/// The probe in `b`, if it is one made with this code and fingerprint.
pub fn decode(code: &str, fingerprint: &[u8; 32], b: &[u8]) -> Option<Probe> {
    if b.len() != PROBE_LEN || &b[..8] != MAGIC {
        return None;
    }
    let tag = hmac::sign(&key(code, fingerprint), &b[..24]);
    // Constant-time comparison of the truncated tag.
    let mut diff = 0u8;
    for (x, y) in tag.as_ref()[..16].iter().zip(&b[24..]) {
        diff |= x ^ y;
    }
    if diff != 0 {
        return None;
    }
    let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().expect("4 bytes"));
    Some(Probe {
        seq: u32_at(8),
        run: u32_at(12),
        sent_micros: u64::from_le_bytes(b[16..24].try_into().expect("8 bytes")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_round_trip_only_with_the_right_code() {
        let fp = [9u8; 32];
        let p = Probe {
            seq: 7,
            run: 3,
            sent_micros: 123_456,
        };
        let b = encode("ABCD-EFGH", &fp, p);
        assert_eq!(
            decode("abcd-efgh", &fp, &b),
            Some(p),
            "codes are case-blind"
        );
        assert_eq!(decode("ABCD-EFGX", &fp, &b), None, "wrong code");
        assert_eq!(decode("ABCD-EFGH", &[8u8; 32], &b), None, "wrong receiver");
        let mut flipped = b;
        flipped[9] ^= 1;
        assert_eq!(decode("ABCD-EFGH", &fp, &flipped), None, "tampered");
        assert_eq!(decode("ABCD-EFGH", &fp, &b[..39]), None, "short");
    }
}
