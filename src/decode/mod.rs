//! Decoding: any supported audio file (or seekable source) → a stream of fixed-size planar
//! [`Block`]s of `f32`, with exact, gapless length.
//!
//! # Why this module exists
//! symphonia does the demuxing and decoding; this module turns it into what the pipeline needs:
//! - **probing by content** (the extension is only a hint), with the first audio track of any
//!   container (so video files work);
//! - **exact length**: symphonia's own gapless trimming (MP3 LAME tag, Vorbis, FLAC), plus our own
//!   for AAC/ALAC in MP4, whose edit list symphonia ignores (see `mp4.rs`);
//! - **rechunking** into blocks of exactly `capacity` frames, converting straight from the
//!   decoder's buffer into the block (see `rechunk.rs`): no per-packet allocation;
//! - **the recovery contract** below, and errors that name the file and carry a metric label.
//!
//! # Recovery contract
//! - A packet the codec rejects (`symphonia` `DecodeError`, an I/O error inside the packet, or an
//!   "unsupported feature" that corrupt data can fake) is skipped and counted
//!   ([`AudioDecoder::skipped_packets`]); past [`DecodeOptions::max_skipped_packets`] decoding
//!   stops with [`DecodeError::TooManyBadPackets`]. Skipped packets' frames are missing from the
//!   output (it gets shorter; channels stay aligned).
//! - A panic inside symphonia is caught and becomes [`DecodeError::DecoderPanic`]; the decoder is
//!   unusable afterwards (every later call returns the same error).
//! - A stream that ends clearly short of the length its container announced (more than one packet
//!   plus one per skipped packet) is [`DecodeError::Truncated`]. This also catches data lost in
//!   the middle when a reader resynchronises over garbage (MP3 and Matroska do) without
//!   reporting an error. Matroska gives no frame count; a single-track file's segment duration
//!   stands in for it (`matroska_length`).
//! - Everything else is fatal for the job.
//!
//! # Dependencies
//! Only [`crate::audio`] and symphonia. No AWS, no DSP, no threads: the caller runs
//! [`AudioDecoder::fill`] on whatever thread it likes.

mod error;
mod header_fix;
mod mp4;
mod rechunk;

use std::io::{self, Seek, SeekFrom};
use std::panic::{self, AssertUnwindSafe};
use std::path::Path;

use symphonia::core::audio::conv::FromSample;
use symphonia::core::audio::sample::Sample;
use symphonia::core::audio::{Audio, AudioBuffer, GenericAudioBufferRef};
use symphonia::core::codecs::audio::well_known::{
    CODEC_ID_AAC, CODEC_ID_AC3, CODEC_ID_DCA, CODEC_ID_EAC3, CODEC_ID_OPUS, CODEC_ID_WAVPACK,
};
use symphonia::core::codecs::audio::{
    AudioCodecId, AudioDecoder as CodecDecoder, AudioDecoderOptions,
};
use symphonia::core::codecs::CodecParameters;
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, FormatReader, Track};
use symphonia::core::io::{MediaSource, MediaSourceStream, MediaSourceStreamOptions};
use symphonia::core::meta::MetadataOptions;

pub use error::DecodeError;

use crate::audio::{Block, SampleRepairs, StreamSpec};
use rechunk::{PacketSource, Rechunker, Trim};

/// Decoding limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeOptions {
    /// How many undecodable packets are skipped before the job fails with
    /// [`DecodeError::TooManyBadPackets`]. Default: 100.
    pub max_skipped_packets: u64,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        Self {
            max_skipped_packets: 100,
        }
    }
}

