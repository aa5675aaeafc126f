//! The `silence` stage: split, trim or detect on silence, with a pydub-exact mode and an
//! improved short-frame mode, streaming in memory bounded by the parameters.
//!
//! Why it exists: the reference service used `pydub.silence.split_on_silence`, which loads the
//! whole file and is O(N·window). `mode: "pydub"` reproduces its decisions exactly (reference §1)
//! in O(N); `mode: "accurate"` (default) fixes its long-window defect (§1.3). Pure DSP: no I/O.
//!
//! Streaming: audio waits in a ring buffer (sized in `prepare` from the params) until its fate
//! is decided, so split/trim output is not a pure delay of the input and `latency_frames()` is 0;
//! instead `tail_frames()` is the ring size, and the chain's flush calls drain it (the silent
//! flush input is ignored: it is not part of the signal). Consequence: put this stage before
//! stages with latency or tails; frames that an *earlier* stage emits during the flush are
//! ignored.

mod accurate;
mod auto;
mod pydub;
mod splitter;
mod time;

use crate::audio::{Block, StreamSpec};
use crate::dsp::{ParamError, Stage, StageContext, StageError};
use accurate::AccurateDetector;
use auto::{AutoDecision, LevelHistogram};
use pydub::{IntFormat, PydubDetector};
use serde::{Deserialize, Serialize};
use splitter::{Emitter, Fanout, Planner, RangeLog, RangeSink, Scale};

/// Which detector decides what silence is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SilenceMode {
    /// pydub 0.25.1 `detect_silence`/`split_on_silence`, decision for decision.
    Pydub,
    /// 10 ms RMS frames + run length (keeps quiet speech edges pydub swallows).
    Accurate,
}

/// What the stage does with the detected silence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SilenceAction {
    /// Output the pieces concatenated, with `PieceStart`/`PieceEnd` events.
    Split,
    /// Output from the first piece's start to the last piece's end; no events.
    Trim,
    /// Output the input unchanged; ranges only in the report.
    Detect,
}

/// `threshold_db`: dBFS or `"auto"`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Threshold {
    /// A fixed threshold in dBFS (−90 ..= −10).
    Db(f64),
    /// Chosen from a level histogram in an analysis pass.
    Auto(AutoKeyword),
}

/// The literal `"auto"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AutoKeyword {
    /// `"auto"`.
    Auto,
}

/// `keep_silence_ms`: milliseconds, or pydub's booleans.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(untagged)]
pub enum KeepSilence {
    /// `true` keeps all silence (pieces tile the input, split at silence midpoints); `false` = 0.
    All(bool),
    /// Milliseconds kept on each side of a piece (0 ..= 10000).
    Ms(f64),
}

/// What `threshold_db` and `keep_silence_ms` may hold in JSON, read before the checks below
/// (serde's own message for an untagged enum, "data did not match any variant", names neither
/// the field nor what it accepts).
#[derive(Deserialize)]
#[serde(untagged)]
enum RawValue {
    Number(f64),
    Bool(bool),
    Text(String),
}

impl<'de> Deserialize<'de> for Threshold {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        const EXPECTED: &str = "threshold_db must be a number of dBFS (-90 ..= -10) or \"auto\"";
        match RawValue::deserialize(deserializer).map_err(|_| serde::de::Error::custom(EXPECTED))? {
            RawValue::Number(db) => Ok(Threshold::Db(db)),
            RawValue::Text(word) if word == "auto" => Ok(Threshold::Auto(AutoKeyword::Auto)),
            RawValue::Text(word) => Err(serde::de::Error::custom(format!(
                "{EXPECTED}, not {word:?}"
            ))),
            RawValue::Bool(b) => Err(serde::de::Error::custom(format!("{EXPECTED}, not {b}"))),
        }
    }
}

impl<'de> Deserialize<'de> for KeepSilence {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        const EXPECTED: &str =
            "keep_silence_ms must be a number of ms (0 ..= 10000), true (keep all) or false";
        match RawValue::deserialize(deserializer).map_err(|_| serde::de::Error::custom(EXPECTED))? {
            RawValue::Number(ms) => Ok(KeepSilence::Ms(ms)),
            RawValue::Bool(all) => Ok(KeepSilence::All(all)),
            RawValue::Text(word) => Err(serde::de::Error::custom(format!(
                "{EXPECTED}, not {word:?}"
            ))),
        }
    }
}

