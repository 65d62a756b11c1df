//! Live progress on stderr: an indicatif bar when stderr is a terminal,
//! plain periodic lines otherwise (logs, CI, pipes).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::err_line;

/// How often plain mode prints a line.
const PLAIN_EVERY: Duration = Duration::from_secs(1);

/// A progress display.
pub struct Progress {
    bar: Option<ProgressBar>,
    label: String,
    last_plain: Option<Instant>,
}

impl Progress {
    /// A display for `total` units (events), labelled `label`.
    pub fn new(label: &str, total: u64) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template(
                "{prefix:>8} [{bar:30.cyan/blue}] {pos:>7}/{len:7} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar.set_prefix(label.to_string());
            bar.enable_steady_tick(Duration::from_millis(100));
            bar
        });
        Progress {
            bar,
            label: label.to_string(),
            last_plain: None,
        }
    }

    /// Sets the total (when it becomes known).
    pub fn set_total(&mut self, total: u64) {
        if let Some(bar) = &self.bar {
            bar.set_length(total);
        }
    }

    /// Updates the position and the message; plain mode prints at most one
    /// line a second.
    pub fn update(&mut self, position: u64, message: String) {
        match &self.bar {
            Some(bar) => {
                bar.set_position(position);
                bar.set_message(crate::printable::strip_userinfo(&message).into_owned());
            }
            None => {
                if self.last_plain.is_none_or(|t| t.elapsed() >= PLAIN_EVERY) {
                    err_line(&format!("{}: {message}", self.label));
                    self.last_plain = Some(Instant::now());
                }
            }
        }
    }

    /// Prints a line above the bar (or as a plain line).
    pub fn println(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(crate::printable::strip_userinfo(line)),
            None => err_line(line),
        }
    }

    /// Removes the bar and prints the final state as a plain line.
    pub fn finish(&mut self, position: u64, message: String) {
        match self.bar.take() {
            Some(bar) => {
                let total = bar.length().unwrap_or(position);
                bar.finish_and_clear();
                err_line(&format!("{}: {position}/{total} {message}", self.label));
            }
            None => err_line(&format!("{}: {message}", self.label)),
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.abandon();
        }
    }
}
