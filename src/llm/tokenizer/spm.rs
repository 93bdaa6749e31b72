//! SentencePiece-style tokenization as llama.cpp runs it for `llama`-model
//! vocabularies (Llama 2, Gemma): spaces escaped to `▁`, an optional space
//! prefix, pairs merged highest score first (ties to the left), and pieces
//! missing from the vocabulary spelled as `<0xNN>` byte tokens.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};

use super::TokenId;

const SPACE: char = '\u{2581}';

pub(super) struct Spm {
    add_space_prefix: bool,
    byte_tokens: Box<[Option<TokenId>; 256]>,
}

struct Bigram {
    score: f32,
    left: usize,
    right: usize,
    size: usize,
}

impl PartialEq for Bigram {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Bigram {}
impl Ord for Bigram {
    fn cmp(&self, other: &Self) -> Ordering {
        // Max-heap: highest score first, then the leftmost pair.
        self.score
            .total_cmp(&other.score)
            .then(other.left.cmp(&self.left))
    }
}
impl PartialOrd for Bigram {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

struct Symbol {
    start: usize,
    len: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

/// Decodes an SPM piece: `▁` is a space, `<0xNN>` is one raw byte.
pub(super) fn decode_piece(text: &str) -> Vec<u8> {
    if let Some(hex) = text.strip_prefix("<0x").and_then(|t| t.strip_suffix('>'))
        && hex.len() == 2
        && let Ok(b) = u8::from_str_radix(hex, 16)
    {
        return vec![b];
    }
    text.replace(SPACE, " ").into_bytes()
}

impl Spm {
    pub(super) fn new(vocab: &HashMap<String, TokenId>, add_space_prefix: bool) -> Self {
        let mut byte_tokens = Box::new([None; 256]);
        for (b, slot) in byte_tokens.iter_mut().enumerate() {
            *slot = vocab.get(&format!("<0x{b:02X}>")).copied();
        }
        Self {
            add_space_prefix,
            byte_tokens,
        }
    }

    pub(super) fn encode(
        &self,
        text: &str,
        prev_special: bool,
        vocab: &HashMap<String, TokenId>,
        scores: &[f32],
        out: &mut Vec<TokenId>,
    ) {
        let mut escaped = String::with_capacity(text.len() + 3);
        if self.add_space_prefix && prev_special {
            escaped.push(SPACE);
        }
        for c in text.chars() {
            escaped.push(if c == ' ' { SPACE } else { c });
        }
        let word = escaped.as_str();

        let mut symbols: Vec<Symbol> = Vec::with_capacity(word.len());
        for (i, (start, c)) in word.char_indices().enumerate() {
            symbols.push(Symbol {
                start,
                len: c.len_utf8(),
                prev: i.checked_sub(1),
                next: None,
            });
            if i > 0 {
                symbols[i - 1].next = Some(i);
            }
        }
        let mut queue = BinaryHeap::new();
        let try_add = |queue: &mut BinaryHeap<Bigram>, symbols: &[Symbol], l: usize, r: usize| {
            let start = symbols[l].start;
            let size = symbols[l].len + symbols[r].len;
            if let Some(&score) = vocab
                .get(&word[start..start + size])
                .and_then(|&id| scores.get(id as usize))
            {
                queue.push(Bigram {
                    score,
                    left: l,
                    right: r,
                    size,
                });
            }
        };
        for i in 1..symbols.len() {
            try_add(&mut queue, &symbols, i - 1, i);
        }
        while let Some(bg) = queue.pop() {
            let (l, r) = (bg.left, bg.right);
            if symbols[l].len == 0
                || symbols[r].len == 0
                || symbols[l].len + symbols[r].len != bg.size
            {
                continue;
            }
            symbols[l].len += symbols[r].len;
            symbols[r].len = 0;
            symbols[l].next = symbols[r].next;
            if let Some(n) = symbols[r].next {
                symbols[n].prev = Some(l);
            }
            if let Some(p) = symbols[l].prev {
                try_add(&mut queue, &symbols, p, l);
            }
            if let Some(n) = symbols[l].next {
                try_add(&mut queue, &symbols, l, n);
            }
        }
        // Every merged symbol is a vocabulary entry; what is left unmerged and
        // unknown is spelled as byte tokens.
        let mut cur = if symbols.is_empty() { None } else { Some(0) };
        while let Some(i) = cur {
            let text = &word[symbols[i].start..symbols[i].start + symbols[i].len];
            match vocab.get(text) {
                Some(&id) => out.push(id),
                None => out.extend(text.bytes().filter_map(|b| self.byte_tokens[b as usize])),
            }
            cur = symbols[i].next;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_byte_and_space_pieces() {
        assert_eq!(decode_piece("<0x0A>"), b"\n");
        assert_eq!(decode_piece("\u{2581}hello"), b" hello");
        assert_eq!(decode_piece("<0xZZ>"), b"<0xZZ>");
    }
}
