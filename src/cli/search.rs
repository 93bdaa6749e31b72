//! `hearth search`: ranked documents for a query (hybrid full-text and
//! semantic), as text or JSON lines; `-` reads one query per line from
//! stdin and answers each without reloading anything.

use std::io::BufRead;

use clap::Args;

use super::index::open_store;
use super::{GlobalArgs, Outcome, load_embedder};
use crate::search::{Hit, Searcher};

#[derive(Debug, Args)]
pub struct SearchArgs {
    /// What to look for, or `-` to read one query per line from stdin
    pub query: String,
    /// Results per query
    #[arg(short = 'k', long, default_value_t = 5, value_name = "N")]
    pub k: usize,
    /// One JSON object per result: query, rank, path, score, snippet
    #[arg(long)]
    pub json: bool,
}

#[derive(serde::Serialize)]
struct JsonHit<'a> {
    query: &'a str,
    rank: usize,
    path: &'a str,
    score: f64,
    snippet: &'a str,
}

pub fn run(g: &GlobalArgs, a: SearchArgs) -> anyhow::Result<Outcome> {
    let store = open_store(g)?;
    let embedder = load_embedder(g)?;
    let searcher = Searcher::new(&store, &embedder)?;
    let answer = |query: &str| -> anyhow::Result<()> {
        let hits = searcher.search(query, a.k)?;
        print_hits(query, &hits, a.json)
    };
    if a.query == "-" {
        for line in std::io::stdin().lock().lines() {
            let line = line?;
            if !line.trim().is_empty() {
                answer(line.trim())?;
            }
        }
    } else {
        answer(&a.query)?;
    }
    Ok(Outcome::Ok)
}

fn print_hits(query: &str, hits: &[Hit], json: bool) -> anyhow::Result<()> {
    if json {
        for (i, h) in hits.iter().enumerate() {
            let j = JsonHit {
                query,
                rank: i + 1,
                path: &h.path,
                score: h.score,
                snippet: &h.snippet,
            };
            outln!("{}", serde_json::to_string(&j)?);
        }
    } else if hits.is_empty() {
        outln!("nothing found for {query:?}");
    } else {
        for (i, h) in hits.iter().enumerate() {
            outln!("{}. {}  ({:.4})", i + 1, h.path, h.score);
            outln!("   {}", h.snippet);
        }
    }
    Ok(())
}
