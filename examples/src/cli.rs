//! What every command of the operator's command line shares: the output
//! format, the exit codes, printing, and the progress display.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::ValueEnum;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;

use crate::setup::Fatal;

/// `--format`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Lines for people; per-user lines (or a progress bar on a terminal)
    /// on stderr, the summary on stdout.
    #[default]
    Text,
    /// JSON on stdout: one document, or JSON lines for commands that report
    /// per user (each `{"type": "user", ...}`, then one `{"type":
    /// "summary", ...}`). Nothing else is written to stdout.
    Json,
}

/// How a command ended, short of a fatal error.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ended {
    /// Users (or checks) that failed.
    pub failed: u64,
    /// Users left out because the Mattermost server is at its user limit.
    pub left_out: u64,
}

impl Ended {
    /// Nothing failed.
    pub const OK: Ended = Ended {
        failed: 0,
        left_out: 0,
    };

    /// Ended with `failed` failures.
    pub fn failed(failed: u64) -> Ended {
        Ended {
            failed,
            left_out: 0,
        }
    }

    /// The operator's exit code: 0 all good, 1 some users (or checks)
    /// failed or were left out.
    pub fn exit_code(self) -> ExitCode {
        if self.failed == 0 && self.left_out == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(EXIT_SOME_FAILED)
        }
    }
}

/// Exit code: some users (or checks) failed.
pub const EXIT_SOME_FAILED: u8 = 1;
/// Exit code: nothing could be done (configuration, database or server).
pub const EXIT_FATAL: u8 = 2;

/// The exit-code table, as `--help` and the README give it.
pub const EXIT_CODES: &str = "Exit codes: 0 all good; 1 some users (or doctor checks) failed; 2 nothing could be done (configuration, database or Mattermost unreachable).";

/// Ends the program: the exit code of `result`, after printing a fatal
/// error (as JSON on stdout too with `--format json`).
pub fn finish(format: Format, result: Result<Ended, Fatal>) -> ExitCode {
    match result {
        Ok(e) => e.exit_code(),
        Err(f) => {
            if format == Format::Json {
                emit(&serde_json::json!({
                    "type": "error",
                    "error": format!("{:#}", f.0),
                }));
            }
            f.report()
        }
    }
}

/// Writes one JSON document (one line) to stdout; a closed stdout
/// (`| head`) is not an error.
pub fn emit(value: &Value) {
    let mut line = value.to_string();
    line.push('\n');
    let _ = std::io::stdout().lock().write_all(line.as_bytes());
}

/// Writes text to stdout; a closed stdout is not an error.
pub fn print(text: &str) {
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

/// A label/value table, one row per line, as the summaries print; labels
/// are the JSON keys, with spaces for underscores.
pub fn table(title: &str, rows: &[(&str, String)]) -> String {
    let mut out = format!("{title}\n");
    for (label, value) in rows {
        let label = label.replace('_', " ");
        out.push_str(&format!("  {label:<18}{value:>10}\n"));
    }
    out
}

/// A summary's JSON line: `{"type": "summary"}`, the counts under their
/// keys, `elapsed_ms`, and the `extra` fields.
pub fn summary_json(counts: &[(&str, u64)], elapsed: std::time::Duration, extra: Value) -> Value {
    let mut doc = match extra {
        Value::Object(_) => extra,
        _ => serde_json::json!({}),
    };
    doc["type"] = "summary".into();
    for (k, v) in counts {
        doc[*k] = (*v).into();
    }
    doc["elapsed_ms"] = (elapsed.as_millis() as u64).into();
    doc
}

/// A summary's table: the counts, then the time.
pub fn summary_table(title: &str, counts: &[(&str, u64)], elapsed: std::time::Duration) -> String {
    let mut rows: Vec<(&str, String)> = counts.iter().map(|(k, v)| (*k, v.to_string())).collect();
    rows.push(("time", format!("{elapsed:.1?}")));
    table(title, &rows)
}

/// Per-user progress: a bar on a terminal (text format), a line per user on
/// stderr otherwise (text), a JSON line per user on stdout (json).
#[derive(Debug)]
pub struct Progress {
    format: Format,
    bar: Option<ProgressBar>,
}

impl Progress {
    /// A progress display; `what` names the unit ("users synced").
    pub fn new(format: Format, what: &str) -> Self {
        let bar = (format == Format::Text && std::io::stderr().is_terminal()).then(|| {
            let b = ProgressBar::new_spinner();
            b.set_style(
                ProgressStyle::with_template(&format!("{{spinner}} {{pos}} {what} {{wide_msg}}"))
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            b
        });
        Progress { format, bar }
    }

    /// Sets the total once known (the spinner becomes a bar).
    pub fn set_len(&self, n: u64) {
        if let Some(b) = &self.bar {
            b.set_length(n);
            b.set_style(
                ProgressStyle::with_template("{bar:40} {pos}/{len} {wide_msg} (eta {eta})")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
        }
    }

    /// Records one user: `line` for people (shown above a bar only when
    /// `notable`), `json` for machines.
    pub fn user(&self, line: &str, notable: bool, json: impl FnOnce() -> Value) {
        match (self.format, &self.bar) {
            (Format::Json, _) => emit(&json()),
            (Format::Text, Some(b)) => {
                b.inc(1);
                if notable {
                    b.println(line);
                }
            }
            (Format::Text, None) => eprintln!("{line}"),
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
