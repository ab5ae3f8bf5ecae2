//! Warden's text model: the characters its text inputs accept, decided once for every field
//! and for both databases, so that whatever is accepted is stored and read back byte for byte
//! on SQLite and on PostgreSQL, and whatever is not is refused before it reaches either.
//!
//! - **NUL (U+0000)** is refused everywhere: PostgreSQL cannot store it in text at all, and C
//!   programs read it as the end of a string.
//! - **Other control characters** (U+0001 to U+001F, U+007F, U+0080 to U+009F) are refused,
//!   except that multi-line text (a post's content) may hold tabs, line feeds and carriage
//!   returns. They have no business in a title or an address, and terminals and logs act on them.
//! - **Bidirectional embeddings, overrides and isolates** (U+202A to U+202E, U+2066 to U+2069)
//!   are refused in single-line text (titles, emails, searches, usernames), where they can make
//!   one string display as another ("Trojan Source", CVE-2021-42574). Content may hold them: it
//!   is shown as a block of its own, and right-to-left writing uses them.
//! - **Unpaired surrogates** cannot be in a Rust string at all: a JSON body that escapes one
//!   (`"\ud800"`) is refused by the JSON parser (422) and a form whose bytes are not UTF-8 by the
//!   token endpoint (`invalid_request`).
//!
//! Everything else is accepted as written: letters of every script, marks, emoji, the
//! zero-width joiners that emoji need, private-use characters.

use std::fmt;

/// The first character a text field refuses, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub struct ForbiddenCharacter {
    pub character: char,
    pub kind: Forbidden,
}

/// Why a character is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forbidden {
    Nul,
    Control,
    Bidi,
}

impl fmt::Display for ForbiddenCharacter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            Forbidden::Nul => "the NUL character",
            Forbidden::Control => "a control character",
            Forbidden::Bidi => "a bidirectional control character",
        };
        write!(
            f,
            "must not contain {what} (U+{:04X})",
            u32::from(self.character)
        )
    }
}

/// What a text field may hold besides ordinary characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextKind {
    /// One line: a title, an email, a search, a username, a client id.
    Line,
    /// Several lines: a post's content. Tabs and line breaks are allowed, and so are
    /// bidirectional controls.
    Multiline,
    /// A secret that is only ever hashed (a password): anything but NUL.
    Secret,
}

/// Checks `raw` against the text model for `kind`.
///
/// # Errors
///
/// The first character `kind` refuses.
pub fn check(raw: &str, kind: TextKind) -> Result<(), ForbiddenCharacter> {
    match raw
        .chars()
        .find_map(|c| refusal(c, kind).map(|why| (c, why)))
    {
        Some((character, kind)) => Err(ForbiddenCharacter { character, kind }),
        None => Ok(()),
    }
}

/// Why `c` is refused in text of `kind`, if it is.
fn refusal(c: char, kind: TextKind) -> Option<Forbidden> {
    let control = matches!(c, '\u{1}'..='\u{1f}' | '\u{7f}'..='\u{9f}');
    let layout = matches!(c, '\t' | '\n' | '\r');
    let bidi = matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    match kind {
        _ if c == '\0' => Some(Forbidden::Nul),
        TextKind::Secret => None,
        TextKind::Multiline if layout || bidi => None,
        _ if control => Some(Forbidden::Control),
        TextKind::Line if bidi => Some(Forbidden::Bidi),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_is_refused_in_every_kind_of_text() {
        for kind in [TextKind::Line, TextKind::Multiline, TextKind::Secret] {
            let err = check("a\0b", kind).unwrap_err();
            assert_eq!(err.kind, Forbidden::Nul);
            assert_eq!(
                err.to_string(),
                "must not contain the NUL character (U+0000)"
            );
        }
    }

    #[test]
    fn control_characters_are_refused_but_content_may_break_lines() {
        for c in ['\u{1}', '\u{1b}', '\u{7f}', '\u{85}', '\u{9f}'] {
            let text = format!("a{c}b");
            assert_eq!(
                check(&text, TextKind::Line).unwrap_err().kind,
                Forbidden::Control
            );
            assert_eq!(
                check(&text, TextKind::Multiline).unwrap_err().kind,
                Forbidden::Control
            );
            assert!(check(&text, TextKind::Secret).is_ok());
        }
        for c in ['\t', '\n', '\r'] {
            let text = format!("a{c}b");
            assert!(check(&text, TextKind::Line).is_err());
            assert!(check(&text, TextKind::Multiline).is_ok());
        }
    }

    #[test]
    fn bidi_controls_are_refused_in_single_lines_only() {
        let spoof = "admin\u{202e}txt.exe";
        let err = check(spoof, TextKind::Line).unwrap_err();
        assert_eq!(err.kind, Forbidden::Bidi);
        assert_eq!(err.character, '\u{202e}');
        assert!(check(spoof, TextKind::Multiline).is_ok());
        assert!(check("a\u{2066}b\u{2069}", TextKind::Line).is_err());
        // Marks that are not embeddings or overrides are fine.
        assert!(check("a\u{200e}b\u{200f}", TextKind::Line).is_ok());
    }

    #[test]
    fn every_script_and_emoji_is_accepted() {
        for text in [
            "Ärger im Büro",
            "日本語",
            "مرحبا",
            "👩‍👩‍👧 family",
            "\u{e000}",
            "tab\u{a0}nbsp",
        ] {
            assert!(check(text, TextKind::Line).is_ok(), "{text:?}");
        }
    }
}
