//! `newswatch test`: runs the rules on given files with fresh in-memory
//! state (so `first_seen` sees the files in the order given), sends nothing,
//! writes nothing. Prints a report with the matched words highlighted, or
//! with `--json` one line per alert, exactly the webhook payload.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;

use crate::alert::build::push_collapsed;
use crate::alert::json::ArticleJson;
use crate::alert::payload::Alert;
use crate::article::{boilerplate, Article};
use crate::config::Config;
use crate::ingest::is_candidate;
use crate::pipeline::{fired_at_now, read_file, Outcome, Pipeline, ReadFile};
use crate::state::Store;

/// Characters of context shown on each side of a match.
const CONTEXT: usize = 60;
/// Files per batch: read ahead by one thread, recorded in one transaction
/// of the in-memory state by another.
const BATCH: usize = 64;

pub fn run(config: Config, json: bool, explain: bool, paths: &[PathBuf]) -> anyhow::Result<()> {
    let files = expand(paths, &config.watch.extensions)?;
    let store = Store::open_in_memory().context("cannot create the in-memory state")?;
    let mut pipeline = Pipeline::new(Arc::new(config), store).without_deliveries();
    let config = Arc::clone(pipeline.config());
    let mut printer = Printer {
        config: Arc::clone(&config),
        json,
        explain,
        color: !json && std::io::stdout().is_terminal(),
        articles: 0,
        fired: 0,
        lines: String::new(),
        article_json: ArticleJson::default(),
    };
    // In batches like the daemon's (one transaction each), in the order
    // given, on three threads: one reads and scans the next batch, this one
    // records the last in the in-memory state (the daemon's reader and
    // recorder), and one prints what the one before that gave.
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let (batches, read_batches) = std::sync::mpsc::sync_channel::<Vec<ReadFile>>(1);
        let (outcomes, recorded) = std::sync::mpsc::sync_channel::<Vec<(PathBuf, Outcome)>>(1);
        scope.spawn(|| {
            for chunk in files.chunks(BATCH) {
                let read = chunk.iter().map(|path| read_file(&config, path, None));
                if batches.send(read.collect()).is_err() {
                    break; // the recorder stopped on an error
                }
            }
            drop(batches); // ends the recorder's loop below
        });
        let writer = scope.spawn(move || -> anyhow::Result<()> {
            let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
            let printed = recorded
                .into_iter()
                .flatten()
                .try_for_each(|(path, outcome)| printer.outcome(&mut out, &path, outcome))
                .and_then(|()| {
                    if !printer.json {
                        let (articles, fired) = (printer.articles, printer.fired);
                        writeln!(out, "{articles} article(s), {fired} alert(s)")?;
                    }
                    Ok(out.flush()?)
                });
            match printed {
                // The reader went away (`newswatch test ... | head`): done.
                Err(error) if is_broken_pipe(&error) => Ok(()),
                other => other,
            }
        });
        for batch in read_batches {
            let paths: Vec<PathBuf> = batch.iter().map(|file| file.path.clone()).collect();
            let done = pipeline
                .record_batch(Arc::clone(&config), batch, &fired_at_now())
                .context("in-memory state failed")?;
            if outcomes
                .send(paths.into_iter().zip(done).collect())
                .is_err()
            {
                break; // the writer stopped on an error, returned below
            }
        }
        drop(outcomes); // ends the writer's loop
        writer.join().expect("the writer thread does not panic")
    })?;
    // The process ends here: freeing a large rule set piece by piece (0.2 s
    // at 100,000 rules) would only delay the exit.
    std::mem::forget(pipeline);
    Ok(())
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    let kind = match error.downcast_ref::<std::io::Error>() {
        Some(error) => Some(error.kind()),
        None => error
            .downcast_ref::<serde_json::Error>()
            .and_then(serde_json::Error::io_error_kind),
    };
    kind == Some(std::io::ErrorKind::BrokenPipe)
}

/// How `test` prints, and what it has counted so far.
struct Printer {
    config: Arc<Config>,
    json: bool,
    explain: bool,
    color: bool,
    articles: usize,
    fired: usize,
    /// The JSON lines of one article, built here and written at once.
    lines: String,
    /// The JSON of the article the last alert was about.
    article_json: ArticleJson,
}

