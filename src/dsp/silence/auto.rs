//! Automatic threshold (`threshold_db: "auto"`): a fixed-size level histogram of 30 ms frames,
//! filled during the runner's analysis pass.
//!
//! Why percentiles: the folk rule `seg.dBFS − 16` is relative to the whole-file RMS, which long
//! pauses drag down. A noise-floor percentile (P15) and a speech-level percentile (P92) are robust
//! to how much of the file is pause (reference §1.9). The histogram is a fixed array (0.5 dB bins
//! from −120 to 0 dBFS), so memory does not depend on the file length.

/// Lowest level binned, dBFS (anything below, digital silence included, lands in bin 0).
const FLOOR_DB: f64 = -120.0;
/// Bin width in dB.
const BIN_DB: f64 = 0.5;
/// Number of bins: −120 ..= 0 dBFS.
const BINS: usize = 241;
/// The chosen threshold is clamped to this range (dBFS).
const CLAMP_DB: (f64, f64) = (-60.0, -20.0);

/// What [`LevelHistogram::decide`] concluded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct AutoDecision {
    pub threshold_db: f64,
    pub all_silent: bool,
    /// Loud throughout (little level contrast): nothing is silence.
    pub no_contrast: bool,
    pub p10: f64,
    pub p15: f64,
    pub p50: f64,
    pub p90: f64,
    pub p92: f64,
    pub frames: u64,
}

/// Streaming 30 ms RMS level histogram (pooled channels).
#[derive(Debug, Clone)]
pub(crate) struct LevelHistogram {
    bins: [u64; BINS],
    frame_len: u64,
    channels: usize,
    acc: f64,
    in_frame: u64,
}

impl LevelHistogram {
    pub(crate) fn new(sample_rate: u32, channels: usize) -> Self {
        Self {
            bins: [0; BINS],
            frame_len: (u64::from(sample_rate) * 3 / 100).max(1),
            channels,
            acc: 0.0,
            in_frame: 0,
        }
    }

    pub(crate) fn observe(&mut self, channels: &[&[f32]], frames: usize) {
        let mut f = 0;
        while f < frames {
            let take = ((self.frame_len - self.in_frame) as usize).min(frames - f);
            for ch in channels {
                for &x in &ch[f..f + take] {
                    self.acc += f64::from(x) * f64::from(x);
                }
            }
            self.in_frame += take as u64;
            f += take;
            if self.in_frame == self.frame_len {
                self.complete();
            }
        }
    }

    fn complete(&mut self) {
        let mean_square = self.acc / (self.in_frame * self.channels as u64) as f64;
        let db = 10.0 * mean_square.log10();
        let bin = if db.is_finite() {
            ((db - FLOOR_DB) / BIN_DB)
                .floor()
                .clamp(0.0, (BINS - 1) as f64) as usize
        } else {
            0
        };
        self.bins[bin] += 1;
        self.acc = 0.0;
        self.in_frame = 0;
    }

    /// Level (dBFS, lower bin edge) below which `p` percent of the frames lie.
    fn percentile(&self, total: u64, p: f64) -> f64 {
        let target = ((p / 100.0) * total as f64).ceil().max(1.0) as u64;
        let mut cumulative = 0;
        for (i, &count) in self.bins.iter().enumerate() {
            cumulative += count;
            if cumulative >= target {
                return FLOOR_DB + i as f64 * BIN_DB;
            }
        }
        FLOOR_DB
    }

    /// `thr = noise + max(6 dB, 0.3·(speech − noise))`, noise = P15, speech = P92, clamped to
    /// [−60, −20] dBFS. Speech below −60 dBFS (or no frames at all) means all silent. Less than
    /// 6 dB of contrast with speech above −60 dBFS means one uniform loud recording: no silence.
    pub(crate) fn decide(&mut self) -> AutoDecision {
        // A trailing partial frame of at least half the length still counts.
        if self.in_frame * 2 >= self.frame_len && self.in_frame > 0 {
            self.complete();
        }
        let total: u64 = self.bins.iter().sum();
        let p = |q| self.percentile(total, q);
        let (p10, p15, p50, p90, p92) = (p(10.0), p(15.0), p(50.0), p(90.0), p(92.0));
        let all_silent = total == 0 || p92 < CLAMP_DB.0;
        let no_contrast = !all_silent && p92 - p15 < 6.0;
        let threshold_db = if no_contrast {
            // Below the quietest frames: the whole input is one piece.
            (p15 - 6.0).clamp(CLAMP_DB.0, CLAMP_DB.1)
        } else {
            (p15 + (0.3 * (p92 - p15)).max(6.0)).clamp(CLAMP_DB.0, CLAMP_DB.1)
        };
        AutoDecision {
            threshold_db,
            all_silent,
            no_contrast,
            p10,
            p15,
            p50,
            p90,
            p92,
            frames: total,
        }
    }
}
