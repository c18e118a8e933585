//! The `picket` binary: parse the command line and hand over to the library.

use clap::Parser;

/// mimalloc instead of the C library's allocator: picket allocates many short-lived
/// buffers from several threads at once (HTTP requests, rows, rendered posts), where
/// glibc's malloc spent about a sixth of a dispatch run's CPU time (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = picket::cli::Cli::parse();
    picket::cli::run(cli)
}
