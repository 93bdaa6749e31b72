//! Mail files: one message (`.eml`) or a mailbox of them (`.mbox`), each
//! message one record: from, to, date (in the owner's time zone) and
//! subject, then the text body (HTML bodies as text). Attachments are
//! skipped. MIME, encodings and mbox splitting are the `mail-parser`
//! crate's.
//!
//! Pure: bytes in, records out.

use jiff::tz::TimeZone;
use mail_parser::{Address, MessageParser, MimeHeaders};

use super::{DocumentError, Record};

/// The message of an `.eml` file.
pub fn eml(bytes: &[u8], zone: &TimeZone) -> Result<Vec<Record>, DocumentError> {
    Ok(vec![message(bytes, zone)?])
}

/// The messages of an mbox file, in order; a message that does not parse
/// fails the file (it is reported, and nothing of it is half indexed).
pub fn mbox(bytes: &[u8], zone: &TimeZone) -> Result<Vec<Record>, DocumentError> {
    if !bytes.starts_with(b"From ") {
        return Err(DocumentError::Malformed {
            format: "mbox",
            reason: "it does not start with a \"From \" line".into(),
        });
    }
    let mut records = Vec::new();
    for m in mail_parser::mailbox::mbox::MessageIterator::new(bytes) {
        let m = m.map_err(|e| DocumentError::Malformed {
            format: "mbox",
            reason: e.to_string(),
        })?;
        records.push(message(m.contents(), zone)?);
    }
    Ok(records)
}

/// One message: its headers as the record's head, its text as the body.
fn message(bytes: &[u8], zone: &TimeZone) -> Result<Record, DocumentError> {
    let malformed = |reason: &str| DocumentError::Malformed {
        format: "e-mail",
        reason: reason.into(),
    };
    let m = MessageParser::default()
        .parse(bytes)
        .ok_or_else(|| malformed("no message in it"))?;
    // A file of text with no header at all is not mail.
    if m.from().is_none() && m.subject().is_none() && m.date().is_none() {
        return Err(malformed("it has no From, Subject or Date header"));
    }
    let mut head = String::new();
    let mut line = |name: &str, value: String| {
        if !value.is_empty() {
            if !head.is_empty() {
                head.push('\n');
            }
            head.push_str(name);
            head.push_str(": ");
            head.push_str(&value);
        }
    };
    line("From", m.from().map(addresses).unwrap_or_default());
    line("To", m.to().map(addresses).unwrap_or_default());
    line("Cc", m.cc().map(addresses).unwrap_or_default());
    let date = m.date().and_then(|d| {
        let t = jiff::Timestamp::from_second(d.to_timestamp()).ok()?;
        Some(
            t.to_zoned_datetime(zone.clone())
                .strftime("%a %-d %b %Y %H:%M %Z")
                .to_string(),
        )
    });
    line("Date", date.unwrap_or_default());
    line(
        "Subject",
        m.subject()
            .map(|s| s.trim().to_string())
            .unwrap_or_default(),
    );
    let mut body = Vec::new();
    for i in 0..m.text_body_count() {
        let attached = m
            .text_part(i as u32)
            .and_then(|p| p.content_disposition())
            .is_some_and(|d| d.is_attachment());
        if attached {
            continue;
        }
        if let Some(text) = m.body_text(i) {
            let text = text.trim();
            if !text.is_empty() {
                body.push(text.to_string());
            }
        }
    }
    Ok(Record {
        head,
        body: body.join("\n\n"),
    })
}

/// "Anna Weber <anna@example.org>, tom@example.org".
fn addresses(a: &Address<'_>) -> String {
    a.iter()
        .map(|addr| match (addr.name(), addr.address()) {
            (Some(n), Some(e)) => format!("{n} <{e}>"),
            (Some(n), None) => n.to_string(),
            (None, Some(e)) => e.to_string(),
            (None, None) => String::new(),
        })
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const EML: &str = "From: Ms Keller <keller@school.example>\r\nTo: Parents <parents@school.example>\r\n\
Date: Mon, 30 Nov 2026 16:05:00 +0000\r\nSubject: School trip to the zoo\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\r\nThe trip is on Thursday 10 December. Please bring =\r\n\
a packed lunch.\r\n--b1\r\nContent-Type: text/plain; name=\"list.txt\"\r\nContent-Disposition: attachment; \
filename=\"list.txt\"\r\n\r\nATTACHEDSECRET\r\n--b1--\r\n";

    #[test]
    fn a_message_is_its_headers_and_text_without_attachments() {
        let z = TimeZone::get("Europe/Berlin").unwrap();
        let r = eml(EML.as_bytes(), &z).unwrap();
        assert_eq!(
            r[0].head,
            "From: Ms Keller <keller@school.example>\nTo: Parents <parents@school.example>\n\
             Date: Mon 30 Nov 2026 17:05 CET\nSubject: School trip to the zoo"
        );
        assert_eq!(
            r[0].body,
            "The trip is on Thursday 10 December. Please bring a packed lunch."
        );
    }

    #[test]
    fn a_mailbox_is_its_messages() {
        let z = TimeZone::UTC;
        let mbox_text = format!(
            "From keller@school.example Mon Nov 30 16:05:00 2026\n{}\nFrom sam@example.org Tue Dec  1 08:00:00 2026\n\
             From: sam@example.org\nSubject: Boiler\n\nThe boiler man comes at 8.\n",
            EML.replace("\r\n", "\n")
        );
        let r = mbox(mbox_text.as_bytes(), &z).unwrap();
        assert_eq!(r.len(), 2);
        assert!(r[0].head.contains("School trip"));
        assert_eq!(r[1].head, "From: sam@example.org\nSubject: Boiler");
        assert_eq!(r[1].body, "The boiler man comes at 8.");
    }

    #[test]
    fn what_is_not_mail_fails() {
        let z = TimeZone::UTC;
        assert!(eml(b"just some words\nand more", &z).is_err());
        assert!(mbox(b"no from line", &z).is_err());
    }
}
