//! Text out of document formats that are not plain text: HTML (html2text),
//! PDF (pdf-extract), and the zipped XML of OpenDocument text (`.odt`) and
//! Office Open XML documents (`.docx`), read with `zip` + `quick-xml`.
//!
//! Pure: bytes in, text out. A malformed file is an error for that file,
//! never a panic that stops the run: the PDF parser is the one dependency
//! known to panic on hostile input, so it runs under `catch_unwind`.

use std::io::{Cursor, Read};
use std::panic::{AssertUnwindSafe, catch_unwind};

use quick_xml::Reader;
use quick_xml::events::Event;

/// A document that could not be read.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum DocumentError {
    #[error("not a valid {format} file: {reason}")]
    Malformed {
        format: &'static str,
        reason: String,
    },
    #[error("{format} parser crashed on this file")]
    Crashed { format: &'static str },
    #[error("{0} inside the archive is over the {MAX_XML_BYTES}-byte limit")]
    TooLarge(&'static str),
}

/// The most decompressed XML read from one archive (a zip bomb guard).
pub const MAX_XML_BYTES: u64 = 64 << 20;

/// Visible text of an HTML page: scripts and styles dropped, block elements
/// on their own lines, links without their targets.
pub fn html(bytes: &[u8]) -> Result<String, DocumentError> {
    html2text::config::with_decorator(html2text::render::TrivialDecorator::new())
        .link_footnotes(false)
        .allow_width_overflow()
        .string_from_read(bytes, 1 << 16)
        .map(|t| tidy(&t))
        .map_err(|e| DocumentError::Malformed {
            format: "HTML",
            reason: e.to_string(),
        })
}

/// Text of every page of a PDF, pages separated by blank lines.
pub fn pdf(bytes: &[u8]) -> Result<String, DocumentError> {
    let pages = catch_unwind(AssertUnwindSafe(|| {
        pdf_extract::extract_text_from_mem_by_pages(bytes)
    }))
    .map_err(|_| DocumentError::Crashed { format: "PDF" })?
    .map_err(|e| DocumentError::Malformed {
        format: "PDF",
        reason: e.to_string(),
    })?;
    Ok(tidy(&pages.join("\n\n")))
}

/// Which zipped-XML document format, and where its body lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Office {
    /// OpenDocument text: `content.xml`, paragraphs `text:p`/`text:h`.
    Odt,
    /// Office Open XML: `word/document.xml`, paragraphs `w:p`.
    Docx,
}

impl Office {
    fn format(self) -> &'static str {
        match self {
            Office::Odt => "OpenDocument",
            Office::Docx => "Word",
        }
    }

    fn body(self) -> &'static str {
        match self {
            Office::Odt => "content.xml",
            Office::Docx => "word/document.xml",
        }
    }
}

/// Paragraph text of an `.odt` or `.docx` file.
pub fn office(kind: Office, bytes: &[u8]) -> Result<String, DocumentError> {
    let malformed = |reason: String| DocumentError::Malformed {
        format: kind.format(),
        reason,
    };
    let mut archive =
        zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| malformed(e.to_string()))?;
    let entry = archive
        .by_name(kind.body())
        .map_err(|e| malformed(format!("{}: {e}", kind.body())))?;
    let mut xml = Vec::new();
    entry
        .take(MAX_XML_BYTES + 1)
        .read_to_end(&mut xml)
        .map_err(|e| malformed(e.to_string()))?;
    if xml.len() as u64 > MAX_XML_BYTES {
        return Err(DocumentError::TooLarge(kind.body()));
    }
    xml_text(&xml).map_err(malformed)
}

