//! Byte-level BPE (GPT-2 family) as llama.cpp runs it: regex pre-tokenizer
//! chosen by `tokenizer.ggml.pre`, GPT-2 byte-to-unicode mapping, then merges
//! applied lowest rank first (ties to the left) through a priority queue.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::sync::OnceLock;

use fancy_regex::Regex;

use super::{TokenId, TokenizerError};

const GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)";
const LLAMA3: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN2: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// The regex sequence llama.cpp applies for a `tokenizer.ggml.pre` value.
fn pre_regexes(pre: &str) -> Result<Vec<&'static str>, TokenizerError> {
    Ok(match pre {
        "smollm" | "starcoder" | "refact" | "command-r" | "codeshell" | "exaone" | "minerva-7b" => {
            vec![r"\p{N}", GPT2]
        }
        "gpt-2" | "gpt2" | "phi-2" | "jina-es" | "jina-de" | "olmo" | "jais" | "trillion" => {
            vec![GPT2]
        }
        "llama3" | "llama-bpe" | "llama-v3" | "falcon3" | "pixtral" | "smaug-bpe" => vec![LLAMA3],
        "qwen2" | "deepseek-r1-qwen" | "megrez" => vec![QWEN2],
        "default" => vec![r"[\p{P}\$\+<=>\^~\|]+", GPT2, r"\p{N}+", "[0-9][0-9][0-9]"],
        other => return Err(TokenizerError::UnsupportedPre(other.to_string())),
    })
}

/// GPT-2's reversible map from bytes to printable unicode characters.
fn byte_to_char() -> &'static [char; 256] {
    static TABLE: OnceLock<[char; 256]> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut table = ['\0'; 256];
        let mut n = 0u32;
        for b in 0..=255u8 {
            let printable = (b'!'..=b'~').contains(&b)
                || (0xA1..=0xAC).contains(&b)
                || (0xAE..=0xFF).contains(&b);
            table[b as usize] = if printable {
                char::from(b)
            } else {
                let c = char::from_u32(256 + n).unwrap_or('\u{FFFD}');
                n += 1;
                c
            };
        }
        table
    })
}

fn char_to_byte() -> &'static HashMap<char, u8> {
    static TABLE: OnceLock<HashMap<char, u8>> = OnceLock::new();
    TABLE.get_or_init(|| {
        byte_to_char()
            .iter()
            .enumerate()
            .map(|(b, &c)| (c, b as u8))
            .collect()
    })
}