/// Parameters of the `silence` stage (job-spec vocabulary).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SilenceParams {
    /// `"pydub"` or `"accurate"` (default).
    pub mode: SilenceMode,
    /// dBFS (−90 ..= −10) or `"auto"`; default −30.
    pub threshold_db: Threshold,
    /// Minimum silence length (and pydub's window), ms; 50 ..= 10000, default 750.
    pub min_silence_ms: f64,
    /// Silence kept around pieces: ms (0 ..= 10000) or `true`/`false`; default 50.
    pub keep_silence_ms: KeepSilence,
    /// pydub's `seek_step`, ms; 1 ..= 1000, default 1 (pydub mode only).
    pub seek_step_ms: f64,
    /// `"split"` (default), `"trim"` or `"detect"`.
    pub action: SilenceAction,
    /// Split only: pieces shorter than this (pydub `len()` in ms) are **dropped** (not merged);
    /// 0 ..= 600000, default 0. Costs up to this much audio in the hold buffer.
    pub min_piece_ms: f64,
}

impl Default for SilenceParams {
    fn default() -> Self {
        Self {
            mode: SilenceMode::Accurate,
            threshold_db: Threshold::Db(-30.0),
            min_silence_ms: 750.0,
            keep_silence_ms: KeepSilence::Ms(50.0),
            seek_step_ms: 1.0,
            action: SilenceAction::Split,
            min_piece_ms: 0.0,
        }
    }
}

impl SilenceParams {
    /// Checks every numeric parameter's range.
    ///
    /// # Errors
    /// A [`ParamError`] naming the first parameter out of range.
    pub fn validate(&self) -> Result<(), ParamError> {
        if let Threshold::Db(db) = self.threshold_db {
            ParamError::check("threshold_db", db, -90.0, -10.0)?;
        }
        ParamError::check("min_silence_ms", self.min_silence_ms, 50.0, 10_000.0)?;
        if let KeepSilence::Ms(ms) = self.keep_silence_ms {
            ParamError::check("keep_silence_ms", ms, 0.0, 10_000.0)?;
        }
        ParamError::check("seek_step_ms", self.seek_step_ms, 1.0, 1000.0)?;
        ParamError::check("min_piece_ms", self.min_piece_ms, 0.0, 600_000.0)?;
        Ok(())
    }

    fn keep_ms(&self) -> Option<i64> {
        match self.keep_silence_ms {
            KeepSilence::All(true) => None,
            KeepSilence::All(false) => Some(0),
            KeepSilence::Ms(ms) => Some(ms as i64),
        }
    }
}

/// Extra hold for keep-all midpoints and trim gaps, seconds (beyond it decisions are forced and
/// reported as `forced_frames`).
const HOLD_SECONDS: u64 = 30;
/// Cap of that extra hold in bytes.
const HOLD_MAX_BYTES: u64 = 64 << 20;
/// The whole ring may not exceed this (a huge `min_piece_ms` at a high rate is refused).
const RING_MAX_BYTES: u64 = 1 << 30;

#[derive(Debug, Clone)]
enum Detector {
    Pydub(PydubDetector),
    Accurate(AccurateDetector),
}

impl Detector {
    fn push(&mut self, channels: &[&[f32]], frames: usize, sink: &mut dyn RangeSink) {
        match self {
            Self::Pydub(d) => d.push(channels, 0, frames, sink),
            Self::Accurate(d) => d.push(channels, 0, frames, sink),
        }
    }
    fn finish(&mut self, sink: &mut dyn RangeSink) -> i64 {
        match self {
            Self::Pydub(d) => d.finish(sink),
            Self::Accurate(d) => d.finish(sink),
        }
    }
    fn open(&self) -> Option<(i64, i64)> {
        match self {
            Self::Pydub(d) => d.open(),
            Self::Accurate(d) => d.open(),
        }
    }
    fn frontier(&self) -> i64 {
        match self {
            Self::Pydub(d) => d.frontier(),
            Self::Accurate(d) => d.frontier(),
        }
    }
    fn set_threshold_db(&mut self, db: f64) {
        match self {
            Self::Pydub(d) => d.set_threshold_db(db),
            Self::Accurate(d) => d.set_threshold_db(db),
        }
    }
    fn reset(&mut self) {
        match self {
            Self::Pydub(d) => d.reset(),
            Self::Accurate(d) => d.reset(),
        }
    }
}

/// Detector plus range log: cloned by `report()` to finalize a view of an unfinished stream.
#[derive(Debug, Clone)]
struct Core {
    detector: Detector,
    log: RangeLog,
    /// Total length in units once finished.
    total: Option<i64>,
}