/// What was found in the source, known as soon as it is opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceInfo {
    /// Container short name, lower case: `wav`, `mp3`, `mp4` (also M4A/MOV), `flac`, `ogg`,
    /// `mkv` (also WebM), `aac` (ADTS), ...
    pub container: String,
    /// Codec short name as symphonia names it: `pcm_s16le`, `mp3`, `aac`, `flac`, `vorbis`,
    /// `alac`, `adpcm_ima_wav`, ...
    pub codec: String,
    /// Sample rate and channel count of the decoded stream (already validated).
    pub spec: StreamSpec,
    /// Exact output length in frames (after gapless trimming) when the container states it;
    /// `None` when it is unknown or only an estimate (MP3 without LAME tag, MKV, ADTS).
    pub frames: Option<u64>,
    /// Bits per sample of the source, for lossless and PCM codecs.
    pub bits_per_sample: Option<u32>,
    /// Where the container's header and the stream disagreed and the stream was believed
    /// (e.g. a streaming WAV's placeholder sizes), one sentence each; for the manifest.
    pub header_notes: Vec<String>,
}

/// A streaming decoder for one source: open it, read [`AudioDecoder::info`], then call
/// [`AudioDecoder::fill`] until it returns 0.
///
/// Memory is constant: symphonia's packet and sample buffers plus the container's index (for MP4,
/// its sample tables: about 2 MB for 3 hours). Nothing is allocated per packet once warmed up.
pub struct AudioDecoder {
    info: SourceInfo,
    source: SymphoniaSource,
    rechunker: Rechunker,
    /// Samples repaired by [`Block::sanitize`] so far (NaN/Inf zeroed, absurd values clamped).
    repairs: SampleRepairs,
}

impl std::fmt::Debug for AudioDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AudioDecoder")
            .field("name", &self.source.name)
            .field("info", &self.info)
            .field("frames_decoded", &self.rechunker.emitted())
            .field("skipped_packets", &self.source.skipped)
            .finish()
    }
}

impl AudioDecoder {
    /// Opens (through [`crate::io::open_file`]) and probes a local file, by content; the
    /// extension is only a hint.
    ///
    /// # Errors
    /// [`DecodeError::NotFound`], [`DecodeError::Io`], [`DecodeError::Empty`],
    /// [`DecodeError::NotAudio`], [`DecodeError::Unsupported`], [`DecodeError::Corrupt`], a
    /// truncation error, or [`DecodeError::DecoderPanic`]; see [`AudioDecoder::open_source`].
    pub fn open_file(path: &Path, options: DecodeOptions) -> Result<Self, DecodeError> {
        let name = path.display().to_string();
        // The file is opened by io, which refuses FIFOs and devices before opening them.
        let file = crate::io::open_file(path).map_err(|error| match error {
            crate::io::IoError::NotAFile { what, .. } => DecodeError::NotAFile {
                file: name.clone(),
                what,
            },
            crate::io::IoError::Local { source, .. }
                if source.kind() == io::ErrorKind::NotFound =>
            {
                DecodeError::NotFound { file: name.clone() }
            }
            crate::io::IoError::Local { source, .. } => DecodeError::Io {
                file: name.clone(),
                source,
            },
            other => DecodeError::Io {
                file: name.clone(),
                source: io::Error::other(other.to_string()),
            },
        })?;
        let extension = path.extension().and_then(|e| e.to_str());
        Self::open_source(Box::new(file), &name, extension, options)
    }

