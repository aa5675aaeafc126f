//! Where processed audio goes: one output (file or S3 object), or one per piece of a split,
//! routed by the chain's [`StageEvent`]s.
//!
//! Nothing partial is ever visible: a file is renamed into place when its encoder finishes, an
//! S3 object appears when its multipart upload completes. Local pieces wait under pending names
//! until the whole job succeeded; S3 pieces are deleted again if the job fails after some of
//! them completed.

use super::manifest::{OutputEntry, WaveformEntry};
use super::JobError;
use crate::audio::{Block, StreamSpec};
use crate::dsp::StageEvent;
use crate::encode::{
    create_encoder, create_encoder_threaded, EncodedOutput, Encoder, OutputFormat,
    WaveformSettings, WaveformWriter,
};
use crate::io::{self, move_into_place, FileSink, ObjectRef, S3Context};
use std::collections::VecDeque;
use std::path::PathBuf;

/// The destination of a job's processed stream.
pub enum Outputs<'a> {
    /// Everything goes to one output (committed when the encoder finishes).
    Single {
        /// The output's final location.
        path: ObjectRef,
        /// A local output is written under this name and moved into place only when the
        /// whole job succeeded (with its manifest ready).
        pending: Option<PathBuf>,
        /// Its encoder (owns the sink).
        encoder: Box<dyn Encoder>,
        /// Format written.
        format: OutputFormat,
        /// Whether an existing local file may be replaced.
        overwrite: bool,
        /// For deleting a committed S3 output again if the job fails after all.
        s3: Option<&'a S3Context>,
    },
    /// Each piece goes to `piece_NNNN.<ext>` in a folder or under an S3 prefix.
    /// (Boxed: the writer's state is much larger than a single output's.)
    Pieces(Box<PieceWriter<'a>>),
}

impl<'a> Outputs<'a> {
    /// One output at `path` (a file, or an S3 object through `s3`, recorded as written by
    /// `job_id` so a later attempt of the same job may replace it), encoded as `format` on
    /// `encode_threads` threads (see [`create_encoder_threaded`]).
    ///
    /// # Errors
    /// The output cannot be created, or the format cannot carry `spec`.
    pub fn single(
        path: ObjectRef,
        s3: Option<&'a S3Context>,
        (format, encode_threads): (OutputFormat, usize),
        spec: StreamSpec,
        overwrite: bool,
        job_id: &str,
    ) -> Result<Self, JobError> {
        let (sink, pending) = output_sink(&path, s3, job_id)?;
        let encoder = create_encoder_threaded(format, spec, sink, encode_threads)?;
        Ok(Outputs::Single {
            path,
            pending,
            encoder,
            format,
            overwrite,
            s3,
        })
    }

    /// Pieces in `dir` (a local folder, created if missing, or an S3 prefix), encoded as
    /// `format`; S3 pieces are recorded as written by `job_id`.
    ///
    /// # Errors
    /// The folder cannot be created.
    pub fn pieces(
        dir: ObjectRef,
        s3: Option<&'a S3Context>,
        format: OutputFormat,
        spec: StreamSpec,
        source_rate: u32,
        overwrite: bool,
        job_id: &str,
    ) -> Result<Self, JobError> {
        let mut created_dir = None;
        if let ObjectRef::File(path) = &dir {
            if !path.is_dir() {
                std::fs::create_dir_all(path).map_err(|e| JobError::Output {
                    path: path.display().to_string(),
                    reason: format!("cannot create the output folder: {e}"),
                })?;
                created_dir = Some(path.clone());
            }
        }
        Ok(Outputs::Pieces(Box::new(PieceWriter {
            dir,
            s3,
            format,
            spec,
            source_rate,
            overwrite,
            job_id: job_id.to_owned(),
            created_dir,
            position: 0,
            boundaries: VecDeque::new(),
            current: None,
            finished: Vec::new(),
        })))
    }

    /// A boundary event from the chain; takes effect when the audio reaches its frame.
    pub fn event(&mut self, event: StageEvent) {
        if let Outputs::Pieces(pieces) = self {
            pieces.boundaries.push_back(event);
        }
    }

    /// Writes one block of processed audio.
    ///
    /// # Errors
    /// Encoding or writing failed.
    pub fn write(&mut self, block: &Block) -> Result<(), JobError> {
        match self {
            Outputs::Single { encoder, .. } => Ok(encoder.write(block)?),
            Outputs::Pieces(pieces) => pieces.write(block),
        }
    }