/// The `silence` stage. See the module docs and [`SilenceParams`].
#[derive(Debug, Clone)]
pub struct Silence {
    params: SilenceParams,
    source_bits: u32,
    spec: Option<StreamSpec>,
    core: Option<Core>,
    planner: Option<Planner>,
    emitter: Option<Emitter>,
    histogram: Option<LevelHistogram>,
    auto: Option<AutoDecision>,
    /// The threshold in force (dBFS; `+inf` when auto found the input all silent).
    threshold_db: f64,
    ring_frames: usize,
    /// Bytes of the detector's per-ms totals, fixed in `prepare` from the clamped parameters.
    detector_bytes: usize,
    finished: bool,
}

impl Silence {
    /// A silence stage; call [`SilenceParams::validate`] first (out-of-range values are clamped
    /// here rather than rejected).
    pub fn new(params: SilenceParams) -> Self {
        let threshold_db = match params.threshold_db {
            Threshold::Db(db) => db.clamp(-90.0, -10.0),
            // Until the analysis pass decides (also the fallback if it never runs).
            Threshold::Auto(_) => -30.0,
        };
        Self {
            params,
            source_bits: 16,
            spec: None,
            core: None,
            planner: None,
            emitter: None,
            histogram: None,
            auto: None,
            threshold_db,
            ring_frames: 0,
            detector_bytes: 0,
            finished: false,
        }
    }

    /// Bits per sample of the decoded source (the decoder's `bits_per_sample`), used by pydub
    /// mode to recover pydub's integer samples: `round(x·2^(bits−1))`, 24-bit widened to 32 as
    /// pydub does. Default 16 (also what pydub uses for MP3/AAC/OGG). Call before `prepare`.
    pub fn set_source_bits(&mut self, bits: u32) {
        self.source_bits = bits;
    }

    /// The parameters.
    pub fn params(&self) -> &SilenceParams {
        &self.params
    }

    fn is_auto(&self) -> bool {
        matches!(self.params.threshold_db, Threshold::Auto(_))
    }

    fn units_to_ms(&self, u: i64) -> i64 {
        match (self.params.mode, self.spec) {
            (SilenceMode::Accurate, Some(spec)) => {
                ((u as f64) * 1000.0 / f64::from(spec.sample_rate)).round() as i64
            }
            _ => u,
        }
    }

    fn finish_stream(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        let Some(core) = self.core.as_mut() else {
            return;
        };
        let mut sink = Fanout {
            log: &mut core.log,
            planner: self.planner.as_mut(),
        };
        core.total = Some(core.detector.finish(&mut sink));
        if let Some(p) = self.planner.as_mut() {
            p.finish();
        }
        if let Some(e) = self.emitter.as_mut() {
            e.set_end();
        }
    }
}