    /// Opens any source (for S3: a seekable range reader). `name` is used in every error message;
    /// `extension` is a hint only. A seekable source with a known length is needed for MP4 with
    /// `moov` at the end and for MP4 gapless trimming.
    ///
    /// Decodes the first packet to learn the real stream shape, so a source whose first packets
    /// are all bad fails here rather than in [`AudioDecoder::fill`].
    ///
    /// # Errors
    /// - [`DecodeError::Empty`] for a 0-byte source;
    /// - [`DecodeError::NotAudio`] when no known container is found or it has no audio track;
    /// - [`DecodeError::Unsupported`] for an unsupported codec (e.g. Opus), or a channel count or
    ///   sample rate outside [`StreamSpec::new`]'s range;
    /// - [`DecodeError::Truncated`]/[`DecodeError::UnexpectedEof`] for a file cut short;
    /// - [`DecodeError::Corrupt`], [`DecodeError::Io`], [`DecodeError::DecoderPanic`].
    pub fn open_source(
        mut source: Box<dyn MediaSource>,
        name: &str,
        extension: Option<&str>,
        options: DecodeOptions,
    ) -> Result<Self, DecodeError> {
        let file = name.to_owned();
        let io_err = |source: io::Error| DecodeError::Io {
            file: file.clone(),
            source,
        };
        let byte_len = source.byte_len();
        if byte_len == Some(0) {
            return Err(DecodeError::Empty { file });
        }

        // MP4 needs our own box walk for the edit list (symphonia ignores it). Done before
        // symphonia takes the source; costs a few small reads and seeks.
        let mut mp4_info = None;
        let mut mp4_cut = false;
        let mut header_notes = Vec::new();
        let mut length_unknown = false;
        if source.is_seekable() {
            let mut head = [0u8; 12];
            let n = read_up_to(&mut *source, &mut head).map_err(io_err)?;
            if n == 0 {
                return Err(DecodeError::Empty { file });
            }
            if let Some(len) = byte_len.filter(|_| n == 12) {
                let fix = if head.starts_with(b"RIFF") {
                    header_fix::inspect_wav(&mut *source, len)
                } else if head.starts_with(b"ID3") || head[0] == 0xFF {
                    header_fix::inspect_mp3(&mut *source, len)
                } else if head.starts_with(b"OggS") {
                    header_fix::inspect_ogg(&mut *source, len)
                } else {
                    Ok(None)
                };
                // A header too short to inspect is symphonia's to report (as truncated or
                // not audio), not an I/O error.
                let fix = match fix {
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => None,
                    other => other.map_err(io_err)?,
                };
                if let Some(fix) = fix {
                    length_unknown = fix.length_unknown;
                    header_notes.push(fix.note.clone());
                    source = Box::new(header_fix::Patched::new(source, fix));
                }
            }
            if let (true, Some(len)) = (mp4::looks_like_mp4(&head[..n]), byte_len) {
                match mp4::parse(&mut source, len) {
                    Ok(info) => {
                        mp4_cut = info.truncated;
                        mp4_info = Some(info);
                    }
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => mp4_cut = true,
                    Err(e) => return Err(io_err(e)),
                }
            }
            source.seek(SeekFrom::Start(0)).map_err(io_err)?;
        }

        let mut hint = Hint::new();
        if let Some(ext) = extension {
            hint.with_extension(ext);
        }
        let mss = MediaSourceStream::new(source, MediaSourceStreamOptions::default());
        let probed = catch(&file, || {
            symphonia::default::get_probe().probe(
                &hint,
                mss,
                FormatOptions::default(),
                MetadataOptions::default(),
            )
        })?;
        let format = match probed {
            Ok(format) => format,
            Err(_) if mp4_cut => return Err(DecodeError::UnexpectedEof { file, decoded: 0 }),
            Err(SymphoniaError::Unsupported(_)) => {
                return Err(DecodeError::NotAudio {
                    file,
                    reason: "no known audio container found in the data".into(),
                })
            }
            Err(e) => return Err(map_fatal(&file, e, 0)),
        };

        let container = container_name(format.format_info().short_name).to_owned();
        let track = select_track(&file, format.tracks())?;
        let track_id = track.id;
        let params = match &track.codec_params {
            Some(CodecParameters::Audio(params)) => params.clone(),
            _ => unreachable_track(&file)?,
        };
        let codecs = symphonia::default::get_codecs();
        let codec = match codecs.get_audio_decoder(params.codec) {
            Some(registered) => registered.codec.info.short_name.to_owned(),
            None => {
                return Err(DecodeError::Unsupported {
                    file,
                    reason: format!(
                        "codec {} in a {container} container is not supported",
                        codec_name(params.codec)
                    ),
                })
            }
        };
        // Raw length before our trim; for MP3 only trusted with a LAME tag (else an estimate).
        let announced = match container.as_str() {
            _ if length_unknown => None,
            "mp3" if track.delay.is_none() => None,
            "aac" => None,
            "mkv" => matroska_length(format.as_ref(), params.sample_rate),
            _ => track.num_frames,
        };
        // symphonia 0.6.1 never sets `delay` for MP4; if a later version does, it trims itself.
        let own_trim = container == "mp4" && track.delay.is_none();
        let options_gapless = AudioDecoderOptions::default().gapless(true);
        let decoder = catch(&file, || {
            codecs.make_audio_decoder(&params, &options_gapless)
        })?
        .map_err(|e| match e {
            SymphoniaError::Unsupported(what) => DecodeError::Unsupported {
                file: file.clone(),
                reason: format!("codec {codec}: {what}"),
            },
            // The decoder reads only its in-memory configuration here (e.g. AAC's
            // AudioSpecificConfig): a bitstream error is corrupt input, never I/O.
            SymphoniaError::IoError(e) => DecodeError::Corrupt {
                file: file.clone(),
                reason: format!("codec {codec}: invalid decoder configuration ({e})"),
            },
            e => map_fatal(&file, e, 0),
        })?;

        let mut source = SymphoniaSource {
            name: file.clone(),
            format,
            decoder,
            track_id,
            channels: 0,
            skipped: 0,
            max_skipped: options.max_skipped_packets,
            panic: None,
            primed: None,
            ended_inside_data: false,
            data_cut: mp4_cut,
            decoded_any: false,
        };
        // Decode the first packet: its buffer tells the real shape (parameters may be missing
        // or, for some AAC streams, differ from what the container says).
        let first = source.next_packet()?;
        let (rate, channels) = match first {
            Some(_) => {
                let buf = source.decoder.last_decoded();
                (buf.spec().rate(), buf.num_planes())
            }
            None => (
                params.sample_rate.unwrap_or(0),
                params.channels.as_ref().map_or(0, |c| c.count()),
            ),
        };
        let spec = StreamSpec::new(rate, channels).map_err(|reason| DecodeError::Unsupported {
            file: file.clone(),
            reason,
        })?;
        source.channels = channels;
        source.primed = Some(first);

        let (trim, frames) = match (&mp4_info, own_trim) {
            (Some(info), true) => {
                let trim = mp4::gapless_trim(
                    info,
                    track_id,
                    rate,
                    params.codec == CODEC_ID_AAC,
                    announced,
                );
                (trim, trim.length)
            }
            _ => (Trim::default(), announced),
        };
        let info = SourceInfo {
            container,
            codec,
            spec,
            frames,
            bits_per_sample: params.bits_per_sample,
            header_notes,
        };
        Ok(Self {
            info,
            source,
            rechunker: Rechunker::new(trim, frames),
            repairs: SampleRepairs::default(),
        })
    }

