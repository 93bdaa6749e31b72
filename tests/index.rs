//! The indexer on a real folder with the real embedder: first run indexes,
//! second skips everything, edits/deletes/additions are reflected exactly,
//! and files outside the root or excluded are never indexed.

use std::path::{Path, PathBuf};

mod common;

use hearth::embed::Embedder;
use hearth::index::sync::{Quiet, sync};
use hearth::paths::Paths;
use hearth::store::{Create, Store};

fn embedder() -> Embedder {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/all-MiniLM-L6-v2");
    assert!(
        dir.join("model.safetensors").is_file(),
        "run scripts/setup.sh"
    );
    Embedder::load(&dir).unwrap()
}

fn write(p: &Path, text: &str) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

#[test]
fn sync_is_incremental_and_scoped() {
    let dir = tempfile::tempdir().unwrap();
    let base = std::fs::canonicalize(dir.path()).unwrap();
    let root = base.join("docs");
    write(
        &root.join("router.md"),
        "The router admin password is hunter2-velvet.",
    );
    write(
        &root.join("notes/plants.txt"),
        "Water the ferns every Sunday.\n\nThe cactus needs little.",
    );
    write(&root.join(".ssh/id_rsa"), "PRIVATE KEY bluebird");
    write(&root.join(".env"), "TOKEN=bluebird");
    std::fs::write(root.join("photo.bin"), [0u8, 1, 2, 3, 0, 255]).unwrap();
    write(&base.join("outside.txt"), "outside bluebird");
    std::os::unix::fs::symlink(base.join("outside.txt"), root.join("link.txt")).unwrap();

    let paths = Paths {
        data_dir: base.join("data"),
        key_file: base.join("store.key"),
    };
    let mut store = Store::open(&paths, Create::IfMissing).unwrap();
    store.add_root(&root).unwrap();
    let emb = embedder();

    let r = sync(&mut store, &emb, &mut Quiet).unwrap();
    assert_eq!(
        (r.added, r.updated, r.removed, r.binary, r.refused),
        (2, 0, 0, 1, 1),
        "{r:?}"
    );
    assert!(r.failed.is_empty(), "{:?}", r.failed);
    assert!(
        store.fts_search("bluebird", 10).unwrap().is_empty(),
        "nothing secret or outside indexed"
    );
    assert_eq!(store.fts_search("hunter2", 10).unwrap().len(), 1);

    let r = sync(&mut store, &emb, &mut Quiet).unwrap();
    assert_eq!(
        (r.added, r.updated, r.removed, r.unchanged),
        (0, 0, 0, 2),
        "{r:?}"
    );

    write(
        &root.join("router.md"),
        "The router admin password changed to orchid-lantern.",
    );
    std::fs::remove_file(root.join("notes/plants.txt")).unwrap();
    write(&root.join("new.md"), "Dentist on Thursday at 10am.");
    let r = sync(&mut store, &emb, &mut Quiet).unwrap();
    assert_eq!(
        (r.added, r.updated, r.removed, r.unchanged),
        (1, 1, 1, 0),
        "{r:?}"
    );
    assert!(store.fts_search("hunter2", 10).unwrap().is_empty());
    assert!(store.fts_search("ferns", 10).unwrap().is_empty());
    assert_eq!(store.fts_search("orchid", 10).unwrap().len(), 1);
    assert_eq!(store.fts_search("dentist", 10).unwrap().len(), 1);
    assert!(store.integrity_check().unwrap().is_empty());
}

/// A one-page PDF showing `line` in a standard font, with a correct xref.
fn pdf_with(line: &str) -> Vec<u8> {
    let content = format!("BT /F1 12 Tf 72 720 Td ({line}) Tj ET");
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_string(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_string(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] \
         /Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>"
            .to_string(),
        format!(
            "<< /Length {} >>\nstream\n{content}\nendstream",
            content.len()
        ),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_string(),
    ];
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, body) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{body}\nendobj\n", i + 1).as_bytes());
    }
    let xref = out.len();
    out.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for o in offsets {
        out.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    out
}

/// A zip archive holding `name` with `body` (an `.odt` or `.docx`).
fn zipped(name: &str, body: &str) -> Vec<u8> {
    use std::io::Write;
    let mut out = std::io::Cursor::new(Vec::new());
    let mut w = zip::ZipWriter::new(&mut out);
    w.start_file(name, zip::write::SimpleFileOptions::default())
        .unwrap();
    w.write_all(body.as_bytes()).unwrap();
    w.finish().unwrap();
    out.into_inner()
}

