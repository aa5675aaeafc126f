//! Headers that lie about the length, repaired before symphonia reads them: the stream decides.
//!
//! Three cases, each with the bytes symphonia sees patched (never the file) and a sentence for the
//! manifest ([`SizeFix::note`]):
//!
//! ## MP3 whose Xing/Info frame count is impossible
//! A count of 0 or 1 on a file of thousands of frames (a broken tagger, a stream cut and
//! re-tagged) made symphonia stop after that many frames: 0.000 s of a 20 s file, exit 0, where
//! ffmpeg decodes it all. When the bytes after the tag frame could not fit in the frames it
//! announces (more than twice the largest Layer III frame, 1441 bytes, per frame), the count is
//! replaced by "unknown" and the stream is decoded to its end (the encoder padding at the end is
//! then kept, as ffmpeg does).
//!
//! ## WAV files written to a pipe: their size fields are placeholders, the data runs to the end
//!
//! `ffmpeg -f wav -` writes `0xFFFFFFFF` as the RIFF and data sizes, `sox -t wav -` writes
//! `0x7FFFF000`-style values, and some recorders leave 0 when they are killed before closing
//! the file. symphonia believes the data chunk's size: it stops after 0 frames, or reports a
//! complete file as truncated. The stream decides the length instead: when the data chunk's
//! size is such a placeholder, it is replaced (in what symphonia reads, never in the file) by
//! the bytes that follow it, rounded down to whole frames, and the disagreement is reported
//! ([`SizeFix::note`]) for the manifest. A plausible size larger than the file (a file cut
//! short) is left alone: that is a truncation, reported as such.
//!
//! Hand-written: a 12-byte header and a chunk walk; no crate exposes "WAV with lying sizes" as
//! an option, and the repair has to happen before symphonia's reader sees the header.
//!
//! ## Ogg whose last granule position is before the previous page's
//! See [`ogg`]: the last page's audio is decoded instead of trimmed away.

mod ogg;

use std::io::{self, Read, Seek, SeekFrom};
use symphonia::core::io::MediaSource;

pub(crate) use ogg::inspect_ogg;

/// Data sizes that mean "unknown" rather than a length, given the bytes `available` after the
/// chunk header: 0 with data present, or a huge value (`0xFFFFFFFF`, sox's `0x7FFFF000`…)
/// beyond the file's end. A genuine 3 GB WAV states its real size and is not touched.
fn is_placeholder(size: u32, available: u64) -> bool {
    (size == 0 && available > 0) || (size >= 0x7FFF_F000 && u64::from(size) > available)
}

/// How far into the file the data chunk may start (a chunk walk never reads further).
const MAX_HEADER_BYTES: u64 = 1 << 20;

/// The repair for one file: bytes to show instead of the file's at given offsets.
#[derive(Debug, Clone)]
pub(crate) struct SizeFix {
    patches: Vec<(u64, [u8; 4])>,
    /// What was wrong and what was done, for the manifest.
    pub note: String,
    /// The container's frame count is not to be believed: decode to the end.
    pub length_unknown: bool,
}

/// The largest MPEG-1/2/2.5 Layer III frame in bytes (320 kbps at 32 kHz, or 160 kbps at 8 kHz,
/// with padding).
const MAX_MP3_FRAME_BYTES: u64 = 1441;

/// The smallest Layer III frame in bytes (8 kbps at 48 kHz): the file cannot hold more frames
/// than its bytes divided by this, so that count never cuts the stream short.
const MIN_MP3_FRAME_BYTES: u64 = 24;