    /// What the source contains.
    pub fn info(&self) -> &SourceInfo {
        &self.info
    }

    /// Fills `block` with the next frames: exactly `block.capacity()` of them on every call but
    /// the last, whatever the codec's packet size. Sets `block.frames()` and
    /// `block.start_frame()` and returns the frame count; 0 means the end (also for a block of
    /// capacity 0). Every returned sample is finite and within ±`audio::MAX_SAMPLE_MAGNITUDE`
    /// (repairs are counted, see [`AudioDecoder::sample_repairs`]). Does not allocate once warmed
    /// up.
    ///
    /// # Errors
    /// [`DecodeError::BlockMismatch`] if the block's channel count is not `info().spec.channels`;
    /// otherwise the recovery contract in the module docs applies.
    pub fn fill(&mut self, block: &mut Block) -> Result<usize, DecodeError> {
        if block.channel_count() != self.info.spec.channels {
            return Err(DecodeError::BlockMismatch {
                file: self.source.name.clone(),
                block_channels: block.channel_count(),
                stream_channels: self.info.spec.channels,
            });
        }
        let frames = self.rechunker.fill(&mut self.source, block)?;
        // Sample hygiene right after decode: no stage and no encoder sees NaN/Inf or an absurd
        // magnitude (see `audio::sanitize` for the policy).
        self.repairs.add(block.sanitize());
        Ok(frames)
    }