    /// Finishes every output; returns the manifest entries and the files still to publish
    /// (pieces are published by [`Published::publish`] once the manifest is ready).
    ///
    /// # Errors
    /// Finishing an encoder failed.
    pub fn finish(self) -> Result<(Vec<OutputEntry>, Published<'a>), JobError> {
        match self {
            Outputs::Single {
                path,
                pending,
                encoder,
                format,
                overwrite,
                s3,
            } => {
                let encoded = encoder.finish()?;
                let entry = entry(&path, format, &encoded, None);
                let mut published = Published::new(s3, None, "", overwrite);
                match pending {
                    Some(pending) => published.moves.push((pending, path)),
                    None => published.uploaded.push(path),
                }
                Ok((vec![entry], published))
            }
            Outputs::Pieces(mut pieces) => {
                pieces.apply_boundaries(u64::MAX)?;
                if let Some(open) = pieces.current.take() {
                    // A splitter always closes its pieces; close a dangling one defensively.
                    let end = open.source_start + pieces.position.saturating_sub(open.start);
                    pieces.close(open, end)?;
                }
                let mut entries = Vec::with_capacity(pieces.finished.len());
                let mut published = Published::new(
                    pieces.s3,
                    Some(pieces.dir.clone()),
                    pieces.format.extension(),
                    pieces.overwrite,
                );
                published.created_dir = pieces.created_dir.take();
                published.pieces = pieces.finished.len();
                for piece in pieces.finished.drain(..) {
                    entries.push(piece.entry);
                    match piece.pending {
                        Some(pending) => published.moves.push((pending, piece.path)),
                        None => published.uploaded.push(piece.path),
                    }
                }
                Ok((entries, published))
            }
        }
    }
}

/// One piece being written.
struct OpenPiece {
    index: usize,
    path: ObjectRef,
    /// Local pieces are written under a pending name and renamed when the job succeeds.
    pending: Option<PathBuf>,
    encoder: Box<dyn Encoder>,
    /// Output frame where it started.
    start: u64,
    /// Source frame where it started.
    source_start: u64,
}

/// A piece written completely (under its pending name when local).
struct FinishedPiece {
    path: ObjectRef,
    pending: Option<PathBuf>,
    entry: OutputEntry,
}

/// Writes the pieces of a split, one encoder at a time.
pub struct PieceWriter<'a> {
    dir: ObjectRef,
    s3: Option<&'a S3Context>,
    format: OutputFormat,
    spec: StreamSpec,
    source_rate: u32,
    /// Whether existing local pieces may be replaced (and stale ones removed).
    overwrite: bool,
    /// Recorded on every S3 piece (see [`Outputs::single`]).
    job_id: String,
    /// The folder, when this job created it: removed again (if empty) when the job fails.
    created_dir: Option<PathBuf>,
    /// Output frames written so far (position of the next frame).
    position: u64,
    boundaries: VecDeque<StageEvent>,
    current: Option<OpenPiece>,
    finished: Vec<FinishedPiece>,
}