impl Printer {
    /// Prints what became of one file.
    fn outcome(
        &mut self,
        out: &mut impl Write,
        path: &Path,
        outcome: Outcome,
    ) -> anyhow::Result<()> {
        match outcome {
            Outcome::Processed { alerts, text, .. } => {
                self.articles += 1;
                self.fired += alerts.len();
                if self.json {
                    self.lines.clear();
                    for alert in &alerts {
                        alert.write_json_sharing(&mut self.lines, &mut self.article_json);
                        self.lines.push('\n');
                    }
                    out.write_all(self.lines.as_bytes())?;
                } else {
                    report(out, path, &alerts, &text, self.color)?;
                    if self.explain {
                        let raw = std::fs::read(path).unwrap_or_default();
                        explain_rules(out, &self.config, path, &raw)?;
                    }
                }
            }
            Outcome::Duplicate { .. } => {
                eprintln!(
                    "{}: same content as a file before it; no alerts",
                    path.display()
                )
            }
            Outcome::Unchanged => {}
            Outcome::Skipped(reason) => eprintln!("{}: skipped: {reason}", path.display()),
            Outcome::Unreadable(reason) => eprintln!("{}: cannot read: {reason}", path.display()),
        }
        Ok(())
    }
}

/// Files as given; folders replaced by their article files, sorted by name.
pub(crate) fn expand(paths: &[PathBuf], extensions: &[String]) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut inside: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("cannot list {}", path.display()))?
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && is_candidate(p, extensions))
                .collect();
            inside.sort();
            files.extend(inside);
        } else if path.exists() {
            files.push(path.clone());
        } else {
            anyhow::bail!("{} does not exist", path.display());
        }
    }
    Ok(files)
}

fn report(
    out: &mut impl Write,
    path: &Path,
    alerts: &[Alert],
    text: &str,
    color: bool,
) -> std::io::Result<()> {
    let Some(first) = alerts.first() else {
        writeln!(out, "{}: no rule fired", path.display())?;
        return Ok(());
    };
    let article = &first.article;
    writeln!(
        out,
        "{}: {} | {} | id {}",
        path.display(),
        article.title.as_deref().unwrap_or("(no title)"),
        article.published.as_deref().unwrap_or("no date"),
        &article.id[..12]
    )?;
    // One line per match, built in this buffer (thousands per second).
    let mut line = String::new();
    for alert in alerts {
        writeln!(
            out,
            "  [{}] {}: {}",
            alert.severity.as_str(),
            alert.rule,
            alert.description
        )?;
        if !alert.entities.is_empty() {
            writeln!(out, "    entities: {}", alert.entities.join(", "))?;
        }
        for found in &alert.matches {
            line.clear();
            if found.field.as_deref() == Some("title") {
                highlight(&mut line, &found.text, color);
                writeln!(out, "    title: {line}")?;
                continue;
            }
            // Offsets refer to the article text; show the match in context.
            if text.get(found.start..found.end) == Some(found.text.as_str()) {
                in_context(&mut line, text, found.start, found.end, color);
            } else {
                highlight(&mut line, &found.text, color);
            }
            writeln!(out, "    {}: {line}", found.start)?;
        }
    }
    Ok(())
}

/// For each rule with a term found in the article, why it did or did not fire.
fn explain_rules(
    out: &mut impl Write,
    config: &Config,
    path: &Path,
    bytes: &[u8],
) -> std::io::Result<()> {
    let extension = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let Ok(article) = Article::from_bytes(
        path.to_path_buf(),
        &extension,
        bytes,
        config.watch.max_file_size,
    ) else {
        return Ok(());
    };
    let text = boilerplate::matchable(&article.text);
    let title = article.title.as_deref();
    let touched = config.ruleset.rules_touched_article(title, &text);
    for &rule in &touched {
        for line in config.ruleset.explain_article(rule, title, &text).lines() {
            writeln!(out, "    {line}")?;
        }
    }
    let silent = config.rules.len() - touched.len();
    if silent > 0 {
        writeln!(out, "    ({silent} other rule(s): no term found)")?;
    }
    Ok(())
}

/// Appends `text`, whitespace collapsed, marked as a match.
fn highlight(line: &mut String, text: &str, color: bool) {
    line.push_str(if color { "\x1b[1;31m" } else { "»" });
    push_collapsed(line, text);
    line.push_str(if color { "\x1b[0m" } else { "«" });
}