    /// Samples repaired so far: non-finite ones replaced by 0, absurd magnitudes clamped.
    pub fn sample_repairs(&self) -> SampleRepairs {
        self.repairs
    }

    /// Packets skipped so far because they failed to decode.
    pub fn skipped_packets(&self) -> u64 {
        self.source.skipped
    }

    /// Frames returned by [`AudioDecoder::fill`] so far.
    pub fn frames_decoded(&self) -> u64 {
        self.rechunker.emitted()
    }
}

/// symphonia's reader and decoder for the selected track, as a [`PacketSource`].
struct SymphoniaSource {
    name: String,
    format: Box<dyn FormatReader>,
    decoder: Box<dyn CodecDecoder>,
    track_id: u32,
    /// Channels every decoded packet must have (0 until the first packet is seen).
    channels: usize,
    skipped: u64,
    max_skipped: u64,
    /// Set once symphonia has panicked: the reader/decoder state can no longer be trusted.
    panic: Option<String>,
    /// The packet decoded while opening, handed out by the first `next_packet`.
    primed: Option<Option<usize>>,
    ended_inside_data: bool,
    /// The container is known to be cut short (an MP4 box runs past the end of the file). Reader
    /// errors then mean "no more data", not a bad packet to skip: symphonia's MP4 reader keeps
    /// returning `no atom pending read` past the end of the data.
    data_cut: bool,
    /// At least one packet decoded successfully.
    decoded_any: bool,
}

impl SymphoniaSource {
    /// Counts a bad packet; fails once the limit is passed.
    fn skip_packet(&mut self, error: &SymphoniaError) -> Result<(), DecodeError> {
        self.skipped += 1;
        tracing::debug!(file = %self.name, skipped = self.skipped, %error, "Skipped an undecodable packet.");
        if self.skipped > self.max_skipped {
            if let (false, SymphoniaError::Unsupported(what)) = (self.decoded_any, error) {
                // Nothing ever decoded: the stream really uses a feature symphonia lacks.
                return Err(DecodeError::Unsupported {
                    file: self.name.clone(),
                    reason: format!("codec feature: {what}"),
                });
            }
            return Err(DecodeError::TooManyBadPackets {
                file: self.name.clone(),
                skipped: self.skipped,
                limit: self.max_skipped,
                last_error: error.to_string(),
            });
        }
        Ok(())
    }

    fn panicked(&mut self, err: DecodeError) -> DecodeError {
        if let DecodeError::DecoderPanic { message, .. } = &err {
            self.panic = Some(message.clone());
        }
        err
    }
}

