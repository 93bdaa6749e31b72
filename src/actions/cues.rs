//! What the owner's words could be asking for, read by fixed rules before
//! any model runs: a message with no request phrase for an action ("remind
//! me", "set a reminder", "what reminders", "cancel … reminder", "find my
//! notes") never reaches the planner, so "my dentist reminded me to floss"
//! cannot set anything however the model reads it. Also takes the
//! subject of a reminder or a search out of the owner's words.
//!
//! Pure; must not decide an action on its own (the planner proposes,
//! [`super::decide`] validates).

use crate::reminder::Words;

/// The actions a message's words could ask for, with where the reminder
/// request phrase is ("remind me" in "can you remind me to …").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cues {
    /// Word range of the request phrase for a reminder.
    pub remind: Option<(usize, usize)>,
    pub list: bool,
    pub cancel: bool,
    /// Word range of the search request ("find my notes about").
    pub search: Option<(usize, usize)>,
}

impl Cues {
    pub fn any(&self) -> bool {
        self.remind.is_some() || self.list || self.cancel || self.search.is_some()
    }
}

/// Request phrases for a reminder, as normalised words.
const REMIND: &[&[&str]] = &[
    &["remind", "me"],
    &["remind", "myself"],
    &["set", "a", "reminder"],
    &["set", "reminder"],
    &["set", "me", "a", "reminder"],
    &["add", "a", "reminder"],
    &["create", "a", "reminder"],
    &["make", "a", "reminder"],
    &["new", "reminder"],
    &["reminder", "to"],
    &["reminder", "for"],
    &["don't", "let", "me", "forget"],
    &["dont", "let", "me", "forget"],
    &["do", "not", "let", "me", "forget"],
    &["make", "sure", "i", "remember"],
    &["ping", "me"],
    &["nudge", "me"],
    &["alert", "me"],
    &["wake", "me"],
    &["tell", "me", "to"],
    &["need", "a", "reminder"],
    &["want", "a", "reminder"],
    &["give", "me", "a", "reminder"],
];

/// Verbs that cancel, when a reminder is named too.
const CANCEL: &[&str] = &[
    "cancel", "delete", "remove", "drop", "clear", "scrap", "stop", "undo",
];

/// Request phrases for a search of the owner's own things.
const SEARCH: &[&[&str]] = &[
    &["find"],
    &["search"],
    &["look", "up"],
    &["look", "for"],
    &["dig", "out"],
    &["pull", "up"],
    &["show", "me", "my"],
    &["where", "are", "my"],
];

/// Where `phrase` first occurs in `w`.
fn position(w: &Words, phrase: &[&str]) -> Option<usize> {
    (0..w.len()).find(|&i| starts(w, i, phrase))
}

/// Whether `phrase` occurs in `w` at word `i`.
fn starts(w: &Words, i: usize, phrase: &[&str]) -> bool {
    phrase
        .iter()
        .enumerate()
        .all(|(k, p)| w.norm(i + k) == Some(*p))
}

/// Whether the request phrase at word `i` is said to Hearth ("remind me",
/// "can you remind me", "please remind me", "I want you to remind me", "in
/// 5 minutes remind me"), not said about someone else ("Tom said he would
/// remind me", "she'll remind me").
fn addressed(w: &Words, i: usize) -> bool {
    const OTHERS: &[&str] = &[
        "he", "she", "they", "it", "we", "who", "he'll", "she'll", "they'll", "we'll", "he'd",
        "she'd", "they'd", "we'd", "i'll", "i'd",
    ];
    const MODALS: &[&str] = &[
        "would",
        "will",
        "could",
        "can",
        "should",
        "might",
        "may",
        "must",
        "to",
        "always",
        "never",
        "often",
        "usually",
        "sometimes",
        "not",
        "did",
        "does",
    ];
    let Some(prev) = i.checked_sub(1).and_then(|p| w.norm(p)) else {
        return true;
    };
    if OTHERS.contains(&prev) {
        return false;
    }
    if MODALS.contains(&prev) {
        // "can you remind me", "I want you to remind me"; not "he would".
        return i >= 2 && matches!(w.norm(i - 2), Some("you" | "u" | "please" | "hearth"));
    }
    true
}

