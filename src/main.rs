//! The `picket` binary: parse the command line and hand over to the library.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = picket::cli::Cli::parse();
    picket::cli::run(cli)
}