impl PacketSource for SymphoniaSource {
    fn next_packet(&mut self) -> Result<Option<usize>, DecodeError> {
        if let Some(primed) = self.primed.take() {
            return Ok(primed);
        }
        if let Some(message) = &self.panic {
            return Err(DecodeError::DecoderPanic {
                file: self.name.clone(),
                message: message.clone(),
            });
        }
        loop {
            let format = &mut self.format;
            let read = match catch(&self.name, || format.next_packet()) {
                Ok(read) => read,
                Err(e) => return Err(self.panicked(e)),
            };
            let packet = match read {
                Ok(Some(packet)) => packet,
                Ok(None) => return Ok(None),
                Err(SymphoniaError::IoError(e)) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    // The data stops inside a packet (or the reader's way of saying "end").
                    // Whether that is truncation is decided against the announced length.
                    self.ended_inside_data = true;
                    return Ok(None);
                }
                Err(SymphoniaError::IoError(source)) => {
                    return Err(DecodeError::Io {
                        file: self.name.clone(),
                        source,
                    })
                }
                Err(SymphoniaError::DecodeError(_)) if self.data_cut => {
                    self.ended_inside_data = true;
                    return Ok(None);
                }
                Err(e @ SymphoniaError::DecodeError(_)) => {
                    // Malformed container data: the reader resynchronises on the next call.
                    self.skip_packet(&e)?;
                    continue;
                }
                Err(e) => return Err(map_fatal(&self.name, e, 0)),
            };
            if packet.track_id != self.track_id {
                continue;
            }
            let decoder = &mut self.decoder;
            let decoded = catch(&self.name, || {
                decoder
                    .decode(&packet)
                    .map(|buf| (buf.frames(), buf.num_planes()))
            });
            match decoded {
                Err(e) => return Err(self.panicked(e)),
                Ok(Ok((frames, planes))) => {
                    if self.channels != 0 && planes != self.channels && frames > 0 {
                        return Err(DecodeError::Unsupported {
                            file: self.name.clone(),
                            reason: format!(
                                "channel count changes mid-stream ({} → {planes})",
                                self.channels
                            ),
                        });
                    }
                    self.decoded_any = true;
                    return Ok(Some(frames));
                }
                // A corrupt packet can also look like an unsupported feature to the codec (seen:
                // AAC "coupling channel element" on garbage), so it too is skipped and counted.
                Ok(Err(
                    e @ (SymphoniaError::DecodeError(_)
                    | SymphoniaError::IoError(_)
                    | SymphoniaError::Unsupported(_)),
                )) => {
                    self.skip_packet(&e)?;
                }
                Ok(Err(e)) => return Err(map_fatal(&self.name, e, 0)),
            }
        }
    }

    fn copy_out(&self, src: usize, frames: usize, block: &mut Block, dst: usize) {
        match self.decoder.last_decoded() {
            GenericAudioBufferRef::F32(buf) => copy_f32(buf, src, frames, block, dst),
            GenericAudioBufferRef::S16(buf) => convert(buf, src, frames, block, dst),
            GenericAudioBufferRef::S24(buf) => convert(buf, src, frames, block, dst),
            GenericAudioBufferRef::S32(buf) => convert(buf, src, frames, block, dst),
            GenericAudioBufferRef::U8(buf) => convert(buf, src, frames, block, dst),
            GenericAudioBufferRef::U16(buf) => convert(buf, src, frames, block, dst),
            GenericAudioBufferRef::U24(buf) => convert(buf, src, frames, block, dst),
            GenericAudioBufferRef::U32(buf) => convert(buf, src, frames, block, dst),
            GenericAudioBufferRef::S8(buf) => convert(buf, src, frames, block, dst),
            GenericAudioBufferRef::F64(buf) => convert(buf, src, frames, block, dst),
        }
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn ended_inside_data(&self) -> bool {
        self.ended_inside_data
    }

    fn skipped_packets(&self) -> u64 {
        self.skipped
    }
}

/// Copies `frames` frames from `src` of every plane to `dst` of every block channel.
fn copy_f32(buf: &AudioBuffer<f32>, src: usize, frames: usize, block: &mut Block, dst: usize) {
    for ch in 0..block.channel_count() {
        let out = &mut block.channel_buffer_mut(ch)[dst..dst + frames];
        match buf.plane(ch).and_then(|p| p.get(src..src + frames)) {
            Some(plane) => out.copy_from_slice(plane),
            None => out.fill(0.0),
        }
    }
}

/// Like [`copy_f32`], converting to `f32` full scale on the way (one multiply per sample for
/// integers; monomorphised per sample type so the loop vectorises).
fn convert<S>(buf: &AudioBuffer<S>, src: usize, frames: usize, block: &mut Block, dst: usize)
where
    S: Sample,
    f32: FromSample<S>,
{
    for ch in 0..block.channel_count() {
        let out = &mut block.channel_buffer_mut(ch)[dst..dst + frames];
        match buf.plane(ch).and_then(|p| p.get(src..src + frames)) {
            Some(plane) => {
                for (o, &s) in out.iter_mut().zip(plane) {
                    *o = f32::from_sample(s);
                }
            }
            None => out.fill(0.0),
        }
    }
}

