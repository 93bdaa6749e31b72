//! `hearth audit`: show the newest audit records and check the hash chain
//! (exit 1 naming the first broken record). Reads the store directly; works
//! while `hearth serve` runs. On a box where nothing is stored yet there is
//! no chain: it says so (exit 0).

use clap::Subcommand;

use super::{GlobalArgs, Outcome};
use crate::audit::{self, Record};
use crate::store::Store;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Show the newest records (who, what, on what, outcome; never message text)
    Tail {
        /// How many records
        #[arg(short, default_value_t = 20, value_name = "N")]
        n: usize,
        /// One JSON object per line
        #[arg(long)]
        json: bool,
    },
    /// Check the whole chain: exit 0 when intact, 1 naming the first record
    /// that was edited, deleted, reordered or inserted
    ///
    /// With --head SEQ:HASH (as `/audit` sent it to your phone earlier),
    /// also checks that record SEQ still has that hash, so a chain rewritten
    /// from scratch on the box is caught.
    #[command(verbatim_doc_comment)]
    Verify {
        /// A head you kept, e.g. 57:3f2a…
        #[arg(long, value_name = "SEQ:HASH")]
        head: Option<String>,
    },
}

pub fn run(g: &GlobalArgs, c: AuditCommand) -> anyhow::Result<Outcome> {
    let paths = g.paths()?;
    let Some(store) = Store::open_existing(&paths)? else {
        outln!("{}", super::nothing_yet(&paths));
        return Ok(Outcome::Ok);
    };
    match c {
        AuditCommand::Tail { n, json } => {
            for r in store.audit_tail(n)? {
                if json {
                    outln!("{}", r.to_json());
                } else {
                    outln!("{}", line(&r));
                }
            }
            Ok(Outcome::Ok)
        }
        AuditCommand::Verify { head } => {
            let kept = match head.as_deref().map(|h| (h, audit::parse_head(h))) {
                None => None,
                Some((_, Some(h))) => Some(h),
                Some((h, None)) => anyhow::bail!(
                    "--head {h}: expected SEQ:HASH, the record number and its 64-digit hash"
                ),
            };
            let result = store.verify_audit(kept)?;
            outln!("{}", audit::describe(&result, kept));
            Ok(match result {
                Ok(_) => Outcome::Ok,
                Err(_) => Outcome::CheckFailed,
            })
        }
    }
}

fn line(r: &Record) -> String {
    format!(
        "#{:<5} {}  {:<18} {:<8} {}  [{}]",
        r.seq,
        crate::clock::utc_second(r.ts_ms),
        r.action,
        r.outcome,
        r.object,
        r.actor
    )
}