impl PieceWriter<'_> {
    fn write(&mut self, block: &Block) -> Result<(), JobError> {
        let end = self.position + block.frames() as u64;
        let mut offset = 0usize;
        while offset < block.frames() {
            self.apply_boundaries(self.position)?;
            // Next boundary inside this block, if any, bounds the run we write now.
            let limit = self
                .boundaries
                .front()
                .map(|e| event_frame(e).min(end))
                .unwrap_or(end);
            let run = (limit.max(self.position + 1) - self.position) as usize;
            let run = run.min(block.frames() - offset);
            if let Some(piece) = &mut self.current {
                write_range(piece.encoder.as_mut(), block, offset, run)?;
            }
            // Audio outside any piece is not part of the result (a splitter emits none).
            offset += run;
            self.position += run as u64;
        }
        Ok(())
    }

    /// Applies every pending boundary at or before output frame `upto`.
    fn apply_boundaries(&mut self, upto: u64) -> Result<(), JobError> {
        while let Some(&event) = self.boundaries.front() {
            if event_frame(&event) > upto {
                break;
            }
            self.boundaries.pop_front();
            match event {
                StageEvent::PieceStart { source_frame, .. } => {
                    if let Some(open) = self.current.take() {
                        let end = open.source_start + self.position.saturating_sub(open.start);
                        self.close(open, end)?;
                    }
                    self.open(source_frame)?;
                }
                StageEvent::PieceEnd { source_frame, .. } => {
                    if let Some(open) = self.current.take() {
                        self.close(open, source_frame)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn open(&mut self, source_start: u64) -> Result<(), JobError> {
        let index = self.finished.len() + 1;
        let name = format!("piece_{index:04}.{}", self.format.extension());
        let path = self.dir.join(&name);
        let (sink, pending) = output_sink(&path, self.s3, &self.job_id)?;
        let encoder = create_encoder(self.format, self.spec, sink)?;
        self.current = Some(OpenPiece {
            index,
            path,
            pending,
            encoder,
            start: self.position,
            source_start,
        });
        Ok(())
    }

    fn close(&mut self, piece: OpenPiece, source_end: u64) -> Result<(), JobError> {
        let encoded = piece.encoder.finish()?;
        let to_ms = |frame: u64| {
            (frame * 1000 + u64::from(self.source_rate) / 2) / u64::from(self.source_rate.max(1))
        };
        let entry = entry(
            &piece.path,
            self.format,
            &encoded,
            Some((to_ms(piece.source_start), to_ms(source_end))),
        );
        debug_assert_eq!(piece.index, self.finished.len() + 1);
        self.finished.push(FinishedPiece {
            path: piece.path,
            pending: piece.pending,
            entry,
        });
        Ok(())
    }
}

impl Drop for PieceWriter<'_> {
    /// A writer dropped before [`Outputs::finish`] handed its pieces on means the job failed:
    /// remove the pieces already written (pending files, or completed S3 objects).
    fn drop(&mut self) {
        let finished = std::mem::take(&mut self.finished);
        let mut published = Published::new(self.s3, None, "", false);
        published.created_dir = self.created_dir.take();
        for piece in finished {
            match piece.pending {
                Some(pending) => published.moves.push((pending, piece.path)),
                None => published.uploaded.push(piece.path),
            }
        }
        drop(published); // Published's Drop deletes everything it holds
    }
}

fn event_frame(event: &StageEvent) -> u64 {
    match event {
        StageEvent::PieceStart { frame, .. } | StageEvent::PieceEnd { frame, .. } => *frame,
    }
}

/// Writes frames `offset..offset + len` of `block` (a sub-range, for piece boundaries inside a
/// block). Copies into a small reused block only when the range is not the whole block.
fn write_range(
    encoder: &mut dyn Encoder,
    block: &Block,
    offset: usize,
    len: usize,
) -> Result<(), JobError> {
    if offset == 0 && len == block.frames() {
        return Ok(encoder.write(block)?);
    }
    thread_local! {
        static SCRATCH: std::cell::RefCell<Block> = std::cell::RefCell::new(Block::new(0, 0));
    }
    SCRATCH.with(|scratch| {
        let mut scratch = scratch.borrow_mut();
        if scratch.channel_count() != block.channel_count() || scratch.capacity() < block.capacity()
        {
            scratch.reconfigure(block.channel_count(), block.capacity());
        }
        scratch.set_frames(len);
        for ch in 0..block.channel_count() {
            scratch
                .channel_mut(ch)
                .copy_from_slice(&block.channel(ch)[offset..offset + len]);
        }
        Ok(encoder.write(&scratch)?)
    })
}

fn entry(
    path: &ObjectRef,
    format: OutputFormat,
    encoded: &EncodedOutput,
    source_ms: Option<(u64, u64)>,
) -> OutputEntry {
    OutputEntry {
        path: path.to_string(),
        format: format.name().to_string(),
        settings: format,
        duration_s: encoded.frames as f64 / f64::from(encoded.sample_rate.max(1)),
        frames: encoded.frames,
        sample_rate: encoded.sample_rate,
        channels: encoded.channels,
        bytes: encoded.bytes,
        clipped_samples: encoded.clipped_samples,
        non_finite_samples: encoded.non_finite_samples,
        start_ms: source_ms.map(|(s, _)| s),
        end_ms: source_ms.map(|(_, e)| e),
    }
}

/// The sink of one output at `path`: a local file under its pending name (returned, to be
/// moved into place when the job succeeds), or an S3 upload recorded as written by `job_id`.
fn output_sink(
    path: &ObjectRef,
    s3: Option<&S3Context>,
    job_id: &str,
) -> Result<(Box<dyn crate::audio::ByteSink>, Option<PathBuf>), JobError> {
    Ok(match path {
        ObjectRef::File(final_path) => {
            let pending = pending_path(final_path);
            let sink = FileSink::create(&pending)?.shown_as(final_path);
            (Box::new(sink), Some(pending))
        }
        ObjectRef::S3 { .. } => (io::create_sink(s3, path, Some(job_id))?, None),
    })
}

/// A unique hidden name next to `final_path` under which a local output (or manifest) is
/// written until the job has succeeded: `.<name>.longwave-pending-<pid>-<n>`.
pub(crate) fn pending_path(final_path: &std::path::Path) -> PathBuf {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = final_path
        .file_name()
        .map_or_else(|| "output".into(), |n| n.to_string_lossy().into_owned());
    final_path.with_file_name(format!(
        ".{name}.longwave-pending-{}-{n}",
        std::process::id()
    ))
}

/// Outputs written but not yet published: local ones under pending names, to be moved to their
/// final names once the job has succeeded; S3 ones already complete under their final keys.
/// Dropping it unpublished deletes them all, so a failed job leaves nothing behind.
pub struct Published<'a> {
    moves: Vec<(PathBuf, ObjectRef)>,
    uploaded: Vec<ObjectRef>,
    s3: Option<&'a S3Context>,
    dir: Option<ObjectRef>,
    extension: &'static str,
    /// Whether an existing local file may be replaced.
    overwrite: bool,
    /// A pieces folder this job created: removed again (if empty) when the job fails.
    created_dir: Option<PathBuf>,
    /// Pieces among the outputs (the stale-piece clean-up keeps `piece_0001` … up to it).
    pieces: usize,
}

impl<'a> Published<'a> {
    fn new(
        s3: Option<&'a S3Context>,
        dir: Option<ObjectRef>,
        extension: &'static str,
        overwrite: bool,
    ) -> Self {
        Self {
            moves: Vec::new(),
            uploaded: Vec::new(),
            s3,
            dir,
            extension,
            overwrite,
            created_dir: None,
            pieces: 0,
        }
    }

    /// Adds a finished waveform file: published, retracted or deleted with the outputs.
    pub fn add_waveform(&mut self, mut waveform: FinishedWaveform<'_>) {
        match waveform.pending.take() {
            Some(pending) => self.moves.push((pending, waveform.path.clone())),
            None => self.uploaded.push(waveform.path.clone()),
        }
        waveform.handed_on = true;
    }

    /// Moves every pending local output to its final name (never over an existing file unless
    /// `overwrite`) and, with `overwrite`, removes stale `piece_NNNN.<ext>` files a previous,
    /// longer run left in the folder. Returns what is now published, so it can be retracted if
    /// the manifest cannot be written.
    ///
    /// # Errors
    /// A move failed: what was already moved is removed again, with every pending file.
    pub fn publish(mut self) -> Result<Committed<'a>, JobError> {
        let moves = std::mem::take(&mut self.moves);
        let mut committed = Committed {
            files: Vec::with_capacity(moves.len()),
            objects: std::mem::take(&mut self.uploaded),
            s3: self.s3,
            created_dir: self.created_dir.take(),
        };
        for (i, (pending, target)) in moves.iter().enumerate() {
            let ObjectRef::File(path) = target else {
                continue;
            };
            if let Err(e) = move_into_place(pending, path, self.overwrite) {
                for (rest, _) in &moves[i..] {
                    let _ = std::fs::remove_file(rest);
                }
                committed.retract();
                let reason = if e.kind() == std::io::ErrorKind::AlreadyExists {
                    "it appeared while the job ran; pass --overwrite to replace it".to_owned()
                } else {
                    format!("cannot move the finished output into place: {e}")
                };
                return Err(JobError::Output {
                    path: path.display().to_string(),
                    reason,
                });
            }
            committed.files.push(path.clone());
        }
        if let (Some(ObjectRef::File(dir)), true) = (&self.dir, self.overwrite) {
            remove_stale_pieces(dir, self.extension, self.pieces);
        }
        Ok(committed)
    }
}

impl Drop for Published<'_> {
    fn drop(&mut self) {
        for (pending, _) in &self.moves {
            let _ = std::fs::remove_file(pending);
        }
        delete_objects(self.s3, &self.uploaded);
        if let Some(dir) = &self.created_dir {
            let _ = std::fs::remove_dir(dir); // only when empty
        }
    }
}

