//! `hearth firstboot`: applies the boot partition's `hearth-setup.toml` on
//! the appliance (run by `hearth-setup.service` at every boot, before the
//! network and SSH start), or prints the file the image ships.

use std::path::PathBuf;

use clap::Args;

use super::{GlobalArgs, Outcome};

#[derive(Debug, Args)]
pub struct FirstbootArgs {
    /// The boot partition holding hearth-setup.toml
    #[arg(long, default_value = "/boot/firmware", value_name = "DIR")]
    pub boot: PathBuf,
    /// The root file system to set up
    #[arg(long, default_value = "/", value_name = "DIR")]
    pub root: PathBuf,
    /// Print the empty hearth-setup.toml (every setting explained) and exit
    #[arg(long)]
    pub template: bool,
}

pub fn run(_g: &GlobalArgs, a: FirstbootArgs) -> anyhow::Result<Outcome> {
    if a.template {
        use std::io::Write as _;
        write!(std::io::stdout().lock(), "{}", crate::firstboot::TEMPLATE)?;
        return Ok(Outcome::Ok);
    }
    let done = crate::firstboot::apply(&a.boot, &a.root)?;
    if !done.changed {
        outln!("hearth-setup.toml is unchanged since it was applied; nothing to do");
    }
    for p in &done.written {
        outln!("wrote /{}", p.display());
    }
    Ok(Outcome::Ok)
}