/// The first of `phrases` in `w` that is said to Hearth.
fn first_addressed(w: &Words, phrases: &[&[&str]]) -> Option<(usize, usize)> {
    phrases
        .iter()
        .filter_map(|p| {
            (0..w.len())
                .find(|&i| starts(w, i, p) && addressed(w, i))
                .map(|i| (i, i + p.len()))
        })
        .min()
}

fn first_of(w: &Words, phrases: &[&[&str]]) -> Option<(usize, usize)> {
    phrases
        .iter()
        .filter_map(|p| position(w, p).map(|i| (i, i + p.len())))
        .min()
}

fn has(w: &Words, words: &[&str]) -> bool {
    (0..w.len()).any(|i| w.norm(i).is_some_and(|x| words.contains(&x)))
}

/// The request phrases in `w`.
pub fn read(w: &Words) -> Cues {
    let reminder_word = has(w, &["reminder", "reminders", "remind"]);
    let cancel = has(w, CANCEL) && (reminder_word || number(w).is_some());
    let list = has(w, &["reminders"])
        && has(
            w,
            &[
                "what", "which", "list", "show", "any", "my", "pending", "upcoming", "all", "have",
                "got", "set",
            ],
        )
        && !cancel;
    Cues {
        remind: first_addressed(w, REMIND).filter(|_| !cancel),
        list,
        cancel,
        search: first_of(w, SEARCH),
    }
}

/// A reminder's number in a cancel request ("cancel 3", "cancel #3",
/// "delete reminder number 3").
pub fn number(w: &Words) -> Option<i64> {
    (0..w.len()).find_map(|i| {
        let x = w.norm(i)?.trim_start_matches('#');
        x.parse::<i64>().ok().filter(|n| *n > 0)
    })
}

/// Words that only join a subject to the rest of a sentence.
const LEADING: &[&str] = &[
    "to",
    "that",
    "about",
    "of",
    "for",
    "please",
    "pls",
    "so",
    "and",
    "then",
    "i",
    "need",
    "have",
    "should",
    "must",
    "gotta",
    "got",
    "remember",
    "me",
    "also",
    "can",
    "you",
    "could",
    "would",
    "will",
    "hey",
    "hi",
    "hearth",
    "ok",
    "okay",
    "just",
    "again",
    "with",
    "on",
    "regarding",
    "re",
];
const TRAILING: &[&str] = &[
    "please", "pls", "thanks", "thank", "you", "ok", "okay", "to", "at", "on", "by", "in", "and",
    "for", "about", "again", "too",
];

/// Words `a..b` of `w` without joining words at either end; `None` when
/// nothing is left.
fn trimmed(w: &Words, mut a: usize, mut b: usize) -> Option<(usize, usize)> {
    while a < b && w.norm(a).is_some_and(|x| LEADING.contains(&x)) {
        a += 1;
    }
    while b > a && w.norm(b - 1).is_some_and(|x| TRAILING.contains(&x)) {
        b -= 1;
    }
    (a < b).then_some((a, b))
}

/// What to remind of: the owner's words around the request phrase `cue`
/// without the time expression `time`, joining words trimmed: after the
/// phrase first ("remind me in 20 minutes to take the pizza out" → "take
/// the pizza out"), else before it ("call the bank at 3, remind me").
pub fn subject(w: &Words, cue: (usize, usize), time: (usize, usize)) -> Option<String> {
    let after = pieces(w, cue.1, w.len(), time);
    let before = pieces(w, 0, cue.0, time);
    after.or(before).map(|ranges| ranges_text(w, &ranges))
}

/// Words `a..b` with the `time` range cut out, each side trimmed.
fn pieces(w: &Words, a: usize, b: usize, time: (usize, usize)) -> Option<Vec<(usize, usize)>> {
    let mut out = Vec::new();
    if time.0 >= b || time.1 <= a {
        out.extend(trimmed(w, a, b));
    } else {
        out.extend(trimmed(w, a, time.0.max(a)));
        out.extend(trimmed(w, time.1.min(b), b));
    }
    (!out.is_empty()).then_some(out)
}

