//! The terminal progress bar (indicatif), silent when stderr is not a terminal.

use indicatif::{ProgressBar, ProgressStyle};
use longwave::job::Progress;

/// A progress bar over input frames, labelled with the input's name; hidden when disabled.
pub struct Bar {
    bar: Option<ProgressBar>,
}

impl Bar {
    /// A bar labelled `label`, or a silent one when `enabled` is false.
    pub fn new(enabled: bool, label: &str) -> Self {
        let bar = enabled.then(|| {
            let bar = ProgressBar::hidden();
            bar.set_message(label.to_string());
            bar
        });
        Self { bar }
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
}