/// Looks for a Xing/Info tag in the first MPEG frame of a seekable MP3 of `len` bytes (after an
/// optional ID3v2 tag) and returns the repair an impossible frame count needs, if any.
pub(crate) fn inspect_mp3<R: Read + Seek + ?Sized>(
    source: &mut R,
    len: u64,
) -> io::Result<Option<SizeFix>> {
    source.seek(SeekFrom::Start(0))?;
    let mut id3 = [0u8; 10];
    source.read_exact(&mut id3)?;
    let start = if &id3[0..3] == b"ID3" {
        let size = id3[6..10]
            .iter()
            .fold(0u64, |acc, &b| (acc << 7) | u64::from(b & 0x7F));
        10 + size + if id3[5] & 0x10 != 0 { 10 } else { 0 }
    } else {
        0
    };
    source.seek(SeekFrom::Start(start))?;
    let mut frame = [0u8; 64];
    if source.read(&mut frame)? < 64 {
        return Ok(None);
    }
    if frame[0] != 0xFF || frame[1] & 0xE0 != 0xE0 || frame[1] & 0x06 != 0x02 {
        return Ok(None); // not a Layer III frame header at the start
    }
    let mpeg1 = frame[1] & 0x18 == 0x18;
    let mono = frame[3] & 0xC0 == 0xC0;
    let side_info = match (mpeg1, mono) {
        (true, false) => 32,
        (true, true) | (false, false) => 17,
        (false, true) => 9,
    };
    let tag = 4 + side_info;
    if &frame[tag..tag + 4] != b"Xing" && &frame[tag..tag + 4] != b"Info" {
        return Ok(None);
    }
    let flags = u32::from_be_bytes([
        frame[tag + 4],
        frame[tag + 5],
        frame[tag + 6],
        frame[tag + 7],
    ]);
    if flags & 1 == 0 {
        return Ok(None);
    }
    let count_at = tag + 8;
    let count = u32::from_be_bytes([
        frame[count_at],
        frame[count_at + 1],
        frame[count_at + 2],
        frame[count_at + 3],
    ]);
    let audio_bytes = len.saturating_sub(start);
    if count > 0 && audio_bytes / u64::from(count) <= 2 * MAX_MP3_FRAME_BYTES {
        return Ok(None);
    }
    // An upper bound, not u32::MAX: symphonia gives up gapless trimming (the start delay too)
    // when the announced length does not fit its timestamps.
    let bound = u32::try_from(audio_bytes / MIN_MP3_FRAME_BYTES + 1).unwrap_or(u32::MAX);
    Ok(Some(SizeFix {
        patches: vec![(start + count_at as u64, bound.to_be_bytes())],
        note: format!(
            "the Xing/Info tag says the MP3 has {count} frames, which cannot hold its \
             {audio_bytes} bytes; it was decoded to its end instead"
        ),
        length_unknown: true,
    }))
}

/// Walks the RIFF chunks of a seekable WAV of `len` bytes and returns the repair its data size
/// needs, if any. Leaves the source's position unspecified (the caller seeks back).
pub(crate) fn inspect_wav<R: Read + Seek + ?Sized>(
    source: &mut R,
    len: u64,
) -> io::Result<Option<SizeFix>> {
    source.seek(SeekFrom::Start(0))?;
    let mut head = [0u8; 12];
    source.read_exact(&mut head)?;
    if &head[0..4] != b"RIFF" || &head[8..12] != b"WAVE" {
        return Ok(None); // RF64 and others carry real 64-bit sizes
    }
    let mut block_align = 1u64;
    let mut pos = 12u64;
    while pos + 8 <= len.min(MAX_HEADER_BYTES) {
        source.seek(SeekFrom::Start(pos))?;
        let mut chunk = [0u8; 8];
        source.read_exact(&mut chunk)?;
        let size = u32::from_le_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]);
        if &chunk[0..4] == b"fmt " && size >= 16 {
            let mut fmt = [0u8; 16];
            source.read_exact(&mut fmt)?;
            block_align = u64::from(u16::from_le_bytes([fmt[12], fmt[13]])).max(1);
        }
        if &chunk[0..4] == b"data" {
            let data_start = pos + 8;
            let available = len.saturating_sub(data_start);
            if !is_placeholder(size, available) {
                return Ok(None);
            }
            let whole = available - available % block_align;
            let Ok(actual) = u32::try_from(whole) else {
                return Ok(None); // past 4 GiB only RF64 can say it; leave it to symphonia
            };
            let riff = u32::try_from(len.saturating_sub(8)).unwrap_or(u32::MAX);
            return Ok(Some(SizeFix {
                patches: vec![(4, riff.to_le_bytes()), (pos + 4, actual.to_le_bytes())],
                note: format!(
                    "the WAV data size field says {size:#010x} (a streaming placeholder); \
                     the length was taken from the file: {actual} bytes"
                ),
                length_unknown: false,
            }));
        }
        // Chunks are padded to an even size.
        pos = data_start_of_next(pos, size);
    }
    Ok(None)
}

