//! `hearth key rotate`: re-encrypts the store (or, with `--bridge`, the
//! WhatsApp session) under a fresh key, crash-safe (see
//! `store::rotate`). The process using the database must be stopped.

use clap::Subcommand;

use super::{GlobalArgs, Outcome};
use crate::store::{Create, Store};

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Re-encrypt under a new key and replace the key file (stop `hearth
    /// serve`, or with --bridge `hearth bridge`, first)
    ///
    /// Under systemd the key is a credential copy; rotate the source file:
    ///   sudo systemctl stop hearth
    ///   sudo hearth --data-dir /var/lib/hearth --key-file /etc/hearth/store.key key rotate
    ///   sudo systemctl start hearth
    #[command(verbatim_doc_comment)]
    Rotate {
        /// The bridge's session key instead of the store's
        #[arg(long)]
        bridge: bool,
    },
}

pub fn run(g: &GlobalArgs, c: KeyCommand) -> anyhow::Result<Outcome> {
    let KeyCommand::Rotate { bridge } = c;
    let user = if bridge { "bridge" } else { "serve" };
    if !crate::doctor::hearth_pids(user).is_empty() {
        anyhow::bail!("hearth {user} is running; stop it first (it holds the old key)");
    }
    let key_file = if bridge {
        g.bridge_paths()?.key_file
    } else {
        g.paths()?.key_file
    };
    if std::env::var_os("CREDENTIALS_DIRECTORY")
        .is_some_and(|d| key_file.starts_with(std::path::Path::new(&d)))
    {
        anyhow::bail!(
            "{} is a systemd credential (a copy); rotate its source with --key-file",
            key_file.display()
        );
    }
    if bridge {
        let p = g.bridge_paths()?;
        crate::store::session::SessionDb::open(&p.state_dir, &p.key_file, Create::Never)?
            .rotate_key(&p.key_file)?;
    } else {
        let paths = g.paths()?;
        Store::open(&paths, Create::Never)?.rotate_key(&paths.key_file)?;
    }
    eprintln!(
        "re-encrypted under a new key, now in {} (the old key no longer opens it)",
        key_file.display()
    );
    Ok(Outcome::Ok)
}
