//! Control characters escaped in every text log value, so that no text a client chose (a user name from
//! a failed login, a tag, a token's subject) can end a line and forge the next, or drive a terminal.
//!
//! A line feed becomes `\n`, a carriage return `\r`, a tab `\t`, every other C0 control character and
//! DEL `\x` and two hex digits, a C1 control character `\u{hex}`: for ESC, BEL, BS, FF, DEL and C1 the
//! very text of tracing-subscriber's own sanitizer (which escapes those in messages and errors only), so
//! the two agree wherever both apply. Nothing else changes: text without control characters is written
//! as it was, so every line of ordinary text stays byte for byte tracing's own. Backslashes are left
//! alone, so a value that was already escaped (the `Debug` of a string) is not escaped twice.
//!
//! JSON lines need none of this: serde escapes every string it writes.

use std::fmt::{self, Write};

/// `T`'s `Debug` text, escaped (see the module comment).
pub struct Escaped<T>(pub T);

impl<T: fmt::Debug> fmt::Debug for Escaped<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(Escaping(f), "{:?}", self.0)
    }
}

/// Appends `text` to `out`, escaped.
pub fn push_escaped(out: &mut String, text: &str) {
    // Infallible into a String.
    let _ = Escaping(out).write_str(text);
}

/// A writer that escapes what goes through it.
pub struct Escaping<W>(pub W);

impl<W: Write> Write for Escaping<W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // Most text has nothing to escape: one scan, one write.
        if !s.contains(char::is_control) {
            return self.0.write_str(s);
        }
        for c in s.chars() {
            match c {
                '\n' => self.0.write_str("\\n")?,
                '\r' => self.0.write_str("\\r")?,
                '\t' => self.0.write_str("\\t")?,
                c if (c as u32) < 0x80 && c.is_control() => write!(self.0, "\\x{:02x}", c as u32)?,
                c if c.is_control() => write!(self.0, "\\u{{{:x}}}", c as u32)?,
                c => self.0.write_char(c)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_nothing_else() {
        let cases = [
            ("plain text, /v2/a/b?n=1", "plain text, /v2/a/b?n=1"),
            (
                "alice\n2026-01-01T00:00:00Z  INFO forged",
                "alice\\n2026-01-01T00:00:00Z  INFO forged",
            ),
            ("a\r\tb", "a\\r\\tb"),
            ("\u{1b}[31mred\u{7}\u{0}", "\\x1b[31mred\\x07\\x00"),
            ("del\u{7f} c1\u{85}\u{9b}", "del\\x7f c1\\u{85}\\u{9b}"),
            (
                "ünïcode ✓ and a \\ backslash",
                "ünïcode ✓ and a \\ backslash",
            ),
        ];
        for (text, want) in cases {
            let mut out = String::new();
            push_escaped(&mut out, text);
            assert_eq!(out, want);
            assert_eq!(format!("{:?}", Escaped(format_args!("{text}"))), want);
        }
        // A string's own Debug is already escaped and quoted: unchanged.
        assert_eq!(format!("{:?}", Escaped("a\nb")), "\"a\\nb\"");
    }
}