/// Runs `f`, turning a panic into [`DecodeError::DecoderPanic`].
fn catch<T>(file: &str, f: impl FnOnce() -> T) -> Result<T, DecodeError> {
    panic::catch_unwind(AssertUnwindSafe(f)).map_err(|payload| {
        let message = crate::audio::panic_message(payload.as_ref());
        DecodeError::DecoderPanic {
            file: file.to_owned(),
            message,
        }
    })
}

/// Maps a symphonia error that stops decoding.
fn map_fatal(file: &str, error: SymphoniaError, decoded: u64) -> DecodeError {
    let file = file.to_owned();
    match error {
        SymphoniaError::IoError(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            DecodeError::UnexpectedEof { file, decoded }
        }
        SymphoniaError::IoError(source) => DecodeError::Io { file, source },
        SymphoniaError::Unsupported(what) => DecodeError::Unsupported {
            file,
            reason: what.to_owned(),
        },
        SymphoniaError::ResetRequired => DecodeError::Unsupported {
            file,
            reason: "stream parameters change mid-stream (chained stream)".to_owned(),
        },
        e => DecodeError::Corrupt {
            file,
            reason: e.to_string(),
        },
    }
}

/// The first audio track with a codec we can decode, else the first audio track (whose codec
/// will be reported as unsupported).
fn select_track<'a>(file: &str, tracks: &'a [Track]) -> Result<&'a Track, DecodeError> {
    let codecs = symphonia::default::get_codecs();
    let audio = |t: &&Track| matches!(t.codec_params, Some(CodecParameters::Audio(_)));
    let decodable = |t: &&Track| match &t.codec_params {
        Some(CodecParameters::Audio(p)) => codecs.get_audio_decoder(p.codec).is_some(),
        _ => false,
    };
    tracks
        .iter()
        .find(decodable)
        .or_else(|| tracks.iter().find(audio))
        .ok_or_else(|| DecodeError::NotAudio {
            file: file.to_owned(),
            reason: format!(
                "the container has {} track(s) but no audio track",
                tracks.len()
            ),
        })
}

/// The length a Matroska/WebM file announces for its only track, in frames: the segment's
/// `Duration` (millisecond precision with the usual timestamp scale). symphonia gives MKV tracks
/// no frame count; without this, a cluster lost to corruption (the reader resynchronises over it
/// without an error) would go unnoticed. Only for single-track files: the segment's duration is
/// the longest track's, and in a video the audio may legitimately end earlier. Live recordings
/// (browsers' `MediaRecorder`) carry no duration and get no check.
fn matroska_length(format: &dyn FormatReader, sample_rate: Option<u32>) -> Option<u64> {
    if format.tracks().len() != 1 {
        return None;
    }
    let info = format.media_info();
    let time = info.time_base?.calc_duration(info.duration?)?;
    let frames = time.as_nanos() * i128::from(sample_rate?) / 1_000_000_000;
    u64::try_from(frames).ok()
}

/// `select_track` only returns audio tracks; this keeps the impossible case an error, not a panic.
fn unreachable_track<T>(file: &str) -> Result<T, DecodeError> {
    Err(DecodeError::NotAudio {
        file: file.to_owned(),
        reason: "no audio track".into(),
    })
}

