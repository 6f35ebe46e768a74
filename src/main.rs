//! The `newswatch` binary: parse the command line, set up logging, run.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = newswatch::cli::Cli::parse();
    newswatch::cli::init_tracing(cli.log_format);
    newswatch::cli::run(cli)
}
