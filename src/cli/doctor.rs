//! `hearth doctor`: runs [`crate::doctor`]'s checks and prints them for
//! people (one line each, what to do on failure) or as JSON; exit 1 when
//! any check fails.

use std::path::PathBuf;

use clap::Args;

use super::{GlobalArgs, Outcome};
use crate::doctor::{self, Layout, Status};

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Check an installation (the Debian package's or scripts/install.sh's)
    /// under DIR: its /etc/hearth, /var/lib/hearth, models, units
    /// [default: / when hearth.service is installed, else this user's files]
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// One JSON object: {"ok": bool, "checks": [{"id", "status", "detail"}]}
    #[arg(long)]
    pub json: bool,
    /// Compare model sizes instead of hashing the files
    #[arg(long)]
    pub quick: bool,
}

pub fn run(g: &GlobalArgs, a: DoctorArgs) -> anyhow::Result<Outcome> {
    let layout = layout(g, a.root);
    let checks = doctor::run(&layout, !a.quick);
    let ok = !checks.iter().any(|c| c.status == Status::Fail);
    if a.json {
        outln!("{}", serde_json::json!({ "ok": ok, "checks": checks }));
    } else {
        for c in &checks {
            let tag = match c.status {
                Status::Ok => "ok  ",
                Status::Warn => "WARN",
                Status::Fail => "FAIL",
                Status::Skip => "skip",
            };
            outln!("{tag} {:<20} {}", c.id, c.detail);
        }
        let failed = checks.iter().filter(|c| c.status == Status::Fail).count();
        let warned = checks.iter().filter(|c| c.status == Status::Warn).count();
        outln!(
            "{}",
            if ok {
                format!("all checks passed ({warned} warning(s))")
            } else {
                format!("{failed} check(s) FAILED, {warned} warning(s)")
            }
        );
    }
    Ok(if ok {
        Outcome::Ok
    } else {
        Outcome::CheckFailed
    })
}

fn layout(g: &GlobalArgs, root: Option<PathBuf>) -> Layout {
    let system = PathBuf::from("/");
    if let Some(root) = root {
        return Layout::installed(&root);
    }
    if Layout::is_installed(&system) && g.data_dir.is_none() {
        return Layout::installed(&system);
    }
    // This user's files, as the other commands resolve them (an invalid
    // config still gets checked: its own check reports it).
    let paths = g
        .paths()
        .unwrap_or_else(|_| crate::paths::Paths::resolve(g.data_dir.clone(), g.key_file.clone()));
    let bridge = g
        .bridge_paths()
        .unwrap_or_else(|_| crate::paths::BridgePaths::resolve(None, None));
    Layout {
        config: g.config_file(),
        socket: g.socket().unwrap_or_else(|_| paths.socket()),
        data_dir: paths.data_dir,
        key_file: paths.key_file,
        bridge_dir: bridge.state_dir,
        bridge_key: bridge.key_file,
        models_dir: g
            .models_dir
            .clone()
            .unwrap_or_else(crate::catalog::default_models_dir),
        units_dir: system.join("etc/systemd/system"),
    }
}