#[test]
fn documents_in_every_supported_format_are_indexed() {
    let dir = tempfile::tempdir().unwrap();
    let base = std::fs::canonicalize(dir.path()).unwrap();
    let root = base.join("docs");
    write(
        &root.join("page.html"),
        "<html><script>var marigold = 1;</script><body><p>The boiler was serviced by Kestrel Heating.</p></body></html>",
    );
    std::fs::write(
        root.join("lease.pdf"),
        pdf_with("The lease ends on the thirtieth of June, says Wexford."),
    )
    .unwrap();
    std::fs::write(
        root.join("plan.docx"),
        zipped(
            "word/document.xml",
            "<w:document xmlns:w=\"w\"><w:body><w:p><w:r><w:t>Gutters cleaned by Pemberton.</w:t></w:r></w:p></w:body></w:document>",
        ),
    )
    .unwrap();
    std::fs::write(
        root.join("minutes.odt"),
        zipped(
            "content.xml",
            "<office:document-content xmlns:office=\"o\" xmlns:text=\"t\"><office:body><office:text><text:p>Treasurer is Quillon.</text:p></office:text></office:body></office:document-content>",
        ),
    )
    .unwrap();
    std::fs::write(root.join("broken.pdf"), b"%PDF-1.4 truncated").unwrap();

    let paths = Paths {
        data_dir: base.join("data"),
        key_file: base.join("store.key"),
    };
    let mut store = Store::open(&paths, Create::IfMissing).unwrap();
    store.add_root(&root).unwrap();
    let r = sync(&mut store, &embedder(), &mut Quiet).unwrap();
    assert_eq!(r.added, 4, "{r:?}");
    assert_eq!(r.failed.len(), 1, "the broken PDF fails alone: {r:?}");
    assert!(r.failed[0].0.ends_with("broken.pdf"));
    for word in ["Kestrel", "Wexford", "Pemberton", "Quillon"] {
        assert_eq!(store.fts_search(word, 10).unwrap().len(), 1, "{word}");
    }
    assert!(
        store.fts_search("marigold", 10).unwrap().is_empty(),
        "script text is not page text"
    );
}

#[test]
fn chat_messages_are_searchable_and_labelled_by_chat_and_time() {
    use hearth::search::Searcher;
    use hearth::store::{NewChunk, NewMessage};
    let dir = tempfile::tempdir().unwrap();
    let paths = Paths {
        data_dir: dir.path().join("data"),
        key_file: dir.path().join("store.key"),
    };
    let mut store = Store::open(&paths, Create::IfMissing).unwrap();
    let emb = embedder();
    let text = "Dinner at Anna's is at half past seven on Saturday.";
    let message = NewMessage {
        chat_id: "family",
        msg_id: "m1",
        sender: "anna",
        outgoing: false,
        text,
        ts_ms: 1_764_079_380_000,
        typed_from: None,
    };
    let chunk = NewChunk {
        text: text.into(),
        embedding: emb.embed(&[text]).unwrap().remove(0),
    };
    store.insert_message(&message, &[chunk]).unwrap();
    let searcher = Searcher::new(&store, &emb).unwrap();
    let hits = searcher.search("what time is dinner at Anna's", 3).unwrap();
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!(hits[0].path, "chat:family at 2025-11-25 14:03 UTC");
    assert!(hits[0].snippet.contains("**Dinner**"), "{hits:?}");
}

