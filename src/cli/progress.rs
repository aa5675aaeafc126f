//! The terminal progress bar (indicatif), silent when stderr is not a terminal.

use indicatif::{ProgressBar, ProgressStyle};
use longwave::job::Progress;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A progress bar over input frames, labelled with the input's name; hidden when disabled.
/// It also carries the stop request: the number of a signal (SIGINT/SIGTERM) received, 0 for
/// none, which makes the job stop at the next block without committing anything.
pub struct Bar {
    bar: Option<ProgressBar>,
    label: String,
    signal: Arc<AtomicUsize>,
}

impl Bar {
    /// A bar labelled `label`, or a silent one when `enabled` is false; `signal` is set by the
    /// signal handlers.
    pub fn new(enabled: bool, label: &str, signal: Arc<AtomicUsize>) -> Self {
        let bar = enabled.then(|| {
            let bar = ProgressBar::hidden();
            bar.set_message(label.to_string());
            bar
        });
        Self {
            bar,
            label: label.to_string(),
            signal,
        }
    }
}

impl Progress for Bar {
    fn start(&self, total_frames: Option<u64>) {
        let Some(bar) = &self.bar else { return };
        bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        match total_frames {
            Some(total) => {
                bar.set_length(total);
                if let Ok(style) = ProgressStyle::with_template(
                    "{msg} [{bar:40}] {percent:>3}% {elapsed_precise} eta {eta}",
                ) {
                    bar.set_style(style.progress_chars("=> "));
                }
            }
            None => {
                if let Ok(style) =
                    ProgressStyle::with_template("{msg} {spinner} {pos} frames {elapsed_precise}")
                {
                    bar.set_style(style);
                }
            }
        }
    }

    fn phase(&self, name: &str, total_frames: Option<u64>) {
        if let Some(bar) = &self.bar {
            bar.set_message(format!("{} ({name})", self.label));
            bar.set_position(0);
            if let Some(total) = total_frames {
                bar.set_length(total);
            }
            bar.reset_eta();
        }
    }

    fn advance(&self, frames: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(frames);
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }

    fn should_stop(&self) -> bool {
        self.signal.load(Ordering::Relaxed) != 0
    }
}