/// Appends the match `text[start..end]` with up to [`CONTEXT`] characters
/// of the text on each side, whitespace collapsed.
fn in_context(line: &mut String, text: &str, start: usize, end: usize, color: bool) {
    let before = &text[..start];
    let before = before
        .char_indices()
        .rev()
        .nth(CONTEXT - 1)
        .map_or(before, |(at, _)| &before[at..]);
    let after = &text[end..];
    let after = after
        .char_indices()
        .nth(CONTEXT)
        .map_or(after, |(at, _)| &after[..at]);
    line.push('…');
    push_collapsed(line, before);
    if before.ends_with(char::is_whitespace) {
        line.push(' ');
    }
    highlight(line, &text[start..end], color);
    if after.starts_with(char::is_whitespace) {
        line.push(' ');
    }
    push_collapsed(line, after);
    line.push('…');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::build::{build_alert, AlertIds, FiredRule};
    use crate::alert::payload::{ArticleRef, MatchSpan, Severity};

    fn context(text: &str, needle: &str) -> String {
        let start = text.find(needle).expect("needle in text");
        let mut line = String::from("old line, cleared by nobody: ");
        let kept = line.len();
        in_context(&mut line, text, start, start + needle.len(), false);
        line.split_off(kept)
    }

    #[test]
    fn a_match_is_shown_between_its_neighbours_with_whitespace_collapsed() {
        assert_eq!(
            context("Talks in\n\n  Minsk   ended.", "Minsk"),
            "…Talks in »Minsk« ended.…"
        );
        assert_eq!(
            context("Minsk\tended", "Minsk"),
            "…»Minsk« ended…",
            "nothing before the match"
        );
        assert_eq!(
            context("  \n Minsk", "Minsk"),
            "… »Minsk«…",
            "only whitespace before"
        );
        assert_eq!(
            context("a visit to\nMinsk,\nin May", "visit to\nMinsk"),
            "…a »visit to Minsk«, in May…",
            "the match's own whitespace is collapsed too"
        );
    }

    #[test]
    fn the_context_is_sixty_characters_on_each_side_not_bytes() {
        let text = format!("{}Минск{}", "ж".repeat(100), "щ".repeat(100));
        let line = context(&text, "Минск");
        let expected = format!("…{}»Минск«{}…", "ж".repeat(60), "щ".repeat(60));
        assert_eq!(line, expected);
    }

    #[test]
    fn the_report_shows_matches_in_the_article_text_and_title_matches_apart() {
        // As from an HTML file: the offsets refer to the extracted text,
        // which is not the file's bytes.
        let text = "Haftar flew to Minsk on Monday.";
        let start = text.find("Minsk").expect("present");
        let end = start + "Minsk".len();
        let mut alert = build_alert(
            &FiredRule {
                id: &"minsk-visit".into(),
                description: &"A visit to Minsk".into(),
                severity: Severity::Critical,
            },
            &AlertIds::new(&"ab".repeat(32)),
            ArticleRef {
                id: "ab".repeat(32),
                path: "seeds/visit.html".to_string(),
                title: Some("Haftar in Minsk".to_string()),
                published: Some("2025-02-18".to_string()),
            }
            .into(),
            text,
            std::slice::from_ref(&(start..end)),
            vec!["minsk".into()],
            &"2025-02-18T10:00:00Z".into(),
        );
        alert.matches.push(MatchSpan {
            text: "Minsk".to_string(),
            start: 10,
            end: 15,
            field: Some("title".to_string()),
            ..MatchSpan::default()
        });
        alert.matches.push(MatchSpan {
            text: "Tobruk".to_string(),
            start: 0,
            end: 6,
            ..MatchSpan::default()
        });
        let mut out = Vec::new();
        report(
            &mut out,
            Path::new("seeds/visit.html"),
            &[alert],
            text,
            false,
        )
        .expect("report");
        let expected = "\
seeds/visit.html: Haftar in Minsk | 2025-02-18 | id abababababab
  [critical] minsk-visit: A visit to Minsk
    entities: minsk
    15: …Haftar flew to »Minsk« on Monday.…
    title: »Minsk«
    0: »Tobruk«
";
        assert_eq!(String::from_utf8(out).expect("utf-8"), expected);
    }
}
