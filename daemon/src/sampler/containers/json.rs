//! Just enough JSON to read a name out of a runtime's file: objects, arrays and strings kept,
//! numbers and literals skipped. serde_json's parser into its `Value` cost the daemon's binary
//! 15 KB (its number tables, its map type) where this is a few; malformed input is an error,
//! never a panic, and nesting is bounded.

/// A JSON value as far as names need it.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
    /// A number, `true`, `false` or `null`.
    Other,
}

/// Deeper nesting than this is refused (no runtime's file comes near it).
const MAX_DEPTH: usize = 64;

impl Json {
    pub fn parse(text: &[u8]) -> Result<Self, String> {
        let mut p = Parser { text, at: 0 };
        let v = p.value(0)?;
        p.space();
        match p.text.get(p.at) {
            None => Ok(v),
            Some(_) => Err(format!("text after the value at byte {}", p.at)),
        }
    }

    /// An object's member.
    pub fn get(&self, key: &str) -> Option<&Self> {
        match self {
            Self::Obj(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn str(&self) -> Option<&str> {
        match self {
            Self::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn items(&self) -> &[Self] {
        match self {
            Self::Arr(items) => items,
            _ => &[],
        }
    }
}

struct Parser<'a> {
    text: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn space(&mut self) {
        while self.text.get(self.at).is_some_and(u8::is_ascii_whitespace) {
            self.at += 1;
        }
    }

    fn fail<T>(&self, what: &str) -> Result<T, String> {
        Err(format!("{what} at byte {}", self.at))
    }

    /// Takes `b` after any space.
    fn eat(&mut self, b: u8) -> bool {
        self.space();
        let here = self.text.get(self.at) == Some(&b);
        self.at += usize::from(here);
        here
    }

    fn value(&mut self, depth: usize) -> Result<Json, String> {
        if depth > MAX_DEPTH {
            return self.fail("nested too deep");
        }
        self.space();
        match self.text.get(self.at) {
            Some(b'"') => self.string().map(Json::Str),
            Some(b'[') => {
                self.at += 1;
                let mut items = Vec::new();
                self.members(b']', depth, |p, d| {
                    items.push(p.value(d)?);
                    Ok(())
                })?;
                Ok(Json::Arr(items))
            }
            Some(b'{') => {
                self.at += 1;
                let mut members = Vec::new();
                self.members(b'}', depth, |p, d| {
                    p.space();
                    let key = p.string()?;
                    if !p.eat(b':') {
                        return p.fail("no ':' after a key");
                    }
                    members.push((key, p.value(d)?));
                    Ok(())
                })?;
                Ok(Json::Obj(members))
            }
            Some(b) if b.is_ascii_alphanumeric() || *b == b'-' => {
                let rest = self.text.get(self.at..).unwrap_or_default();
                let n = rest
                    .iter()
                    .take_while(|c| c.is_ascii_alphanumeric() || b"+-.".contains(c))
                    .count();
                self.at += n;
                Ok(Json::Other)
            }
            _ => self.fail("no value"),
        }
    }

    /// The members of an array or object up to `close`, separated by commas.
    fn members(
        &mut self,
        close: u8,
        depth: usize,
        mut one: impl FnMut(&mut Self, usize) -> Result<(), String>,
    ) -> Result<(), String> {
        if self.eat(close) {
            return Ok(());
        }
        loop {
            one(self, depth + 1)?;
            if self.eat(close) {
                return Ok(());
            }
            if !self.eat(b',') {
                return self.fail("no ',' between members");
            }
        }
    }

    fn string(&mut self) -> Result<String, String> {
        if self.text.get(self.at) != Some(&b'"') {
            return self.fail("no string");
        }
        self.at += 1;
        let mut out: Vec<u8> = Vec::new();
        loop {
            let Some(&b) = self.text.get(self.at) else {
                return self.fail("unterminated string");
            };
            self.at += 1;
            match b {
                b'"' => return String::from_utf8(out).or_else(|_| self.fail("not UTF-8")),
                b'\\' => self.escape(&mut out)?,
                _ => out.push(b),
            }
        }
    }

    fn escape(&mut self, out: &mut Vec<u8>) -> Result<(), String> {
        let Some(&e) = self.text.get(self.at) else {
            return self.fail("unterminated escape");
        };
        self.at += 1;
        let c = match e {
            b'"' | b'\\' | b'/' => char::from(e),
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => self.unicode()?,
            _ => return self.fail("unknown escape"),
        };
        let mut buf = [0u8; 4];
        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        Ok(())
    }

    /// `\uXXXX`; a surrogate pair as two escapes; a lone surrogate is U+FFFD (and what
    /// follows it is read on its own).
    fn unicode(&mut self) -> Result<char, String> {
        let hi = self.hex4()?;
        let pair =
            (0xD800..0xDC00).contains(&hi) && self.text.get(self.at..self.at + 2) == Some(b"\\u");
        if pair {
            let back = self.at;
            self.at += 2;
            let lo = self.hex4()?;
            if (0xDC00..0xE000).contains(&lo) {
                let code = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                return Ok(char::from_u32(code).unwrap_or('\u{FFFD}'));
            }
            self.at = back;
        }
        Ok(char::from_u32(hi).unwrap_or('\u{FFFD}'))
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let digits = self
            .text
            .get(self.at..self.at + 4)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u32::from_str_radix(h, 16).ok());
        match digits {
            Some(v) => {
                self.at += 4;
                Ok(v)
            }
            None => self.fail("bad \\u escape"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_runtimes_write() {
        let v = Json::parse(
            br#" {"ID":"x","Name":"/web-1","State":{"Running":true,"Pid":42,"F":-1.5e3},
                 "List":[null,false,"a\"b\\c\u00e9\ud83d\ude00"]} "#,
        )
        .expect("JSON");
        assert_eq!(v.get("Name").and_then(Json::str), Some("/web-1"));
        assert_eq!(
            v.get("State").and_then(|s| s.get("Pid")),
            Some(&Json::Other)
        );
        let list = v.get("List").map(Json::items).unwrap_or_default();
        assert_eq!(
            list.get(2).and_then(Json::str),
            Some("a\"b\\c\u{e9}\u{1f600}")
        );
        assert_eq!(Json::parse(b"[]"), Ok(Json::Arr(vec![])));
        // A high surrogate without its low one: U+FFFD, and the next escape on its own.
        let odd = Json::parse(br#""\ud800\u0041\udc00x""#).expect("JSON");
        assert_eq!(odd.str(), Some("\u{FFFD}A\u{FFFD}x"));
        assert_eq!(Json::parse(b"{ }"), Ok(Json::Obj(vec![])));
    }

    #[test]
    fn malformed_or_hostile_input_is_an_error() {
        for bad in [
            &b""[..],
            b"{",
            b"{\"a\" 1}",
            b"[1 2]",
            b"\"open",
            b"\"\\q\"",
            b"\"\\u12\"",
            b"[1],",
            b"\"\xff\"",
        ] {
            assert!(
                Json::parse(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let deep = "[".repeat(100_000);
        assert!(Json::parse(deep.as_bytes()).is_err());
        let fine = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(Json::parse(fine.as_bytes()).is_ok());
    }
}
