//! The `picket` command line.

use std::process::ExitCode;

use clap::Parser;

#[derive(Debug, Parser)]
#[command(name = "picket", version, about)]
pub struct Cli {}

pub fn run(_cli: Cli) -> ExitCode {
    ExitCode::SUCCESS
}