impl Stage for Silence {
    fn name(&self) -> &'static str {
        "silence"
    }

    fn prepare(
        &mut self,
        input: StreamSpec,
        max_block_frames: usize,
    ) -> Result<StreamSpec, StageError> {
        let p = &self.params;
        let fs = input.sample_rate;
        let min_silence = (p.min_silence_ms.round() as i64).clamp(50, 10_000);
        let seek = (p.seek_step_ms.round() as i64).clamp(1, 1000);
        let keep = self.params.keep_ms().map(|k| k.clamp(0, 10_000));
        let detector = match p.mode {
            SilenceMode::Pydub => Detector::Pydub(PydubDetector::new(
                fs,
                input.channels,
                IntFormat::from_bits(self.source_bits),
                min_silence,
                seek,
                self.threshold_db,
            )),
            SilenceMode::Accurate => Detector::Accurate(AccurateDetector::new(
                fs,
                input.channels,
                min_silence,
                self.threshold_db,
            )),
        };
        let (scale, keep_units) = match p.mode {
            SilenceMode::Pydub => (
                Scale::Ms {
                    rate_per_ms: f64::from(fs) / 1000.0,
                },
                keep,
            ),
            SilenceMode::Accurate => (
                Scale::Frames,
                keep.map(|k| accurate::ms_to_frames(k, fs) as i64),
            ),
        };
        let ms = |ms: i64| accurate::ms_to_frames(ms, fs);
        // Undecided lag (reference §1.8): the window and seek step (three windows in pydub mode:
        // the appended last start can still merge), both paddings, the min-piece hold, plus one
        // block in flight, 10 ms frames and rounding margin.
        let bytes_per_frame = 4 * input.channels as u64;
        let hold = if keep.is_none() || p.action == SilenceAction::Trim {
            (HOLD_SECONDS * u64::from(fs)).min(HOLD_MAX_BYTES / bytes_per_frame)
        } else {
            0
        };
        let min_piece = if p.action == SilenceAction::Split {
            ms(p.min_piece_ms.round() as i64)
        } else {
            0
        };
        let ring = 3 * ms(min_silence)
            + 2 * ms(seek)
            + 2 * ms(keep.unwrap_or(0))
            + min_piece
            + hold
            + 2 * max_block_frames as u64
            + ms(40)
            + 64;
        if ring * bytes_per_frame > RING_MAX_BYTES {
            return Err(StageError {
                stage: "silence",
                reason: format!(
                    "hold buffer of {} MiB exceeds {} MiB (lower min_piece_ms)",
                    (ring * bytes_per_frame) >> 20,
                    RING_MAX_BYTES >> 20
                ),
            });
        }
        self.ring_frames = if p.action == SilenceAction::Detect {
            0
        } else {
            ring as usize
        };
        // pydub's detector keeps one running total per ms of its window (see pydub.rs).
        self.detector_bytes = (min_silence + seek + 4) as usize * std::mem::size_of::<i128>();
        let split = p.action == SilenceAction::Split;
        if p.action != SilenceAction::Detect {
            // Boundaries queued per call: two per silence a block can finalize.
            let queue = 2 * (max_block_frames / ms(min_silence).max(1) as usize + 2) + 16;
            self.planner = Some(Planner::new(keep_units, scale, queue));
            self.emitter = Some(Emitter::new(
                input.channels,
                self.ring_frames,
                split,
                fs,
                if split {
                    p.min_piece_ms.round() as i64
                } else {
                    0
                },
            ));
        }
        self.core = Some(Core {
            detector,
            log: RangeLog::with_capacity(),
            total: None,
        });
        if self.is_auto() {
            self.histogram = Some(LevelHistogram::new(fs, input.channels));
        }
        self.spec = Some(input);
        self.finished = false;
        // A decided auto threshold survives re-preparation for the same stream.
        if let (Some(core), Some(decision)) = (self.core.as_mut(), self.auto) {
            let _ = decision;
            core.detector.set_threshold_db(self.threshold_db);
        }
        Ok(input)
    }

    fn process(&mut self, input: &Block, output: &mut Block, cx: &mut StageContext) {
        output.set_frames(0);
        let detect = self.params.action == SilenceAction::Detect;
        if detect && !cx.flushing {
            output.copy_from(input);
        }
        let mut channels: [&[f32]; crate::audio::MAX_CHANNELS] = [&[]; crate::audio::MAX_CHANNELS];
        let count = input.channel_count().min(crate::audio::MAX_CHANNELS);
        for (ch, slot) in channels.iter_mut().enumerate().take(count) {
            *slot = input.channel(ch);
        }
        let channels = &channels[..count];
        let mut budget = input.frames();
        if !cx.flushing && !self.finished {
            if let (Some(emitter), Some(planner)) = (self.emitter.as_mut(), self.planner.as_mut()) {
                emitter.run(planner, output, &mut budget, cx);
                emitter.make_room(input.frames() as u64, planner, output, &mut budget, cx);
                emitter.push(input);
            }
            if let Some(core) = self.core.as_mut() {
                let mut sink = Fanout {
                    log: &mut core.log,
                    planner: self.planner.as_mut(),
                };
                core.detector.push(channels, input.frames(), &mut sink);
                if let Some(planner) = self.planner.as_mut() {
                    planner.update(core.detector.open(), core.detector.frontier());
                }
            }
        }
        if cx.flushing || cx.end_of_stream {
            self.finish_stream();
        }
        if let (Some(emitter), Some(planner)) = (self.emitter.as_mut(), self.planner.as_mut()) {
            emitter.run(planner, output, &mut budget, cx);
        }
    }

    fn tail_frames(&self) -> usize {
        self.ring_frames
    }

    fn state_bytes(&self) -> usize {
        let channels = self.spec.map_or(0, |spec| spec.channels);
        // The hold ring dominates; then the range log (fixed capacity), pydub's per-ms totals
        // and the planner's queue of boundaries (bounded by the ranges).
        self.ring_frames * channels * std::mem::size_of::<f32>()
            + splitter::RANGE_LIST_CAP * 2 * std::mem::size_of::<(i64, i64)>()
            + self.detector_bytes
            + std::mem::size_of::<auto::LevelHistogram>()
    }

    fn reset(&mut self) {
        if let Some(core) = self.core.as_mut() {
            core.detector.reset();
            core.log.clear();
            core.total = None;
        }
        if let Some(p) = self.planner.as_mut() {
            p.reset();
        }
        if let Some(e) = self.emitter.as_mut() {
            e.reset();
        }
        self.finished = false;
    }

    fn wants_analysis(&self) -> bool {
        self.is_auto()
    }

    fn observe(&mut self, input: &Block) {
        if let Some(h) = self.histogram.as_mut() {
            let mut channels: [&[f32]; crate::audio::MAX_CHANNELS] =
                [&[]; crate::audio::MAX_CHANNELS];
            let count = input.channel_count().min(crate::audio::MAX_CHANNELS);
            for (ch, slot) in channels.iter_mut().enumerate().take(count) {
                *slot = input.channel(ch);
            }
            h.observe(&channels[..count], input.frames());
        }
    }

    fn end_observation(&mut self) {
        if let Some(h) = self.histogram.as_mut() {
            let decision = h.decide();
            self.threshold_db = if decision.all_silent {
                f64::INFINITY
            } else {
                decision.threshold_db
            };
            self.auto = Some(decision);
            if let Some(core) = self.core.as_mut() {
                core.detector.set_threshold_db(self.threshold_db);
            }
        }
    }

    fn report(&self) -> Option<serde_json::Value> {
        let core = self.core.as_ref()?;
        let mut core = core.clone();
        if core.total.is_none() {
            let mut sink = Fanout {
                log: &mut core.log,
                planner: None,
            };
            core.total = Some(core.detector.finish(&mut sink));
        }
        Some(build_report(self, &core))
    }
}

