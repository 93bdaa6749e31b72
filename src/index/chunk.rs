//! Splitting extracted text into chunks the embedder can take whole:
//! paragraphs first, sentences when a paragraph is too long, words as the
//! last resort, packed up to a token budget, with the last sentence of a
//! chunk repeated at the start of the next so a fact split across the
//! boundary is still found.
//!
//! Pure: the caller supplies the token counter (the embedder's tokenizer).

/// How chunks are sized, in the embedder's tokens.
#[derive(Debug, Clone, Copy)]
pub struct ChunkSize {
    /// Chunks are packed up to this many tokens.
    pub target: usize,
    /// Tokens of the previous chunk's tail repeated at the start of the next.
    pub overlap: usize,
}

impl Default for ChunkSize {
    /// Sized for MiniLM's 256 word pieces (with room for `[CLS]`/`[SEP]`
    /// and the tokenizer's disagreement with itself on joined pieces).
    fn default() -> Self {
        Self {
            target: 200,
            overlap: 40,
        }
    }
}

/// Splits `text` into chunks of at most about `size.target` tokens as
/// `count` measures them. Empty and whitespace-only text gives no chunks.
pub fn chunk_text(text: &str, size: ChunkSize, count: &dyn Fn(&str) -> usize) -> Vec<String> {
    let pieces = pieces(text, size.target, count);
    let mut chunks: Vec<String> = Vec::new();
    let mut cur: Vec<(&str, usize)> = Vec::new();
    let mut cur_tokens = 0;
    for (piece, n) in pieces {
        if cur_tokens + n > size.target && !cur.is_empty() {
            chunks.push(join(&cur));
            // Carry the tail (whole pieces, up to the overlap) forward.
            let mut carry = Vec::new();
            let mut carried = 0;
            for &(p, pn) in cur.iter().rev() {
                if carried + pn > size.overlap || carried + pn + n > size.target {
                    break;
                }
                carry.push((p, pn));
                carried += pn;
            }
            carry.reverse();
            cur = carry;
            cur_tokens = carried;
        }
        cur.push((piece, n));
        cur_tokens += n;
    }
    if !cur.is_empty() {
        chunks.push(join(&cur));
    }
    chunks
}

fn join(pieces: &[(&str, usize)]) -> String {
    pieces.iter().map(|(p, _)| *p).collect::<Vec<_>>().join(" ")
}

/// The text cut into pieces no longer than `max` tokens: paragraphs, else
/// their sentences, else runs of words.
fn pieces<'a>(text: &'a str, max: usize, count: &dyn Fn(&str) -> usize) -> Vec<(&'a str, usize)> {
    let mut out = Vec::new();
    for para in text.split("\n\n").map(str::trim).filter(|p| !p.is_empty()) {
        let n = count(para);
        if n <= max {
            out.push((para, n));
            continue;
        }
        for sentence in sentences(para) {
            let n = count(sentence);
            if n <= max {
                out.push((sentence, n));
                continue;
            }
            // A sentence longer than a chunk: cut between words.
            let mut start = 0;
            let mut last_end = 0;
            for (i, _) in sentence
                .match_indices(char::is_whitespace)
                .chain(std::iter::once((sentence.len(), "")))
            {
                if count(&sentence[start..i]) > max && last_end > start {
                    let piece = sentence[start..last_end].trim();
                    out.push((piece, count(piece)));
                    start = last_end;
                }
                last_end = i;
            }
            let piece = sentence[start..].trim();
            if !piece.is_empty() {
                out.push((piece, count(piece)));
            }
        }
    }
    out
}

/// Sentences of a paragraph: ends at `.`, `!` or `?` followed by
/// whitespace, or at a line break.
fn sentences(para: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let bytes = para.as_bytes();
    for (i, c) in para.char_indices() {
        let end = i + c.len_utf8();
        let boundary = c == '\n'
            || (matches!(c, '.' | '!' | '?')
                && bytes.get(end).is_some_and(|b| b.is_ascii_whitespace()));
        if boundary {
            let s = para[start..end].trim();
            if !s.is_empty() {
                out.push(s);
            }
            start = end;
        }
    }
    let s = para[start..].trim();
    if !s.is_empty() {
        out.push(s);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> usize {
        s.split_whitespace().count()
    }

    #[test]
    fn short_text_is_one_chunk_and_empty_text_none() {
        let size = ChunkSize {
            target: 50,
            overlap: 10,
        };
        assert_eq!(
            chunk_text("Hello there.\n\nSecond paragraph.", size, &words),
            vec!["Hello there. Second paragraph."]
        );
        assert!(chunk_text(" \n\n \n", size, &words).is_empty());
    }

    #[test]
    fn chunks_respect_the_budget_and_overlap() {
        let text: String = (0..40)
            .map(|i| format!("Sentence number {i} has six words."))
            .collect::<Vec<_>>()
            .join(" ");
        let size = ChunkSize {
            target: 30,
            overlap: 6,
        };
        let chunks = chunk_text(&text, size, &words);
        assert!(chunks.len() > 5);
        for c in &chunks {
            assert!(words(c) <= 30, "{c}");
        }
        // Each chunk starts with the previous one's last sentence.
        for pair in chunks.windows(2) {
            let last = pair[0].rsplit(". ").next().unwrap();
            assert!(pair[1].starts_with(last.trim_end_matches('.')), "{pair:?}");
        }
        // Nothing is lost.
        for i in 0..40 {
            assert!(chunks.iter().any(|c| c.contains(&format!("number {i} "))));
        }
    }

    #[test]
    fn an_endless_sentence_is_cut_between_words() {
        let text = "word ".repeat(95);
        let chunks = chunk_text(
            &text,
            ChunkSize {
                target: 20,
                overlap: 0,
            },
            &words,
        );
        assert_eq!(chunks.len(), 5);
        assert!(chunks.iter().all(|c| words(c) <= 20));
        assert_eq!(chunks.iter().map(|c| words(c)).sum::<usize>(), 95);
    }
}