fn ranges_text(w: &Words, ranges: &[(usize, usize)]) -> String {
    ranges
        .iter()
        .map(|&(a, b)| w.original(a, b))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Words a search request wraps around its subject.
const SEARCH_FILLER: &[&str] = &[
    "find",
    "search",
    "look",
    "up",
    "for",
    "show",
    "me",
    "my",
    "the",
    "notes",
    "note",
    "documents",
    "document",
    "docs",
    "files",
    "file",
    "messages",
    "message",
    "emails",
    "email",
    "mails",
    "mail",
    "chats",
    "chat",
    "about",
    "on",
    "regarding",
    "anything",
    "everything",
    "all",
    "where",
    "are",
    "is",
    "i",
    "wrote",
    "what",
    "please",
    "can",
    "you",
    "could",
    "dig",
    "out",
    "pull",
    "through",
    "in",
    "of",
];

/// What to search for: the owner's words after the request phrase
/// without the words that wrap it ("find my notes about the boiler" →
/// "boiler").
pub fn query(w: &Words, cue: (usize, usize)) -> Option<String> {
    let mut a = cue.0;
    let mut b = w.len();
    while a < b && w.norm(a).is_some_and(|x| SEARCH_FILLER.contains(&x)) {
        a += 1;
    }
    while b > a && w.norm(b - 1).is_some_and(|x| TRAILING.contains(&x)) {
        b -= 1;
    }
    (a < b).then(|| w.original(a, b))
}

/// Words of a cancel request that say which reminder ("cancel the oven
/// reminder" → "oven"), lower-case.
pub fn keywords(text: &str) -> Vec<String> {
    const NOT: &[&str] = &[
        "the",
        "a",
        "my",
        "reminder",
        "reminders",
        "remind",
        "about",
        "for",
        "to",
        "please",
        "that",
        "one",
        "of",
        "me",
        "set",
        "i",
        "you",
        "can",
        "could",
        "and",
        "it",
        "on",
        "at",
        "in",
    ];
    Words::new(text)
        .norms()
        .filter(|x| !CANCEL.contains(x) && !NOT.contains(x) && !x.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cues(t: &str) -> Cues {
        read(&Words::new(t))
    }

    #[test]
    fn request_phrases() {
        assert!(
            cues("remind me in 20 minutes to take the pizza out")
                .remind
                .is_some()
        );
        assert!(cues("Don't let me forget to pay the bill").remind.is_some());
        assert!(
            cues("ping me in an hour about the dentist")
                .remind
                .is_some()
        );
        assert!(cues("what reminders do I have?").list);
        assert!(cues("cancel the reminder about the pizza").cancel);
        assert!(cues("cancel the oven reminder").cancel);
        assert!(cues("cancel 3").cancel);
        assert!(cues("cancel the pizza reminder").remind.is_none());
        assert!(cues("find my notes about the boiler").search.is_some());
        for t in [
            "my dentist reminded me to floss",
            "what is the capital of France?",
            "the reminder app on my phone is broken",
            "I forgot my keys at 5pm yesterday",
        ] {
            assert!(!cues(t).any(), "{t}");
        }
    }

    fn subject_of(t: &str, time: (usize, usize)) -> Option<String> {
        let w = Words::new(t);
        subject(&w, read(&w).remind.unwrap(), time)
    }

    #[test]
    fn subjects() {
        assert_eq!(
            subject_of("remind me in 20 minutes to take the pizza out", (2, 5)).as_deref(),
            Some("take the pizza out")
        );
        assert_eq!(
            subject_of(
                "Don't let me forget to pay the bill tomorrow at noon.",
                (8, 11)
            )
            .as_deref(),
            Some("pay the bill")
        );
        assert_eq!(
            subject_of("ping me in an hour about the dentist", (2, 5)).as_deref(),
            Some("the dentist")
        );
        assert_eq!(
            subject_of("I need to call the bank at 3, remind me", (6, 8)).as_deref(),
            Some("call the bank")
        );
        assert_eq!(subject_of("remind me in 20 minutes", (2, 5)), None);
    }

    #[test]
    fn queries_and_keywords() {
        let w = Words::new("find my notes about the boiler");
        assert_eq!(
            query(&w, read(&w).search.unwrap()).as_deref(),
            Some("boiler")
        );
        let w = Words::new("search my documents for the lease agreement please");
        assert_eq!(
            query(&w, read(&w).search.unwrap()).as_deref(),
            Some("lease agreement")
        );
        assert_eq!(keywords("cancel the oven reminder"), vec!["oven"]);
        assert_eq!(
            keywords("cancel the reminder about the pizza"),
            vec!["pizza"]
        );
    }
}