fn build_report(stage: &Silence, core: &Core) -> serde_json::Value {
    use serde_json::json;
    let log = &core.log;
    let total = core.total.unwrap_or(0);
    let to_ms = |u: i64| stage.units_to_ms(u);
    let truncated = log.count > log.list.len() as u64;
    let silent: Vec<[i64; 2]> = log
        .list
        .iter()
        .map(|&(s, e)| [to_ms(s), to_ms(e)])
        .collect();
    // detect_nonsilent's complement rules (only meaningful when the list is complete).
    let mut nonsilent: Vec<[i64; 2]> = Vec::new();
    if log.list.is_empty() {
        nonsilent.push([0, to_ms(total)]);
    } else if !(log.list[0].0 == 0 && log.list[0].1 == total) {
        let mut prev = 0;
        for &(s, e) in &log.list {
            nonsilent.push([to_ms(prev), to_ms(s)]);
            prev = e;
        }
        if !truncated && prev != total {
            nonsilent.push([to_ms(prev), to_ms(total)]);
        }
        if nonsilent.first() == Some(&[0, 0]) {
            nonsilent.remove(0);
        }
    }
    let spec = stage.spec;
    let seconds = |u: i64| match (stage.params.mode, spec) {
        (SilenceMode::Accurate, Some(s)) => u as f64 / f64::from(s.sample_rate),
        _ => u as f64 / 1000.0,
    };
    let threshold = if stage.threshold_db.is_finite() {
        json!(stage.threshold_db)
    } else {
        serde_json::Value::Null
    };
    let mut report = json!({
        "mode": stage.params.mode,
        "action": stage.params.action,
        "threshold_db": threshold,
        "threshold_auto": stage.is_auto(),
        "length_ms": to_ms(total),
        "silent_ranges_count": log.count,
        "silence_seconds": seconds(log.total_units),
        "silent_ranges_ms": silent,
        "nonsilent_ranges_ms": nonsilent,
        "ranges_truncated": truncated,
        "ranges_cap": splitter::RANGE_LIST_CAP,
    });
    if let Some(d) = stage.auto {
        report["auto"] = json!({
            "threshold_db": d.threshold_db,
            "all_silent": d.all_silent,
            "no_contrast": d.no_contrast,
            "p10_db": d.p10, "p15_db": d.p15, "p50_db": d.p50, "p90_db": d.p90, "p92_db": d.p92,
            "frames_30ms": d.frames,
        });
        report["all_silent"] = json!(d.all_silent);
    } else if stage.is_auto() {
        report["auto"] = json!({ "analysis_pass": false, "fallback_threshold_db": -30.0 });
    }
    if let Some(e) = stage.emitter.as_ref() {
        report["pieces"] = json!(e.pieces);
        report["pieces_dropped_short"] = json!(e.pieces_dropped);
        report["output_frames"] = json!(e.output_frames);
        report["forced_frames"] = json!(e.forced_frames);
        report["overflow_frames"] = json!(e.overflow_frames);
    }
    report
}