/// Our container names (symphonia's short names are `wave`, `isomp4`, `matroska`...).
fn container_name(symphonia_name: &'static str) -> &'static str {
    match symphonia_name {
        "wave" => "wav",
        "isomp4" => "mp4",
        "matroska" => "mkv",
        other => other,
    }
}

/// A readable name for codecs symphonia knows of but cannot decode here.
fn codec_name(id: AudioCodecId) -> String {
    match id {
        CODEC_ID_OPUS => "opus".into(),
        CODEC_ID_AC3 => "ac3".into(),
        CODEC_ID_EAC3 => "eac3".into(),
        CODEC_ID_DCA => "dts".into(),
        CODEC_ID_WAVPACK => "wavpack".into(),
        other => format!("with id {other}"),
    }
}

/// Reads until `buf` is full or the source ends; returns the bytes read.
fn read_up_to(source: &mut dyn MediaSource, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match source.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A source that serves `good` bytes of a real file, then fails every read with `error()`:
    /// an S3 reader whose retries ran out in the middle of a job.
    struct FailsAfter {
        file: std::io::Cursor<Vec<u8>>,
        good: u64,
        error: fn() -> io::Error,
    }

    impl io::Read for FailsAfter {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let left = self.good.saturating_sub(self.file.position());
            if left == 0 {
                return Err((self.error)());
            }
            let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            self.file.read(&mut buf[..n])
        }
    }

    impl io::Seek for FailsAfter {
        fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
            self.file.seek(pos)
        }
    }

    impl MediaSource for FailsAfter {
        fn is_seekable(&self) -> bool {
            true
        }
        fn byte_len(&self) -> Option<u64> {
            Some(self.file.get_ref().len() as u64)
        }
    }

    fn decode_until_error(error: fn() -> io::Error) -> DecodeError {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/pydub/test4.wav"
        );
        let mut bytes = Vec::new();
        io::Read::read_to_end(
            &mut crate::io::open_file(Path::new(path)).expect("fixture"),
            &mut bytes,
        )
        .expect("fixture");
        let source = FailsAfter {
            good: bytes.len() as u64 / 2,
            file: std::io::Cursor::new(bytes),
            error,
        };
        let mut decoder = AudioDecoder::open_source(
            Box::new(source),
            "s3://b/in.wav",
            None,
            DecodeOptions::default(),
        )
        .expect("the header is readable");
        let mut block = Block::new(decoder.info().spec.channels, 4096);
        loop {
            match decoder.fill(&mut block) {
                Ok(0) => panic!("decoded to the end through a failing source"),
                Ok(_) => {}
                Err(e) => return e,
            }
        }
    }

    #[test]
    fn a_transient_object_read_error_mid_stream_stays_retryable() {
        // Before: the reader's typed error (503 SlowDown after its retries) reached the job as
        // a permanent "io" error, and the worker dead-lettered the message.
        let throttled = decode_until_error(|| {
            io::Error::other(crate::io::IoError::Remote {
                op: "get_object",
                target: "s3://b/in.wav".into(),
                reason: "SlowDown: please reduce your request rate".into(),
                retryable: true,
            })
        });
        assert!(throttled.retryable(), "{throttled}");
        assert_eq!(throttled.kind(), "s3_remote");
        assert!(throttled.to_string().contains("SlowDown"), "{throttled}");
        let denied = decode_until_error(|| {
            io::Error::other(crate::io::IoError::AccessDenied {
                op: "get_object",
                target: "s3://b/in.wav".into(),
            })
        });
        assert!(!denied.retryable());
        assert_eq!(denied.kind(), "access_denied");
    }

    #[test]
    fn panics_become_errors_naming_the_file() {
        let result: Result<(), DecodeError> = catch("song.mp3", || panic!("index out of bounds"));
        let err = result.unwrap_err();
        assert_eq!(err.kind(), "decoder_panic");
        assert!(err.to_string().contains("song.mp3"));
        assert!(err.to_string().contains("index out of bounds"));
        let formatted: Result<(), DecodeError> = catch("a.wav", || panic!("bad {}", 42));
        assert!(formatted.unwrap_err().to_string().contains("bad 42"));
    }

    #[test]
    fn decoder_can_move_to_a_decode_thread() {
        fn assert_send<T: Send>() {}
        assert_send::<AudioDecoder>();
        assert_send::<DecodeError>();
    }

    #[test]
    fn container_and_codec_names_are_short_and_lower_case() {
        assert_eq!(container_name("wave"), "wav");
        assert_eq!(container_name("isomp4"), "mp4");
        assert_eq!(container_name("matroska"), "mkv");
        assert_eq!(container_name("ogg"), "ogg");
        assert_eq!(codec_name(CODEC_ID_OPUS), "opus");
    }
}
