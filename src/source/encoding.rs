//! `logencoding`: how a line's bytes become text.
//!
//! Only ASCII-compatible encodings are accepted, so that a `\n` byte always
//! ends a line and lines can be split before decoding, in big chunks.
//! Invalid bytes are replaced (U+FFFD), as fail2ban's `errors='replace'`.

use std::borrow::Cow;

use super::SourceError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Utf8,
    // Python's latin-1 maps every byte to the same code point; WHATWG's
    // "latin1" label means windows-1252, which differs on 0x80..0x9f.
    Latin1,
    // Python's ascii rejects bytes >= 0x80; WHATWG maps "ascii" to
    // windows-1252.
    Ascii,
    Other(&'static encoding_rs::Encoding),
}

/// A log file's encoding, from fail2ban's `logencoding` option.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogEncoding(Kind);

impl Default for LogEncoding {
    fn default() -> Self {
        LogEncoding(Kind::Utf8)
    }
}

impl LogEncoding {
    /// UTF-8, the default.
    pub const UTF8: LogEncoding = LogEncoding(Kind::Utf8);

    /// Parses a Python codec name (`utf-8`, `latin-1`, `ascii`, `cp1252`,
    /// ...). `auto` means the locale's encoding, which on the systems
    /// fail3ban runs on is UTF-8.
    pub fn new(label: &str) -> Result<LogEncoding, SourceError> {
        let norm = label.trim().to_ascii_lowercase().replace('_', "-");
        let kind = match norm.as_str() {
            "" | "auto" | "utf-8" | "utf8" | "u8" | "utf" | "cp65001" => Kind::Utf8,
            "latin-1" | "latin1" | "iso-8859-1" | "iso8859-1" | "8859" | "cp819" | "l1"
            | "latin" => Kind::Latin1,
            "ascii" | "us-ascii" | "646" => Kind::Ascii,
            _ => {
                let enc = encoding_rs::Encoding::for_label(norm.as_bytes())
                    .ok_or_else(|| SourceError::UnknownEncoding(label.to_string()))?;
                if !enc.is_ascii_compatible() || enc == encoding_rs::REPLACEMENT {
                    return Err(SourceError::UnsupportedEncoding(label.to_string()));
                }
                if enc == encoding_rs::UTF_8 {
                    Kind::Utf8
                } else {
                    Kind::Other(enc)
                }
            }
        };
        Ok(LogEncoding(kind))
    }

    /// The encoding's canonical name.
    pub fn name(&self) -> &'static str {
        match self.0 {
            Kind::Utf8 => "utf-8",
            Kind::Latin1 => "latin-1",
            Kind::Ascii => "ascii",
            Kind::Other(e) => e.name(),
        }
    }

    /// Decodes `bytes`; the flag tells whether invalid bytes were replaced.
    pub fn decode<'a>(&self, bytes: &'a [u8]) -> (Cow<'a, str>, bool) {
        match self.0 {
            Kind::Utf8 => match std::str::from_utf8(bytes) {
                Ok(s) => (Cow::Borrowed(s), false),
                Err(_) => (String::from_utf8_lossy(bytes), true),
            },
            Kind::Latin1 => match std::str::from_utf8(bytes) {
                Ok(s) if s.is_ascii() => (Cow::Borrowed(s), false),
                _ => (
                    Cow::Owned(bytes.iter().map(|&b| b as char).collect()),
                    false,
                ),
            },
            Kind::Ascii => match std::str::from_utf8(bytes) {
                Ok(s) if s.is_ascii() => (Cow::Borrowed(s), false),
                _ => {
                    let s = bytes
                        .iter()
                        .map(|&b| if b < 0x80 { b as char } else { '\u{fffd}' })
                        .collect();
                    (Cow::Owned(s), true)
                }
            },
            Kind::Other(enc) => {
                let (s, had_errors) = enc.decode_without_bom_handling(bytes);
                (s, had_errors)
            }
        }
    }

    /// Decodes text that is UTF-8 when it can be, else in this encoding:
    /// what fail2ban does with journal fields (python-systemd decodes UTF-8
    /// and leaves bytes it cannot for the logencoding).
    pub fn decode_utf8_first<'a>(&self, bytes: &'a [u8]) -> Cow<'a, str> {
        match std::str::from_utf8(bytes) {
            Ok(s) => Cow::Borrowed(s),
            Err(_) => self.decode(bytes).0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert_eq!(LogEncoding::new("UTF-8").unwrap(), LogEncoding::UTF8);
        assert_eq!(LogEncoding::new("auto").unwrap(), LogEncoding::UTF8);
        assert_eq!(LogEncoding::new("latin_1").unwrap().name(), "latin-1");
        assert_eq!(LogEncoding::new("cp1252").unwrap().name(), "windows-1252");
        assert!(matches!(
            LogEncoding::new("utf-16"),
            Err(SourceError::UnsupportedEncoding(_))
        ));
        assert!(matches!(
            LogEncoding::new("klingon"),
            Err(SourceError::UnknownEncoding(_))
        ));
    }

    #[test]
    fn decoding() {
        let u = LogEncoding::UTF8;
        assert_eq!(u.decode(b"a\0b"), (Cow::Borrowed("a\0b"), false));
        assert_eq!(u.decode(b"a\xffb").0, "a\u{fffd}b");
        assert!(u.decode(b"a\xffb").1);
        let l = LogEncoding::new("latin-1").unwrap();
        assert_eq!(l.decode(b"caf\xe9\x85").0, "caf\u{e9}\u{85}");
        let a = LogEncoding::new("ascii").unwrap();
        assert_eq!(a.decode(b"x\xe9y"), (Cow::Owned("x\u{fffd}y".into()), true));
        assert_eq!(l.decode_utf8_first("é".as_bytes()), "é");
        assert_eq!(l.decode_utf8_first(b"\xe9"), "é");
    }
}
