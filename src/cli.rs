//! The command line (SPEC.md): `run` (the default), `check` and `test`, and
//! the extensions `outbox`, `send-test`, `replay` and `completions`. Parses
//! arguments, sets up logging, loads the config, dispatches, and maps
//! failures to exit codes: 78 (EX_CONFIG) for an invalid config, 1 for any
//! other error.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{Config, Leftovers};

/// Exit status for an invalid config (sysexits.h EX_CONFIG).
pub const EXIT_CONFIG: u8 = 78;

#[derive(Debug, Parser)]
#[command(
    name = "newswatch",
    version,
    about = "Watches a folder of news articles and alerts on the rules in config.toml"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// The config file (used when no command is given).
    #[arg(short, long, default_value = "config.toml", global = true)]
    pub config: PathBuf,
    /// Log format: human-readable text, or one JSON object per line for log shippers.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: watch the folder and deliver alerts (the default).
    Run,
    /// Validate the config fully, without network access; exit 78 on errors.
    Check,
    /// Run the rules on files or folders with fresh in-memory state; send nothing.
    Test {
        /// Print one JSON line per alert, exactly the webhook payload.
        #[arg(long, conflicts_with = "explain")]
        json: bool,
        /// For every rule with a term in the article: which part matched and
        /// which was missing.
        #[arg(long)]
        explain: bool,
        /// Files, or folders whose files are read in name order.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// List deliveries not yet made (pending and dead letters), or requeue dead letters.
    Outbox {
        #[command(subcommand)]
        action: Option<OutboxAction>,
    },
    /// Send one clearly marked test alert to a sink, to check it works.
    SendTest {
        /// The sink's name (its table name in config.toml).
        sink: String,
    },
    /// Run the current rules over old articles and deliver the alerts (back-testing).
    Replay {
        /// Only articles published on or after this day (YYYY-MM-DD) send alerts.
        #[arg(long, value_parser = crate::commands::replay::parse_date)]
        since: Option<chrono::NaiveDate>,
        /// Only this rule's alerts (repeatable); default: every rule.
        #[arg(long = "rule", value_name = "ID")]
        rules: Vec<String>,
        /// Files, or folders whose files are read in name order.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions { shell: clap_complete::Shell },
}

#[derive(Debug, Subcommand)]
pub enum OutboxAction {
    /// Put dead letters back in the queue (a running daemon picks them up within 30 s).
    Retry {
        /// The delivery id shown by `newswatch outbox`.
        id: Option<String>,
        /// Requeue every dead letter.
        #[arg(long, conflicts_with = "id")]
        all: bool,
    },
}

/// Sets up logging to stderr, level from `RUST_LOG` (default info), as text
/// or JSON lines. When stderr is the journal (systemd sets `JOURNAL_STREAM`),
/// lines carry no timestamp and no colours: journald adds its own.
pub fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match (format, stderr_is_journal()) {
        (LogFormat::Text, false) => builder.init(),
        (LogFormat::Text, true) => builder.without_time().with_ansi(false).init(),
        (LogFormat::Json, false) => builder.json().init(),
        (LogFormat::Json, true) => builder.json().without_time().init(),
    }
}

/// True when stderr is the stream systemd named in `JOURNAL_STREAM` ("DEV:INODE").
fn stderr_is_journal() -> bool {
    use std::os::unix::fs::MetadataExt as _;
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((device, inode)) = stream.to_str().and_then(|s| s.split_once(':')) else {
        return false;
    };
    match std::fs::metadata("/proc/self/fd/2") {
        Ok(stderr) => device.parse() == Ok(stderr.dev()) && inode.parse() == Ok(stderr.ino()),
        Err(_) => false,
    }
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> ExitCode {
    if let Some(Command::Completions { shell }) = cli.command {
        crate::commands::completions::run(shell);
        return ExitCode::SUCCESS;
    }
    // Every command but the daemon exits when done.
    let leftovers = match cli.command {
        None | Some(Command::Run) => Leftovers::Free,
        Some(_) => Leftovers::Keep,
    };
    let config = match crate::ruletest::load_and_test(&cli.config, leftovers) {
        Ok(config) => config,
        Err(diagnostics) => {
            for diagnostic in &diagnostics {
                eprintln!("{diagnostic}");
            }
            eprintln!(
                "{}: {} error{}",
                cli.config.display(),
                diagnostics.len(),
                if diagnostics.len() == 1 { "" } else { "s" }
            );
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let result = match cli.command.unwrap_or(Command::Run) {
        Command::Run => run_daemon(config),
        Command::Check => {
            print_check_summary(&cli.config, &config);
            // Exiting now: freeing a large rule set piece by piece would
            // only delay it.
            std::mem::forget(config);
            Ok(())
        }
        Command::Test {
            json,
            explain,
            paths,
        } => crate::commands::test::run(config, json, explain, &paths),
        Command::Outbox { action } => crate::commands::outbox::run(&config, action),
        Command::SendTest { sink } => crate::commands::send_test::run(&config, &sink),
        Command::Replay {
            since,
            rules,
            paths,
        } => crate::commands::replay::run(config, since, &rules, &paths),
        Command::Completions { .. } => Ok(()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_daemon(config: Config) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(crate::app::run(config))
}

fn print_check_summary(path: &std::path::Path, config: &Config) {
    println!(
        "{}: ok ({} rules, {} patterns, {} rule tests passed, {} sinks: {})",
        path.display(),
        config.rules.len(),
        config.ruleset.pattern_count(),
        config.tests.len(),
        config.sinks.len(),
        config
            .sinks
            .iter()
            .map(|s| format!("{} ({})", s.name, s.kind.type_name()))
            .collect::<Vec<_>>()
            .join(", ")
    );
}