fn data_start_of_next(pos: u64, size: u32) -> u64 {
    pos + 8 + u64::from(size) + u64::from(size % 2)
}

/// A source that shows the patched bytes of a [`SizeFix`] in place of the file's.
pub(crate) struct Patched {
    inner: Box<dyn MediaSource>,
    patches: Vec<(u64, [u8; 4])>,
    position: u64,
}

impl Patched {
    /// Wraps `inner` (positioned anywhere) with `fix`.
    pub(crate) fn new(inner: Box<dyn MediaSource>, fix: SizeFix) -> Self {
        Self {
            inner,
            patches: fix.patches,
            position: 0,
        }
    }
}

impl Read for Patched {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let start = self.position;
        let end = start + n as u64;
        for (offset, bytes) in &self.patches {
            for (i, &b) in bytes.iter().enumerate() {
                let at = offset + i as u64;
                if (start..end).contains(&at) {
                    buf[(at - start) as usize] = b;
                }
            }
        }
        self.position = end;
        Ok(n)
    }
}

impl Seek for Patched {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.position = self.inner.seek(pos)?;
        Ok(self.position)
    }
}

impl MediaSource for Patched {
    fn is_seekable(&self) -> bool {
        self.inner.is_seekable()
    }

    fn byte_len(&self) -> Option<u64> {
        self.inner.byte_len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn wav(data_size: u32, riff_size: u32, frames: usize) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(b"RIFF");
        v.extend_from_slice(&riff_size.to_le_bytes());
        v.extend_from_slice(b"WAVEfmt ");
        v.extend_from_slice(&16u32.to_le_bytes());
        v.extend_from_slice(&[1, 0, 2, 0]); // PCM, stereo
        v.extend_from_slice(&44_100u32.to_le_bytes());
        v.extend_from_slice(&(44_100u32 * 4).to_le_bytes());
        v.extend_from_slice(&[4, 0, 16, 0]);
        v.extend_from_slice(b"LIST");
        v.extend_from_slice(&3u32.to_le_bytes());
        v.extend_from_slice(b"abc\0"); // odd size, padded
        v.extend_from_slice(b"data");
        v.extend_from_slice(&data_size.to_le_bytes());
        v.extend(std::iter::repeat_n(7u8, frames * 4 + 1)); // a stray byte: not a whole frame
        v
    }

    #[test]
    fn placeholder_sizes_are_replaced_by_the_data_present() {
        for placeholder in [0u32, u32::MAX, 0x7FFF_F000] {
            let bytes = wav(placeholder, u32::MAX, 1000);
            let len = bytes.len() as u64;
            let fix = inspect_wav(&mut Cursor::new(bytes.clone()), len)
                .unwrap()
                .expect("fixed");
            let mut patched = Patched::new(Box::new(Cursor::new(bytes)), fix);
            let mut out = Vec::new();
            patched.read_to_end(&mut out).unwrap();
            let data_size = u32::from_le_bytes(out[52..56].try_into().unwrap());
            assert_eq!(data_size, 4000, "placeholder {placeholder:#x}");
            let riff = u32::from_le_bytes(out[4..8].try_into().unwrap());
            assert_eq!(u64::from(riff), len - 8);
        }
    }

    #[test]
    fn real_sizes_are_left_alone_even_when_the_file_is_short() {
        let bytes = wav(4000, 4036, 1000);
        assert!(
            inspect_wav(&mut Cursor::new(bytes.clone()), bytes.len() as u64)
                .unwrap()
                .is_none()
        );
        // Cut short: a truncation, not a placeholder.
        let bytes = wav(400_000, 400_036, 1000);
        assert!(
            inspect_wav(&mut Cursor::new(bytes.clone()), bytes.len() as u64)
                .unwrap()
                .is_none()
        );
    }
}
