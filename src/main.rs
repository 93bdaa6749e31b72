//! The `hearth` binary: parses arguments, sets up logging and threads, runs
//! one subcommand and maps the outcome to an exit code (0 ok, 1 a check
//! failed, 2 error). Everything else lives in the library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = hearth::cli::Cli::parse();
    hearth::cli::init_process(&cli);
    match hearth::cli::run(cli) {
        Ok(outcome) => outcome.exit_code(),
        Err(e) if hearth::cli::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
