//! Turning a file's bytes into text to index. Documents (HTML, PDF,
//! OpenDocument text, Word `.docx`) go through their extractor in
//! [`document`]; calendars (`.ics`, [`calendar`]) and mail (`.eml`,
//! `.mbox`, [`mail`]) become one record per event or message; plain text (prose, Markdown, source code, configuration) is
//! taken as it is when it is UTF-8 (or UTF-16 with a byte-order mark);
//! anything else is binary and skipped.
//!
//! Pure: bytes in, text out; must not open files.

mod calendar;
mod document;
mod mail;

use std::path::Path;

use jiff::tz::TimeZone;

pub use document::{DocumentError, MAX_XML_BYTES, Office};

/// What was made of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Extracted {
    /// Indexable text and the kind it came from (`text`, `markdown`, `code`,
    /// `html`, `pdf`, `odt`, `docx`).
    Text { kind: &'static str, text: String },
    /// Separate items (calendar events, mail messages), each indexed on
    /// its own (`calendar`, `mail`).
    Records {
        kind: &'static str,
        records: Vec<Record>,
    },
    /// Not text, and no extractor for it: skipped and counted.
    Binary,
    /// A document whose extractor failed: counted as failed, with the reason.
    Failed(DocumentError),
}

/// One event or message: its header lines (title, time, people), kept with
/// every chunk of it, and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub head: String,
    pub body: String,
}

/// Extensions read as source code (for the `kind` label only: any UTF-8
/// file is indexed).
const CODE: &[&str] = &[
    "rs", "py", "js", "ts", "tsx", "jsx", "c", "h", "cc", "cpp", "hpp", "go", "java", "kt", "rb",
    "php", "sh", "bash", "zsh", "swift", "cs", "scala", "lua", "pl", "sql", "css", "scss", "toml",
    "yaml", "yml", "json", "xml", "ini", "cfg", "conf",
];

/// Extracts text from `bytes`, the content of `path`, with times in UTC.
pub fn extract(path: &Path, bytes: &[u8]) -> Extracted {
    extract_in(path, bytes, &TimeZone::UTC)
}

/// Extracts text from `bytes`, the content of `path`; calendar and mail
/// times are written in `zone` (the owner's).
pub fn extract_in(path: &Path, bytes: &[u8], zone: &TimeZone) -> Extracted {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let records = match ext.as_str() {
        "ics" | "ical" => Some((
            "calendar",
            guarded("iCalendar", || {
                let text = decode_text(bytes).ok_or(DocumentError::Malformed {
                    format: "iCalendar",
                    reason: "it is not text".into(),
                })?;
                calendar::events(&text, zone)
            }),
        )),
        "eml" => Some(("mail", guarded("e-mail", || mail::eml(bytes, zone)))),
        "mbox" => Some(("mail", guarded("mbox", || mail::mbox(bytes, zone)))),
        _ => None,
    };
    if let Some((kind, result)) = records {
        return match result {
            Ok(records) => Extracted::Records { kind, records },
            Err(e) => Extracted::Failed(e),
        };
    }
    let document = match ext.as_str() {
        "html" | "htm" | "xhtml" => Some(("html", document::html(bytes))),
        "pdf" => Some(("pdf", document::pdf(bytes))),
        "odt" => Some(("odt", document::office(Office::Odt, bytes))),
        "docx" => Some(("docx", document::office(Office::Docx, bytes))),
        _ => None,
    };
    if let Some((kind, result)) = document {
        return match result {
            Ok(text) => Extracted::Text { kind, text },
            Err(e) => Extracted::Failed(e),
        };
    }
    let Some(text) = decode_text(bytes) else {
        return Extracted::Binary;
    };
    let kind = match ext.as_str() {
        "md" | "markdown" => "markdown",
        e if CODE.contains(&e) => "code",
        _ => "text",
    };
    Extracted::Text { kind, text }
}

/// `parse()`, with a panic inside the parser crate turned into a failed
/// file.
fn guarded(
    format: &'static str,
    parse: impl FnOnce() -> Result<Vec<Record>, DocumentError>,
) -> Result<Vec<Record>, DocumentError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(parse))
        .unwrap_or(Err(DocumentError::Crashed { format }))
}

/// The bytes as text, if they are text: UTF-8 (a BOM is dropped) or UTF-16
/// with a BOM, and no NUL bytes or other control characters a text file
/// would not have.
pub fn decode_text(bytes: &[u8]) -> Option<String> {
    let text = if let Some(rest) = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]) {
        String::from_utf8(rest.to_vec()).ok()?
    } else if let Some(rest) = bytes.strip_prefix(&[0xFF, 0xFE]) {
        utf16(rest, u16::from_le_bytes)?
    } else if let Some(rest) = bytes.strip_prefix(&[0xFE, 0xFF]) {
        utf16(rest, u16::from_be_bytes)?
    } else {
        String::from_utf8(bytes.to_vec()).ok()?
    };
    let odd = text
        .chars()
        .filter(|&c| c.is_control() && !matches!(c, '\n' | '\r' | '\t' | '\u{c}'))
        .count();
    (odd == 0 || odd * 1000 < text.len())
        .then_some(text)
        .filter(|t| !t.contains('\0'))
}

fn utf16(bytes: &[u8], word: fn([u8; 2]) -> u16) -> Option<String> {
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    let units: Vec<u16> = bytes.chunks_exact(2).map(|c| word([c[0], c[1]])).collect();
    String::from_utf16(&units).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_kinds_and_binary() {
        let t = |name: &str, b: &[u8]| extract(Path::new(name), b);
        assert_eq!(
            t("notes.md", b"# Title\nbody"),
            Extracted::Text {
                kind: "markdown",
                text: "# Title\nbody".into()
            }
        );
        assert!(matches!(
            t("main.rs", b"fn main() {}"),
            Extracted::Text { kind: "code", .. }
        ));
        assert!(matches!(
            t("README", "héllo".as_bytes()),
            Extracted::Text { kind: "text", .. }
        ));
        assert_eq!(
            t("image.png", &[0x89, b'P', b'N', b'G', 0, 0, 1, 2]),
            Extracted::Binary
        );
        assert_eq!(t("bad.txt", &[0xC3, 0x28]), Extracted::Binary);
    }

    #[test]
    fn documents_go_to_their_extractor() {
        let t = |name: &str, b: &[u8]| extract(Path::new(name), b);
        assert_eq!(
            t("page.HTML", b"<p>Hello <i>there</i></p>"),
            Extracted::Text {
                kind: "html",
                text: "Hello there".into()
            }
        );
        // A document extension on bytes that are not that format fails
        // loudly instead of being indexed as text.
        assert!(matches!(t("a.docx", b"plain"), Extracted::Failed(_)));
        assert!(matches!(t("a.pdf", b"plain"), Extracted::Failed(_)));
    }

    #[test]
    fn byte_order_marks() {
        assert_eq!(decode_text(&[0xEF, 0xBB, 0xBF, b'h', b'i']).unwrap(), "hi");
        assert_eq!(decode_text(&[0xFF, 0xFE, b'h', 0, b'i', 0]).unwrap(), "hi");
        assert_eq!(decode_text(&[0xFE, 0xFF, 0, b'h', 0, b'i']).unwrap(), "hi");
        assert!(decode_text(b"a\0b").is_none());
    }
}