/// Outputs under their final names; [`Committed::retract`] takes them back when the job fails
/// after all (its manifest cannot be written). Dropping it keeps them.
pub struct Committed<'a> {
    files: Vec<PathBuf>,
    objects: Vec<ObjectRef>,
    s3: Option<&'a S3Context>,
    created_dir: Option<PathBuf>,
}

impl Committed<'_> {
    /// Removes every published output (best effort: the job has failed already).
    pub fn retract(self) {
        for file in &self.files {
            let _ = std::fs::remove_file(file);
        }
        delete_objects(self.s3, &self.objects);
        if let Some(dir) = &self.created_dir {
            let _ = std::fs::remove_dir(dir); // only when empty
        }
    }
}

/// Deletes S3 `objects`, best effort: the job has failed already; a piece we cannot delete is
/// reported by the caller's error, and no manifest lists it.
fn delete_objects(s3: Option<&S3Context>, objects: &[ObjectRef]) {
    let Some(s3) = s3 else { return };
    let mut by_bucket: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
    for object in objects {
        if let ObjectRef::S3 { bucket, key } = object {
            by_bucket.entry(bucket).or_default().push(key.clone());
        }
    }
    for (bucket, keys) in by_bucket {
        let _ = s3.delete_keys(bucket, &keys);
    }
}

