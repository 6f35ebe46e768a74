//! `newswatch completions SHELL`: prints a completion script for bash, zsh,
//! fish, elvish or PowerShell, generated from the clap definitions, so it
//! never goes stale. Needs no config.

use clap::CommandFactory as _;
use clap_complete::Shell;

pub fn run(shell: Shell) {
    let mut command = crate::cli::Cli::command();
    clap_complete::generate(shell, &mut command, "newswatch", &mut std::io::stdout());
}
