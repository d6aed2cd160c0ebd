//! The LVM2 configuration text format used by VG metadata:
//! `name { key = value ... }` sections, values being strings, numbers or
//! `[ ... ]` lists. Comments start with `#`.

use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Int(i64),
    Float(f64),
    List(Vec<Value>),
    Section(Section),
}

/// Entries in file order; keys may repeat only in hostile input (first wins).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Section(pub Vec<(String, Value)>);

impl Section {
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
    pub fn str(&self, key: &str) -> Option<&str> {
        match self.get(key)? {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
    pub fn int(&self, key: &str) -> Option<i64> {
        match self.get(key)? {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }
    pub fn section(&self, key: &str) -> Option<&Section> {
        match self.get(key)? {
            Value::Section(s) => Some(s),
            _ => None,
        }
    }
    pub fn list(&self, key: &str) -> Option<&[Value]> {
        match self.get(key)? {
            Value::List(l) => Some(l),
            _ => None,
        }
    }
    /// Sub-sections in file order.
    pub fn sections(&self) -> impl Iterator<Item = (&str, &Section)> {
        self.0.iter().filter_map(|(k, v)| match v {
            Value::Section(s) => Some((k.as_str(), s)),
            _ => None,
        })
    }
}

/// A syntax error with the byte position in the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub pos: usize,
    pub what: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "metadata text byte {}: {}", self.pos, self.what)
    }
}

const MAX_DEPTH: usize = 32;

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
}

impl<'a> Parser<'a> {
    fn err<T>(&self, what: impl Into<String>) -> Result<T, ParseError> {
        Err(ParseError {
            pos: self.pos,
            what: what.into(),
        })
    }

    fn skip_ws(&mut self) {
        while let Some(&c) = self.s.get(self.pos) {
            if c == b'#' {
                while self.s.get(self.pos).is_some_and(|&c| c != b'\n') {
                    self.pos += 1;
                }
            } else if c.is_ascii_whitespace() || c == 0 {
                self.pos += 1;
            } else {
                break;
            }
        }
    }

    fn ident(&mut self) -> Result<String, ParseError> {
        let start = self.pos;
        while self
            .s
            .get(self.pos)
            .is_some_and(|&c| c.is_ascii_alphanumeric() || b"_-.+/".contains(&c))
        {
            self.pos += 1;
        }
        if start == self.pos {
            return self.err("expected a name");
        }
        Ok(String::from_utf8_lossy(&self.s[start..self.pos]).into_owned())
    }

    fn string(&mut self) -> Result<String, ParseError> {
        self.pos += 1; // opening quote
        let mut out = Vec::new();
        loop {
            match self.s.get(self.pos) {
                None => return self.err("unterminated string"),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(String::from_utf8_lossy(&out).into_owned());
                }
                Some(b'\\') => {
                    match self.s.get(self.pos + 1) {
                        Some(&c) => out.push(c),
                        None => return self.err("unterminated string"),
                    }
                    self.pos += 2;
                }
                Some(&c) => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    fn number(&mut self) -> Result<Value, ParseError> {
        let start = self.pos;
        while self
            .s
            .get(self.pos)
            .is_some_and(|&c| c.is_ascii_digit() || b"+-.eE".contains(&c))
        {
            self.pos += 1;
        }
        let text = std::str::from_utf8(&self.s[start..self.pos]).unwrap_or("");
        if let Ok(i) = text.parse::<i64>() {
            return Ok(Value::Int(i));
        }
        match text.parse::<f64>() {
            Ok(f) => Ok(Value::Float(f)),
            Err(_) => {
                self.pos = start;
                self.err(format!("bad number {text:?}"))
            }
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, ParseError> {
        self.skip_ws();
        match self.s.get(self.pos) {
            Some(b'"') => self.string().map(Value::Str),
            Some(b'[') => {
                if depth >= MAX_DEPTH {
                    return self.err("nesting too deep");
                }
                self.pos += 1;
                let mut items = Vec::new();
                loop {
                    self.skip_ws();
                    match self.s.get(self.pos) {
                        Some(b']') => {
                            self.pos += 1;
                            return Ok(Value::List(items));
                        }
                        Some(b',') if !items.is_empty() => self.pos += 1,
                        None => return self.err("unterminated list"),
                        _ => items.push(self.value(depth + 1)?),
                    }
                }
            }
            Some(c) if c.is_ascii_digit() || *c == b'-' || *c == b'+' => self.number(),
            _ => self.err("expected a value"),
        }
    }

    /// Entries until `}` (when `nested`) or the end of text.
    fn section(&mut self, nested: bool, depth: usize) -> Result<Section, ParseError> {
        if depth >= MAX_DEPTH {
            return self.err("nesting too deep");
        }
        let mut entries = Vec::new();
        loop {
            self.skip_ws();
            match self.s.get(self.pos) {
                None if nested => return self.err("missing '}'"),
                None => return Ok(Section(entries)),
                Some(b'}') if nested => {
                    self.pos += 1;
                    return Ok(Section(entries));
                }
                _ => {}
            }
            let key = self.ident()?;
            self.skip_ws();
            match self.s.get(self.pos) {
                Some(b'=') => {
                    self.pos += 1;
                    let v = self.value(depth)?;
                    entries.push((key, v));
                }
                Some(b'{') => {
                    self.pos += 1;
                    let s = self.section(true, depth + 1)?;
                    entries.push((key, Value::Section(s)));
                }
                _ => return self.err(format!("expected '=' or '{{' after {key:?}")),
            }
        }
    }
}

/// Parse metadata text into its top-level section.
pub fn parse(text: &[u8]) -> Result<Section, ParseError> {
    Parser { s: text, pos: 0 }.section(false, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_metadata_shape() {
        let t = br#"vg0 {
id = "abc"
seqno = 3
status = ["RESIZEABLE", "READ"]
logical_volumes {
root {
segment1 {
start_extent = 0
stripes = [
"pv0", 0
]
}
}
}
}
# Generated by LVM2
contents = "Text Format Volume Group"
version = 1
description = "with \"quotes\""
f = 1.5
"#;
        let top = parse(t).unwrap();
        let vg = top.section("vg0").unwrap();
        assert_eq!(vg.str("id"), Some("abc"));
        assert_eq!(vg.int("seqno"), Some(3));
        assert_eq!(vg.list("status").unwrap().len(), 2);
        let seg = vg
            .section("logical_volumes")
            .and_then(|l| l.section("root"))
            .and_then(|r| r.section("segment1"))
            .unwrap();
        assert_eq!(
            seg.list("stripes").unwrap(),
            &[Value::Str("pv0".into()), Value::Int(0)]
        );
        assert_eq!(top.str("description"), Some("with \"quotes\""));
        assert_eq!(top.get("f"), Some(&Value::Float(1.5)));
    }

    #[test]
    fn errors_name_the_position() {
        assert_eq!(parse(b"a {").unwrap_err().what, "missing '}'");
        assert!(parse(b"a = ").is_err());
        assert!(parse(b"a = \"x").is_err());
        assert!(parse(b"a = [1, 2").is_err());
        let deep = "a {".repeat(100);
        assert!(parse(deep.as_bytes()).is_err());
        assert!(parse(b"= 1").is_err());
    }
}