/// Removes `piece_NNNN.<ext>` files numbered above `count` (left by an earlier run).
fn remove_stale_pieces(dir: &std::path::Path, extension: &str, count: usize) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(number) = name
            .strip_prefix("piece_")
            .and_then(|rest| rest.strip_suffix(extension))
            .and_then(|rest| rest.strip_suffix('.'))
        else {
            continue;
        };
        if number.len() == 4 && number.chars().all(|c| c.is_ascii_digit()) {
            if let Ok(n) = number.parse::<usize>() {
                if n > count {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
    }
}

/// The waveform data file a job writes beside its outputs ([`crate::encode::WaveformWriter`]
/// into a file under a pending name, or an S3 object), fed the decoded input.
pub struct WaveformOutput<'a> {
    path: ObjectRef,
    pending: Option<PathBuf>,
    writer: WaveformWriter,
    settings: WaveformSettings,
    s3: Option<&'a S3Context>,
}

impl<'a> WaveformOutput<'a> {
    /// A waveform of a stream of `spec` at `path`; an S3 object is recorded as written by
    /// `job_id`, like the outputs.
    ///
    /// # Errors
    /// The file or upload cannot be created, or the settings are out of range.
    pub fn create(
        path: ObjectRef,
        s3: Option<&'a S3Context>,
        settings: WaveformSettings,
        spec: StreamSpec,
        job_id: &str,
    ) -> Result<Self, JobError> {
        let (sink, pending) = output_sink(&path, s3, job_id)?;
        let writer =
            WaveformWriter::new(settings, spec, sink).map_err(|source| JobError::Format {
                path: path.to_string(),
                source,
            })?;
        Ok(Self {
            path,
            pending,
            writer,
            settings,
            s3,
        })
    }

    /// Adds one decoded block.
    ///
    /// # Errors
    /// Writing failed.
    pub fn write(&mut self, block: &Block) -> Result<(), JobError> {
        Ok(self.writer.write(block)?)
    }

    /// Finishes the file (committed under its pending name, or the S3 upload completed); it is
    /// published with the outputs, or deleted if the job fails first.
    ///
    /// # Errors
    /// Finishing the file failed.
    pub fn finish(self) -> Result<FinishedWaveform<'a>, JobError> {
        let summary = self.writer.finish()?;
        Ok(FinishedWaveform {
            entry: WaveformEntry {
                path: self.path.to_string(),
                settings: self.settings,
                channels: summary.channels,
                sample_rate: summary.sample_rate,
                length: summary.length,
                frames: summary.frames,
                bytes: summary.bytes,
            },
            path: self.path,
            pending: self.pending,
            s3: self.s3,
            handed_on: false,
        })
    }
}

/// A written waveform file waiting to be published with the job's outputs
/// ([`Published::add_waveform`]); dropped before that, it is deleted.
pub struct FinishedWaveform<'a> {
    /// What the manifest says of it.
    pub entry: WaveformEntry,
    path: ObjectRef,
    pending: Option<PathBuf>,
    s3: Option<&'a S3Context>,
    handed_on: bool,
}

impl Drop for FinishedWaveform<'_> {
    fn drop(&mut self) {
        if self.handed_on {
            return;
        }
        if let Some(pending) = &self.pending {
            let _ = std::fs::remove_file(pending);
        } else {
            delete_objects(self.s3, std::slice::from_ref(&self.path));
        }
    }
}
