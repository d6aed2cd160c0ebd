//! Pairing: a short one-time code the receiver shows on its console, which the
//! source proves (without sending it) in its Hello, bound to the pinned
//! certificate and a per-connection nonce. The control API's bearer token is
//! derived from the same code.

use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

/// Letters and digits that cannot be misread for one another (no 0/O, 1/I).
const ALPHABET: &[u8; 32] = b"23456789ABCDEFGHJKLMNPQRSTUVWXYZ";
/// Characters in a code (two groups of four on screen): 40 bits.
const CODE_LEN: usize = 8;

/// A new random pairing code, shown as `ABCD-EFGH`.
pub fn new_code() -> String {
    let mut raw = [0u8; CODE_LEN];
    SystemRandom::new()
        .fill(&mut raw)
        .expect("the system random source works");
    let chars: String = raw
        .iter()
        .map(|b| ALPHABET[(b % 32) as usize] as char)
        .collect();
    format!("{}-{}", &chars[..4], &chars[4..])
}

/// A code as typed: case, spaces and dashes do not matter.
pub fn normalize(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

fn key(code: &str) -> hmac::Key {
    hmac::Key::new(hmac::HMAC_SHA256, normalize(code).as_bytes())
}

fn hello_message(fingerprint: &[u8; 32], nonce: &[u8; 16]) -> Vec<u8> {
    let mut m = b"ferry pairing v1\0".to_vec();
    m.extend_from_slice(fingerprint);
    m.extend_from_slice(nonce);
    m
}

/// The Hello proof: HMAC-SHA256 over the certificate fingerprint and nonce,
/// keyed with the code.
pub fn proof(code: &str, fingerprint: &[u8; 32], nonce: &[u8; 16]) -> [u8; 32] {
    let tag = hmac::sign(&key(code), &hello_message(fingerprint, nonce));
    tag.as_ref().try_into().expect("SHA-256 is 32 bytes")
}

/// Check a Hello proof in constant time.
pub fn verify(code: &str, fingerprint: &[u8; 32], nonce: &[u8; 16], proof: &[u8; 32]) -> bool {
    hmac::verify(&key(code), &hello_message(fingerprint, nonce), proof).is_ok()
}

/// The control API's bearer token (hex), derived from the code.
pub fn api_token(code: &str, fingerprint: &[u8; 32]) -> String {
    let mut m = b"ferry api token v1\0".to_vec();
    m.extend_from_slice(fingerprint);
    hex(hmac::sign(&key(code), &m).as_ref())
}

/// A random per-connection nonce.
pub fn nonce() -> [u8; 16] {
    let mut n = [0u8; 16];
    SystemRandom::new()
        .fill(&mut n)
        .expect("the system random source works");
    n
}

pub(crate) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_look_right() {
        let c = new_code();
        assert_eq!(c.len(), 9);
        assert_eq!(&c[4..5], "-");
        assert!(normalize(&c).bytes().all(|b| ALPHABET.contains(&b)));
        assert_ne!(new_code(), c, "random");
        assert_eq!(normalize(" abcd-efgh "), "ABCDEFGH");
    }

    #[test]
    fn proof_binds_code_fingerprint_and_nonce() {
        let (fp, n) = ([9u8; 32], [3u8; 16]);
        let p = proof("ABCD-EFGH", &fp, &n);
        assert!(verify("abcdefgh", &fp, &n, &p), "typing does not matter");
        assert!(!verify("ABCD-EFGJ", &fp, &n, &p), "wrong code");
        assert!(!verify("ABCD-EFGH", &[8; 32], &n, &p), "other certificate");
        assert!(
            !verify("ABCD-EFGH", &fp, &[4; 16], &p),
            "replayed on another connection"
        );
        assert_eq!(api_token("ABCD-EFGH", &fp), api_token("abcd efgh", &fp));
        assert_eq!(api_token("ABCD-EFGH", &fp).len(), 64);
        assert_ne!(api_token("ABCD-EFGH", &fp), hex(&p));
    }
}
