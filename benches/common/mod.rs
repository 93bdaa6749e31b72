//! Shared by the benches: deterministic English-like text, so runs on
//! different machines (and before/after a change) see the same input.

/// Deterministic English-like passages of `words` words.
pub fn passages(n: usize, words: usize) -> Vec<String> {
    const VOCAB: &[&str] = &[
        "the",
        "router",
        "password",
        "garden",
        "invoice",
        "meeting",
        "Thursday",
        "kitchen",
        "battery",
        "holiday",
        "receipt",
        "doctor",
        "train",
        "station",
        "recipe",
        "flour",
        "backup",
        "server",
        "printer",
        "school",
        "weather",
        "budget",
        "insurance",
        "car",
        "appointment",
        "birthday",
        "present",
        "project",
        "deadline",
        "network",
        "photo",
        "album",
        "and",
        "of",
        "to",
        "in",
        "is",
        "was",
        "for",
        "with",
        "on",
        "at",
        "by",
        "reminder",
        "electricity",
        "water",
        "contract",
        "landlord",
        "warranty",
        "phone",
    ];
    let mut x = 12345u64;
    (0..n)
        .map(|_| {
            (0..words)
                .map(|i| {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let w = VOCAB[(x >> 33) as usize % VOCAB.len()];
                    if i % 12 == 11 {
                        format!("{w}.")
                    } else {
                        w.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}