/// Text nodes of a document body, with a blank line after each paragraph or
/// heading and the format's tab, line-break and space elements kept. Both
/// formats' element names are recognised; they do not overlap.
fn xml_text(xml: &[u8]) -> Result<String, String> {
    let mut reader = Reader::from_reader(xml);
    let mut out = String::new();
    // Text outside paragraphs (styles, metadata) is not body text.
    let mut depth_in_paragraph = 0usize;
    loop {
        let event = reader.read_event().map_err(|e| e.to_string())?;
        match event {
            Event::Start(e) if is_paragraph(e.name().as_ref()) => depth_in_paragraph += 1,
            Event::End(e) if is_paragraph(e.name().as_ref()) => {
                depth_in_paragraph = depth_in_paragraph.saturating_sub(1);
                out.push_str("\n\n");
            }
            Event::Empty(e) => match e.name().as_ref() {
                "w:tab" | "text:tab" => out.push('\t'),
                "w:br" | "w:cr" | "text:line-break" => out.push('\n'),
                "text:s" => out.push(' '),
                name if is_paragraph(name) => out.push('\n'),
                _ => {}
            },
            Event::Text(t) if depth_in_paragraph > 0 => out.push_str(&t.xml10_content()),
            Event::CData(t) if depth_in_paragraph > 0 => out.push_str(&t.xml10_content()),
            Event::GeneralRef(r) if depth_in_paragraph > 0 => {
                if let Ok(Some(c)) = r.resolve_char_ref() {
                    out.push(c);
                } else if let Some(s) = quick_xml::escape::resolve_xml_entity(&r.xml10_content()) {
                    out.push_str(s);
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(tidy(&out))
}

fn is_paragraph(name: &str) -> bool {
    matches!(name, "w:p" | "text:p" | "text:h")
}

/// Trailing spaces off every line and at most one blank line in a row, so
/// the chunker sees paragraphs and not layout.
fn tidy(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank = 0;
    for line in text.lines() {
        let line = line.trim_end();
        if line.is_empty() {
            blank += 1;
            continue;
        }
        if !out.is_empty() {
            out.push_str(if blank > 0 { "\n\n" } else { "\n" });
        }
        blank = 0;
        out.push_str(line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn zip_with(entries: &[(&str, &str)]) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        let mut w = zip::ZipWriter::new(&mut out);
        for (name, body) in entries {
            w.start_file(*name, zip::write::SimpleFileOptions::default())
                .unwrap();
            w.write_all(body.as_bytes()).unwrap();
        }
        w.finish().unwrap();
        out.into_inner()
    }

    #[test]
    fn html_drops_markup_scripts_and_styles() {
        let page = b"<html><head><title>T</title><style>p{color:red}</style>\
            <script>var secret = 1;</script></head><body><h1>Router</h1>\
            <p>The Wi-Fi password is <b>hunter2</b> &amp; it rotates.</p>\
            <p>Second <a href=\"http://x\">paragraph</a>.</p></body></html>";
        let text = html(page).unwrap();
        assert!(text.contains("Router"), "{text}");
        assert!(
            text.contains("The Wi-Fi password is hunter2 & it rotates."),
            "{text}"
        );
        assert!(text.contains("Second paragraph."), "{text}");
        assert!(!text.contains("secret"), "{text}");
        assert!(!text.contains("color"), "{text}");
        assert!(!text.contains('<'), "{text}");
    }

    #[test]
    fn docx_paragraphs_tabs_and_entities() {
        let body = r#"<?xml version="1.0"?><w:document xmlns:w="x"><w:body>
            <w:p><w:r><w:t>Boiler service</w:t></w:r></w:p>
            <w:p><w:r><w:t xml:space="preserve">Due &amp; paid: </w:t><w:tab/><w:t>March</w:t></w:r></w:p>
            <w:sectPr><w:t>not body</w:t></w:sectPr></w:body></w:document>"#;
        let doc = zip_with(&[("word/document.xml", body)]);
        assert_eq!(
            office(Office::Docx, &doc).unwrap(),
            "Boiler service\n\nDue & paid: \tMarch"
        );
    }

    #[test]
    fn odt_headings_spaces_and_breaks() {
        let body = r#"<office:document-content xmlns:office="o" xmlns:text="t">
            <office:body><office:text><text:h>Plan</text:h>
            <text:p>one<text:s/>two<text:line-break/>three &#233;</text:p>
            </office:text></office:body></office:document-content>"#;
        let doc = zip_with(&[("content.xml", body), ("mimetype", "x")]);
        assert_eq!(
            office(Office::Odt, &doc).unwrap(),
            "Plan\n\none two\nthree é"
        );
    }

    #[test]
    fn broken_archives_are_errors() {
        assert!(matches!(
            office(Office::Docx, b"PK\x03\x04 not really"),
            Err(DocumentError::Malformed { .. })
        ));
        let no_body = zip_with(&[("other.xml", "<a/>")]);
        assert!(matches!(
            office(Office::Odt, &no_body),
            Err(DocumentError::Malformed { .. })
        ));
        assert!(pdf(b"%PDF-1.4 garbage").is_err());
    }

    #[test]
    fn tidy_collapses_blank_runs() {
        assert_eq!(tidy("a  \n\n\n\nb\nc \n\n"), "a\n\nb\nc");
    }
}