/// Calendars and mail in an indexed folder, through `hearth index` with the
/// owner's time zone: each event and each message is its own chunk with its
/// header lines, times in the owner's zone, attachments left out; a broken
/// `.ics`, `.eml` and `.mbox` each fail alone; and the default model answers
/// "when is the dentist?" from the calendar, citing it.
#[test]
fn calendars_and_mail_index_as_events_and_messages() {
    use common::{hearth_with_store, on_this_box, registered_docs, run, stderr};
    let ics = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Family//EN\r\n\
BEGIN:VEVENT\r\nUID:d1\r\nSUMMARY:Dentist appointment with Dr Okafor\r\n\
DTSTART;TZID=Europe/London:20261210T143000\r\nDTEND;TZID=Europe/London:20261210T151500\r\n\
LOCATION:Brightsmile Dental\\, 4 Mill Lane\r\nDESCRIPTION:Check-up and cleaning. Bring the\r\n  \
NHS card.\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:d2\r\nSUMMARY:Piano recital\r\nDTSTART:20261212T180000Z\r\nEND:VEVENT\r\n\
END:VCALENDAR\r\n";
    let eml = "From: Mrs Dawson <dawson@oakfield.example>\r\nTo: Parents of 4B <4b@oakfield.example>\r\n\
Date: Tue, 1 Dec 2026 15:20:00 +0000\r\nSubject: Class trip to the Natural History Museum\r\n\
MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"xx\"\r\n\r\n--xx\r\n\
Content-Type: text/plain; charset=utf-8\r\n\r\nThe class trip is on Friday 11 December. The coach \
leaves at 8:15; please pack a lunch and a raincoat.\r\n--xx\r\nContent-Type: text/plain\r\n\
Content-Disposition: attachment; filename=\"consent.txt\"\r\n\r\nQUILLWORT consent form\r\n--xx--\r\n";
    let mbox = "From landlord@example.org Mon Nov 30 09:00:00 2026\nFrom: Landlord <landlord@example.org>\n\
Subject: Boiler service\nDate: Mon, 30 Nov 2026 09:00:00 +0000\n\nThe boiler engineer Pellworth comes on Monday.\n\
\nFrom sam@example.org Tue Dec  1 10:00:00 2026\nFrom: Sam <sam@example.org>\nSubject: Squash\n\
Date: Tue, 1 Dec 2026 10:00:00 +0000\n\nSquash on Wednesday with Marlowe?\n";
    let (dir, _docs) = registered_docs([
        ("family.ics", ics),
        ("school.eml", eml),
        ("inbox.mbox", mbox),
        (
            "broken.ics",
            "BEGIN:VCALENDAR\nBEGIN:VEVENT\nSUMMARY:half an event",
        ),
        ("broken.eml", "no headers here, only words"),
        ("broken.mbox", "this is not a mailbox"),
    ]);
    std::fs::write(
        dir.path().join("config.toml"),
        "time_zone = \"America/New_York\"\n",
    )
    .unwrap();
    let o = run(hearth_with_store(dir.path(), "key", &["index"]));
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("3 added"), "{out}");
    assert!(
        out.contains("3 failed"),
        "each broken file fails alone: {out}"
    );
    for broken in ["broken.ics", "broken.eml", "broken.mbox"] {
        assert!(stderr(&o).contains(broken), "{}", stderr(&o));
    }
    let search = |q: &str| -> Vec<serde_json::Value> {
        let o = run(hearth_with_store(
            dir.path(),
            "key",
            &["search", "--json", q],
        ));
        assert!(o.status.success(), "{}", stderr(&o));
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    // The event, with its time in the owner's zone (14:30 London is 09:30
    // in New York) and its place.
    let hits = search("dentist Okafor");
    let top = hits[0]["snippet"].as_str().unwrap().replace("**", "");
    assert!(hits[0]["path"].as_str().unwrap().ends_with("family.ics"));
    assert!(top.contains("Thu 10 Dec 2026 09:30 to 10:15 EST"), "{top}");
    assert!(top.contains("Brightsmile Dental, 4 Mill Lane"), "{top}");
    assert!(!top.contains("Piano"), "one event per chunk: {top}");
    // The mail, from/date/subject and body; never the attachment.
    let hits = search("class trip museum");
    let top = hits[0]["snippet"].as_str().unwrap().replace("**", "");
    assert!(hits[0]["path"].as_str().unwrap().ends_with("school.eml"));
    assert!(top.contains("Date: Tue 1 Dec 2026 10:20 EST"), "{top}");
    assert!(
        top.contains("The class trip is on Friday 11 December"),
        "{top}"
    );
    let hits = search("Dawson");
    assert!(
        hits[0]["path"].as_str().unwrap().ends_with("school.eml"),
        "the sender is indexed"
    );
    for hit in search("QUILLWORT consent form") {
        let text = hit["snippet"].as_str().unwrap();
        assert!(
            !text.contains("QUILLWORT"),
            "attachments are skipped: {text}"
        );
    }
    // Each mbox message on its own.
    let hits = search("Pellworth");
    assert!(hits[0]["path"].as_str().unwrap().ends_with("inbox.mbox"));
    assert!(!hits[0]["snippet"].as_str().unwrap().contains("Marlowe"));

    let ask = |q: &str| -> serde_json::Value {
        let o = run(on_this_box(hearth_with_store(
            dir.path(),
            "key",
            &["ask", "--json", "-n", "48", q],
        )));
        assert!(o.status.success(), "{}", stderr(&o));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let v = ask("When is my dentist appointment?");
    assert!(v["text"].as_str().unwrap().contains("9:30"), "{v}");
    assert!(
        v["sources"][0].as_str().unwrap().ends_with("family.ics"),
        "{v}"
    );
    let v = ask("What did the school write about the class trip?");
    let text = v["text"].as_str().unwrap();
    assert!(text.contains("11 December") || text.contains("8:15"), "{v}");
    assert!(
        v["sources"][0].as_str().unwrap().ends_with("school.eml"),
        "{v}"
    );
}
