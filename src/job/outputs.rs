//! Where processed audio goes: one output file, or one file per piece of a split, routed by the
//! chain's [`StageEvent`]s. Files appear under their final names only when the whole job
//! succeeded.

use super::manifest::OutputEntry;
use super::JobError;
use crate::audio::{Block, StreamSpec};
use crate::dsp::StageEvent;
use crate::encode::{create_encoder, EncodedOutput, Encoder, FileSink, OutputFormat};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};

/// The destination of a job's processed stream.
pub enum Outputs {
    /// Everything goes to one file (committed by renaming when the encoder finishes).
    Single {
        /// The output's final path.
        path: PathBuf,
        /// Its encoder (owns the file sink).
        encoder: Box<dyn Encoder>,
        /// Format written.
        format: OutputFormat,
    },
    /// Each piece goes to `piece_NNNN.<ext>` in a folder.
    Pieces(PieceWriter),
}

impl Outputs {
    /// One output file at `path`.
    ///
    /// # Errors
    /// The file cannot be created, or the format cannot carry `spec`.
    pub fn single(path: PathBuf, format: OutputFormat, spec: StreamSpec) -> Result<Self, JobError> {
        let sink = FileSink::create(&path)?;
        let encoder = create_encoder(format, spec, Box::new(sink))?;
        Ok(Outputs::Single {
            path,
            encoder,
            format,
        })
    }

    /// Pieces in `dir` (created if missing), encoded as `format`.
    ///
    /// # Errors
    /// The folder cannot be created.
    pub fn pieces(
        dir: PathBuf,
        format: OutputFormat,
        spec: StreamSpec,
        source_rate: u32,
    ) -> Result<Self, JobError> {
        std::fs::create_dir_all(&dir).map_err(|e| JobError::Output {
            path: dir.clone(),
            reason: format!("cannot create the output folder: {e}"),
        })?;
        Ok(Outputs::Pieces(PieceWriter {
            dir,
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
    pub fn finish(self) -> Result<(Vec<OutputEntry>, Published), JobError> {
        match self {
            Outputs::Single {
                path,
                encoder,
                format,
            } => {
                let encoded = encoder.finish()?;
                Ok((
                    vec![entry(&path, format, &encoded, None)],
                    Published::default(),
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
                    dir: Some(pieces.dir.clone()),
                    extension: pieces.format.extension(),
                };
                for piece in pieces.finished.drain(..) {
                    entries.push(piece.entry);
                    published.moves.push((piece.pending, piece.path));
                }
                Ok((entries, published))
            }
        }
    }
}

/// One piece being written.
struct OpenPiece {
    index: usize,
    path: PathBuf,
    pending: PathBuf,
    encoder: Box<dyn Encoder>,
    /// Output frame where it started.
    start: u64,
    /// Source frame where it started.
    source_start: u64,
}

/// A piece written completely under its pending name.
struct FinishedPiece {
    path: PathBuf,
    pending: PathBuf,
    entry: OutputEntry,
}

/// Writes the pieces of a split, one encoder at a time.
pub struct PieceWriter {
    dir: PathBuf,
    format: OutputFormat,
    spec: StreamSpec,
    source_rate: u32,
    /// Output frames written so far (position of the next frame).
    position: u64,
    boundaries: VecDeque<StageEvent>,
    current: Option<OpenPiece>,
    finished: Vec<FinishedPiece>,
}

impl PieceWriter {
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
        let pending = self
            .dir
            .join(format!(".{name}.longwave-pending-{}", std::process::id()));
        let sink = FileSink::create(&pending)?;
        let encoder = create_encoder(self.format, self.spec, Box::new(sink))?;
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
    path: &Path,
    format: OutputFormat,
    encoded: &EncodedOutput,
    source_ms: Option<(u64, u64)>,
) -> OutputEntry {
    OutputEntry {
        path: path.display().to_string(),
        format: format.name().to_string(),
        settings: format,
        duration_s: encoded.frames as f64 / f64::from(encoded.sample_rate.max(1)),
        frames: encoded.frames,
        sample_rate: encoded.sample_rate,
        channels: encoded.channels,
        bytes: encoded.bytes,
        start_ms: source_ms.map(|(s, _)| s),
        end_ms: source_ms.map(|(_, e)| e),
    }
}

/// Piece files written under pending names, to be renamed to their final names once the job has
/// succeeded. Dropping it unpublished deletes them, so a failed job leaves no pieces behind.
#[derive(Default)]
pub struct Published {
    moves: Vec<(PathBuf, PathBuf)>,
    dir: Option<PathBuf>,
    extension: &'static str,
}

impl Published {
    /// Renames every pending piece to its final name and removes stale `piece_NNNN.<ext>` files
    /// a previous, longer run left in the folder.
    ///
    /// # Errors
    /// A rename failed (the remaining pending files are removed).
    pub fn publish(mut self) -> Result<(), JobError> {
        let moves = std::mem::take(&mut self.moves);
        for (i, (pending, path)) in moves.iter().enumerate() {
            if let Err(e) = std::fs::rename(pending, path) {
                for (rest, _) in &moves[i..] {
                    let _ = std::fs::remove_file(rest);
                }
                return Err(JobError::Output {
                    path: path.clone(),
                    reason: format!("cannot move the finished piece into place: {e}"),
                });
            }
        }
        if let Some(dir) = &self.dir {
            remove_stale_pieces(dir, self.extension, moves.len());
        }
        Ok(())
    }
}

impl Drop for Published {
    fn drop(&mut self) {
        for (pending, _) in &self.moves {
            let _ = std::fs::remove_file(pending);
        }
    }
}

/// Removes `piece_NNNN.<ext>` files numbered above `count` (left by an earlier run).
fn remove_stale_pieces(dir: &Path, extension: &str, count: usize) {
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
