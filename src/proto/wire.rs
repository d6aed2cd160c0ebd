//! Little-endian encoding primitives for message bodies, with bounds checked
//! on every read: a short or malformed body is a [`WireError`], never a panic.

use bytes::{BufMut, Bytes, BytesMut};

/// Longest string on the wire (names, messages).
pub const MAX_STRING: usize = 4096;

/// Why a body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("message truncated at byte {0}")]
    Truncated(usize),
    #[error("{what} at byte {at}: {why}")]
    Invalid {
        what: &'static str,
        at: usize,
        why: String,
    },
    #[error("{0} trailing bytes after the message")]
    Trailing(usize),
}

/// Builds a message body.
#[derive(Default)]
pub struct Writer(pub BytesMut);

impl Writer {
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.0.put_u8(v);
        self
    }
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.0.put_u16_le(v);
        self
    }
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.0.put_u32_le(v);
        self
    }
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.0.put_u64_le(v);
        self
    }
    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.u8(v as u8)
    }
    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.0.put_slice(v);
        self
    }
    /// A string: u16 length, then UTF-8 (truncated to [`MAX_STRING`] bytes on a
    /// character boundary).
    pub fn str(&mut self, s: &str) -> &mut Self {
        let mut end = s.len().min(MAX_STRING);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        self.u16(end as u16).bytes(&s.as_bytes()[..end])
    }
}

/// Reads a message body.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }
    pub fn pos(&self) -> usize {
        self.pos
    }
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or(WireError::Truncated(self.pos))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    pub fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }
    pub fn u16(&mut self) -> Result<u16, WireError> {
        Ok(u16::from_le_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }
    pub fn u32(&mut self) -> Result<u32, WireError> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    pub fn u64(&mut self) -> Result<u64, WireError> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        Ok(self.take(N)?.try_into().expect("N bytes"))
    }
    pub fn bool(&mut self) -> Result<bool, WireError> {
        let at = self.pos;
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(self.invalid_at("bool", at, format!("{v} is not 0 or 1"))),
        }
    }
    pub fn str(&mut self) -> Result<String, WireError> {
        let at = self.pos;
        let n = self.u16()? as usize;
        if n > MAX_STRING {
            return Err(self.invalid_at(
                "string",
                at,
                format!("{n} bytes, more than {MAX_STRING}"),
            ));
        }
        let b = self.take(n)?;
        String::from_utf8(b.to_vec()).map_err(|_| self.invalid_at("string", at, "not UTF-8".into()))
    }
    /// A u32 element count, refused above `max`.
    pub fn count(&mut self, what: &'static str, max: usize) -> Result<usize, WireError> {
        let at = self.pos;
        let n = self.u32()? as usize;
        if n > max {
            return Err(self.invalid_at(what, at, format!("{n} entries, more than {max}")));
        }
        Ok(n)
    }
    pub fn invalid_at(&self, what: &'static str, at: usize, why: String) -> WireError {
        WireError::Invalid { what, at, why }
    }
    /// The rest of the body, without copying out of `frame`.
    pub fn rest(&mut self, frame: &Bytes) -> Bytes {
        let start = self.pos;
        self.pos = self.buf.len();
        frame.slice(start..)
    }
    /// Every byte must have been consumed.
    pub fn finish(&self) -> Result<(), WireError> {
        match self.buf.len() - self.pos {
            0 => Ok(()),
            n => Err(WireError::Trailing(n)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_bounds() {
        let mut w = Writer::default();
        w.u8(7)
            .u16(513)
            .u32(70000)
            .u64(u64::MAX)
            .bool(true)
            .str("héllo");
        let b = w.0.freeze();
        let mut r = Reader::new(&b);
        assert_eq!(r.u8().unwrap(), 7);
        assert_eq!(r.u16().unwrap(), 513);
        assert_eq!(r.u32().unwrap(), 70000);
        assert_eq!(r.u64().unwrap(), u64::MAX);
        assert!(r.bool().unwrap());
        assert_eq!(r.str().unwrap(), "héllo");
        r.finish().unwrap();
        assert_eq!(r.u8(), Err(WireError::Truncated(b.len())));
    }

    #[test]
    fn refuses_bad_values() {
        assert!(Reader::new(&[2]).bool().is_err());
        assert!(Reader::new(&[3, 0, 0xff, 0xfe, 0xfd]).str().is_err());
        assert!(
            Reader::new(&[0xff, 0xff, 0xff, 0xff])
                .count("x", 10)
                .is_err()
        );
        let long = "é".repeat(MAX_STRING);
        let mut w = Writer::default();
        w.str(&long);
        let b = w.0.freeze();
        let s = Reader::new(&b).str().unwrap();
        assert!(s.len() <= MAX_STRING && long.starts_with(&s));
    }
}
