//! Where processed audio goes: one output (file or S3 object), or one per piece of a split,
//! routed by the chain's [`StageEvent`]s.
//!
//! Nothing partial is ever visible: a file is renamed into place when its encoder finishes, an
//! S3 object appears when its multipart upload completes. Local pieces wait under pending names
//! until the whole job succeeded; S3 pieces are deleted again if the job fails after some of
//! them completed.

use super::manifest::OutputEntry;
use super::JobError;
use crate::audio::{Block, StreamSpec};
use crate::dsp::StageEvent;
use crate::encode::{create_encoder, EncodedOutput, Encoder, FileSink, OutputFormat};
use crate::io::{self, ObjectRef, S3Context};
use std::collections::VecDeque;
use std::path::PathBuf;

/// The destination of a job's processed stream.
pub enum Outputs<'a> {
    /// Everything goes to one output (committed when the encoder finishes).
    Single {
        /// The output's final location.
        path: ObjectRef,
        /// Its encoder (owns the file sink).
        encoder: Box<dyn Encoder>,
        /// Format written.
        format: OutputFormat,
    },
    /// Each piece goes to `piece_NNNN.<ext>` in a folder or under an S3 prefix.
    Pieces(PieceWriter<'a>),
}

impl<'a> Outputs<'a> {
    /// One output at `path` (a file, or an S3 object through `s3`).
    ///
    /// # Errors
    /// The output cannot be created, or the format cannot carry `spec`.
    pub fn single(
        path: ObjectRef,
        s3: Option<&'a S3Context>,
        format: OutputFormat,
        spec: StreamSpec,
    ) -> Result<Self, JobError> {
        let sink = io::create_sink(s3, &path)?;
        let encoder = create_encoder(format, spec, sink)?;
        Ok(Outputs::Single {
            path,
            encoder,
            format,
        })
    }

    /// Pieces in `dir` (a local folder, created if missing, or an S3 prefix), encoded as
    /// `format`.
    ///
    /// # Errors
    /// The folder cannot be created.
    pub fn pieces(
        dir: ObjectRef,
        s3: Option<&'a S3Context>,
        format: OutputFormat,
        spec: StreamSpec,
        source_rate: u32,
    ) -> Result<Self, JobError> {
        if let ObjectRef::File(path) = &dir {
            std::fs::create_dir_all(path).map_err(|e| JobError::Output {
                path: path.display().to_string(),
                reason: format!("cannot create the output folder: {e}"),
            })?;
        }
        Ok(Outputs::Pieces(PieceWriter {
            dir,
            s3,
            format,
            spec,
            source_rate,
            position: 0,
            boundaries: VecDeque::new(),
            current: None,
            finished: Vec::new(),
        }))
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
                encoder,
                format,
            } => {
                let encoded = encoder.finish()?;
                Ok((
                    vec![entry(&path, format, &encoded, None)],
                    Published::empty(),
                ))
            }
            Outputs::Pieces(mut pieces) => {
                pieces.apply_boundaries(u64::MAX)?;
                if let Some(open) = pieces.current.take() {
                    // A splitter always closes its pieces; close a dangling one defensively.
                    let end = open.source_start + pieces.position.saturating_sub(open.start);
                    pieces.close(open, end)?;
                }
                let mut entries = Vec::with_capacity(pieces.finished.len());
                let mut published = Published {
                    moves: Vec::new(),
                    uploaded: Vec::new(),
                    s3: pieces.s3,
                    dir: Some(pieces.dir.clone()),
                    extension: pieces.format.extension(),
                };
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
        let (sink, pending): (Box<dyn crate::encode::ByteSink>, _) = match &self.dir {
            ObjectRef::File(dir) => {
                let pending = dir.join(format!(".{name}.longwave-pending-{}", std::process::id()));
                (Box::new(FileSink::create(&pending)?), Some(pending))
            }
            ObjectRef::S3 { .. } => (io::create_sink(self.s3, &path)?, None),
        };
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
        let mut published = Published {
            moves: Vec::new(),
            uploaded: Vec::new(),
            s3: self.s3,
            dir: None,
            extension: "",
        };
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

/// Pieces written but not yet published: local ones under pending names, to be renamed to their
/// final names once the job has succeeded; S3 ones already complete under their final keys.
/// Dropping it unpublished deletes them all, so a failed job leaves no pieces behind.
pub struct Published<'a> {
    moves: Vec<(PathBuf, ObjectRef)>,
    uploaded: Vec<ObjectRef>,
    s3: Option<&'a S3Context>,
    dir: Option<ObjectRef>,
    extension: &'static str,
}

impl Published<'_> {
    /// Nothing to publish (a single output commits itself).
    fn empty() -> Self {
        Self {
            moves: Vec::new(),
            uploaded: Vec::new(),
            s3: None,
            dir: None,
            extension: "",
        }
    }

    /// Renames every pending piece to its final name and removes stale `piece_NNNN.<ext>` files
    /// a previous, longer run left in the folder.
    ///
    /// # Errors
    /// A rename failed (the remaining pending files are removed).
    pub fn publish(mut self) -> Result<(), JobError> {
        let moves = std::mem::take(&mut self.moves);
        self.uploaded.clear();
        for (i, (pending, target)) in moves.iter().enumerate() {
            let ObjectRef::File(path) = target else {
                continue;
            };
            if let Err(e) = std::fs::rename(pending, path) {
                for (rest, _) in &moves[i..] {
                    let _ = std::fs::remove_file(rest);
                }
                return Err(JobError::Output {
                    path: path.display().to_string(),
                    reason: format!("cannot move the finished piece into place: {e}"),
                });
            }
        }
        if let Some(ObjectRef::File(dir)) = &self.dir {
            remove_stale_pieces(dir, self.extension, moves.len());
        }
        Ok(())
    }
}

impl Drop for Published<'_> {
    fn drop(&mut self) {
        for (pending, _) in &self.moves {
            let _ = std::fs::remove_file(pending);
        }
        if let (Some(s3), false) = (self.s3, self.uploaded.is_empty()) {
            // Best effort: the job has failed already; a piece we cannot delete is logged by
            // the caller's error, and the manifest (written last) never lists it.
            let mut by_bucket: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
            for object in &self.uploaded {
                if let ObjectRef::S3 { bucket, key } = object {
                    by_bucket.entry(bucket).or_default().push(key.clone());
                }
            }
            for (bucket, keys) in by_bucket {
                let _ = s3.delete_keys(bucket, &keys);
            }
        }
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