/// The raw bytes behind a byte-level token's text.
pub(super) fn decode_piece(text: &str) -> Vec<u8> {
    let map = char_to_byte();
    let mut out = Vec::with_capacity(text.len());
    for c in text.chars() {
        match map.get(&c) {
            Some(&b) => out.push(b),
            None => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out
}

pub(super) struct Bpe {
    ranks: HashMap<(String, String), u32>,
    regexes: Vec<Regex>,
}

#[derive(PartialEq, Eq)]
struct Bigram {
    rank: u32,
    left: usize,
    right: usize,
    text: String,
}

impl Ord for Bigram {
    fn cmp(&self, other: &Self) -> Ordering {
        // BinaryHeap is a max-heap: the lowest rank, then the leftmost, wins.
        other.rank.cmp(&self.rank).then(other.left.cmp(&self.left))
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

impl Bpe {
    pub(super) fn new(merges: &[String], pre: &str) -> Result<Self, TokenizerError> {
        let mut ranks = HashMap::with_capacity(merges.len());
        for (rank, merge) in merges.iter().enumerate() {
            if let Some((a, b)) = merge.split_once(' ') {
                ranks.insert((a.to_string(), b.to_string()), rank as u32);
            }
        }
        let regexes = pre_regexes(pre)?
            .into_iter()
            .map(|r| Regex::new(r).map_err(|e| TokenizerError::Regex(e.to_string())))
            .collect::<Result<_, _>>()?;
        Ok(Self { ranks, regexes })
    }

    /// Splits `text` into words: every regex in turn splits every piece,
    /// keeping both matches and the text between them.
    fn pre_tokenize<'a>(&self, text: &'a str) -> Vec<&'a str> {
        let mut pieces = vec![text];
        for re in &self.regexes {
            let mut next = Vec::with_capacity(pieces.len() * 2);
            for piece in pieces {
                let mut last = 0;
                for m in re.find_iter(piece) {
                    let Ok(m) = m else { break };
                    if m.start() > last {
                        next.push(&piece[last..m.start()]);
                    }
                    if m.end() > m.start() {
                        next.push(m.as_str());
                    }
                    last = m.end();
                }
                if last < piece.len() {
                    next.push(&piece[last..]);
                }
            }
            pieces = next;
        }
        pieces
    }

    pub(super) fn encode(
        &self,
        text: &str,
        vocab: &HashMap<String, TokenId>,
        out: &mut Vec<TokenId>,
    ) {
        let table = byte_to_char();
        for word in self.pre_tokenize(text) {
            let encoded: String = word.bytes().map(|b| table[b as usize]).collect();
            self.encode_word(&encoded, vocab, out);
        }
    }

    fn rank(&self, a: &str, b: &str) -> Option<u32> {
        self.ranks.get(&(a.to_string(), b.to_string())).copied()
    }

    fn encode_word(&self, word: &str, vocab: &HashMap<String, TokenId>, out: &mut Vec<TokenId>) {
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
        let text_of = |s: &Symbol| &word[s.start..s.start + s.len];
        let mut queue = BinaryHeap::new();
        let push = |queue: &mut BinaryHeap<Bigram>, symbols: &[Symbol], l: usize, r: usize| {
            let (a, b) = (text_of(&symbols[l]), text_of(&symbols[r]));
            if let Some(rank) = self.rank(a, b) {
                queue.push(Bigram {
                    rank,
                    left: l,
                    right: r,
                    text: format!("{a}{b}"),
                });
            }
        };
        for i in 1..symbols.len() {
            push(&mut queue, &symbols, i - 1, i);
        }
        while let Some(bg) = queue.pop() {
            let (l, r) = (bg.left, bg.right);
            if symbols[l].len == 0 || symbols[r].len == 0 || symbols[l].next != Some(r) {
                continue;
            }
            let joined = &word[symbols[l].start..symbols[r].start + symbols[r].len];
            if joined != bg.text {
                continue;
            }
            symbols[l].len += symbols[r].len;
            symbols[r].len = 0;
            symbols[l].next = symbols[r].next;
            if let Some(n) = symbols[r].next {
                symbols[n].prev = Some(l);
            }
            if let Some(p) = symbols[l].prev {
                push(&mut queue, &symbols, p, l);
            }
            if let Some(n) = symbols[l].next {
                push(&mut queue, &symbols, l, n);
            }
        }
        let mut cur = if symbols.is_empty() { None } else { Some(0) };
        while let Some(i) = cur {
            let s = &symbols[i];
            let t = text_of(s);
            match vocab.get(t) {
                Some(&id) => out.push(id),
                None => {
                    // Fall back to one token per character (byte) of the piece.
                    for c in t.chars() {
                        let mut buf = [0u8; 4];
                        if let Some(&id) = vocab.get(&*c.encode_utf8(&mut buf)) {
                            out.push(id);
                        }
                    }
                }
            }
            cur = s.next;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_map_round_trips_every_byte() {
        let all: Vec<u8> = (0..=255).collect();
        let text: String = all.iter().map(|&b| byte_to_char()[b as usize]).collect();
        assert_eq!(decode_piece(&text), all);
        assert_eq!(byte_to_char()[b' ' as usize], 'Ġ');
        assert_eq!(byte_to_char()[b'\n' as usize], 'Ċ');
    }

    #[test]
    fn smollm_pre_tokenizer_isolates_digits_and_keeps_space_runs() {
        let bpe = Bpe::new(&[], "smollm").unwrap();
        assert_eq!(
            bpe.pre_tokenize("a 12  b"),
            vec!["a", " ", "1", "2", " ", " b"]
        );
    }

    #[test]
    fn merges_apply_lowest_rank_first() {
        let merges = vec!["a b".to_string(), "ab c".to_string(), "b c".to_string()];
        let bpe = Bpe::new(&merges, "gpt2").unwrap();
        let vocab: HashMap<String, TokenId> = [
            ("a", 0),
            ("b", 1),
            ("c", 2),
            ("ab", 3),
            ("abc", 4),
            ("bc", 5),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let mut out = Vec::new();
        bpe.encode("abc", &vocab, &mut out);
        assert_eq!(out, vec![4]);
    }
}
