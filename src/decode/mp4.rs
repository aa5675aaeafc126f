//! A minimal ISO-BMFF (MP4/M4A/MOV) box walker that extracts what symphonia ignores: the edit list
//! (`moov/trak/edts/elst`) and the iTunes gapless tag (`iTunSMPB`), so AAC priming and padding
//! can be trimmed exactly.
//!
//! It reads only box headers and a few small leaf boxes (`mvhd`, `tkhd`, `mdhd`, `hdlr`, `elst`,
//! the `iTunSMPB` item), seeking over everything else (`mdat`, sample tables), so it costs a few
//! kilobytes of I/O whatever the file's length, and works with `moov` at the end.

use std::io::{self, Read, Seek, SeekFrom};

use super::rechunk::Trim;

/// How deep boxes may nest before the walker stops descending (real files use about 6).
const MAX_DEPTH: usize = 10;
/// The most edit-list entries read per track (real files have 1–2).
const MAX_EDITS: u32 = 1024;
/// The largest `iTunSMPB` payload read (the real one is about 100 bytes).
const MAX_TAG_BYTES: u64 = 4096;

/// One edit-list entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Edit {
    /// Length of the segment, in the movie timescale (`mvhd`).
    pub segment_duration: u64,
    /// First media time of the segment, in the track's media timescale; −1 = empty edit.
    pub media_time: i64,
}

/// What the walker learned about one `trak`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Mp4Track {
    /// `tkhd` track ID (symphonia uses it as its track id).
    pub track_id: u32,
    /// `mdhd` timescale.
    pub media_timescale: u32,
    /// `hdlr` handler type (`soun`, `vide`...).
    pub handler: [u8; 4],
    /// The `elst` entries, if the track has an edit list.
    pub edits: Vec<Edit>,
}

/// The iTunes gapless information (`----:com.apple.iTunes:iTunSMPB`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ITunSmpb {
    /// Priming frames at the start.
    pub priming: u64,
    /// Padding frames at the end.
    pub padding: u64,
    /// Valid frames.
    pub frames: u64,
}

/// Everything the walker extracted from a file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Mp4Info {
    /// `mvhd` timescale.
    pub movie_timescale: Option<u32>,
    /// The tracks, in file order.
    pub tracks: Vec<Mp4Track>,
    /// The iTunes gapless tag, if present.
    pub itunsmpb: Option<ITunSmpb>,
    /// A box claims to extend past the end of the file (or its parent): the file is cut short.
    pub truncated: bool,
    /// A `moov` box was found.
    pub has_moov: bool,
}

/// True if `head` (the first bytes of a file) looks like an ISO-BMFF box.
pub(crate) fn looks_like_mp4(head: &[u8]) -> bool {
    head.len() >= 8
        && matches!(
            &head[4..8],
            b"ftyp" | b"moov" | b"mdat" | b"free" | b"skip" | b"wide" | b"pnot"
        )
}

/// Walks the boxes of `reader` (of total length `len`) from its start.
pub(crate) fn parse<R: Read + Seek>(reader: &mut R, len: u64) -> io::Result<Mp4Info> {
    let mut info = Mp4Info::default();
    let mut walker = Walker {
        reader,
        info: &mut info,
        track: None,
        smpb_item: false,
    };
    walker.walk(0, len, 0)?;
    Ok(info)
}

struct Walker<'a, R> {
    reader: &'a mut R,
    info: &'a mut Mp4Info,
    /// The `trak` being walked.
    track: Option<Mp4Track>,
    /// The current `----` item is named `iTunSMPB`: its `data` is the gapless tag.
    smpb_item: bool,
}

impl<R: Read + Seek> Walker<'_, R> {
    /// Walks the boxes between `start` and `end`.
    fn walk(&mut self, start: u64, end: u64, depth: usize) -> io::Result<()> {
        let mut pos = start;
        while pos + 8 <= end {
            self.reader.seek(SeekFrom::Start(pos))?;
            let mut header = [0u8; 8];
            self.reader.read_exact(&mut header)?;
            let size32 = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
            let kind = [header[4], header[5], header[6], header[7]];
            let (size, header_len) = match size32 {
                0 => (end - pos, 8), // extends to the end of its parent
                1 => {
                    let mut large = [0u8; 8];
                    self.reader.read_exact(&mut large)?;
                    (u64::from_be_bytes(large), 16)
                }
                n => (u64::from(n), 8),
            };
            if size < header_len {
                // Malformed: nothing sensible follows.
                return Ok(());
            }
            let box_end = pos.saturating_add(size);
            if box_end > end {
                self.info.truncated = true;
            }
            let box_end = box_end.min(end);
            self.visit(kind, pos + header_len, box_end, depth)?;
            pos = box_end;
        }
        Ok(())
    }

    fn visit(&mut self, kind: [u8; 4], body: u64, end: u64, depth: usize) -> io::Result<()> {
        if depth >= MAX_DEPTH {
            return Ok(());
        }
        match &kind {
            b"moov" => {
                self.info.has_moov = true;
                self.walk(body, end, depth + 1)?;
            }
            b"trak" => {
                self.track = Some(Mp4Track::default());
                self.walk(body, end, depth + 1)?;
                if let Some(track) = self.track.take() {
                    self.info.tracks.push(track);
                }
            }
            b"mdia" | b"edts" | b"udta" | b"ilst" => self.walk(body, end, depth + 1)?,
            b"----" => {
                self.smpb_item = false;
                self.walk(body, end, depth + 1)?;
                self.smpb_item = false;
            }
            b"meta" => {
                // iTunes `meta` is a full box (4 bytes of version/flags); QuickTime's is not.
                let mut probe = [0u8; 8];
                self.read_at(body, &mut probe)?;
                let skip = if &probe[4..8] == b"hdlr" { 0 } else { 4 };
                self.walk(body + skip, end, depth + 1)?;
            }
            b"mvhd" => {
                let timescale = self.timescale(body)?;
                self.info.movie_timescale = Some(timescale);
            }
            b"mdhd" => {
                let timescale = self.timescale(body)?;
                if let Some(track) = &mut self.track {
                    track.media_timescale = timescale;
                }
            }
            b"tkhd" => {
                let version = self.read_u8(body)?;
                let offset = if version == 1 { 4 + 16 } else { 4 + 8 };
                let id = self.read_u32(body + offset)?;
                if let Some(track) = &mut self.track {
                    track.track_id = id;
                }
            }
            b"hdlr" => {
                let mut handler = [0u8; 4];
                self.read_at(body + 8, &mut handler)?;
                if let Some(track) = &mut self.track {
                    track.handler = handler;
                }
            }
            b"elst" => {
                let edits = self.edit_list(body, end)?;
                if let Some(track) = &mut self.track {
                    track.edits = edits;
                }
            }
            b"name" => {
                // Inside `----`: the item's name; remember it if it is the gapless tag.
                let len = end.saturating_sub(body + 4);
                if len == 8 {
                    let mut name = [0u8; 8];
                    self.read_at(body + 4, &mut name)?;
                    self.smpb_item = &name == b"iTunSMPB";
                }
            }
            // The value of the current `----` item; only parsed right after `iTunSMPB`.
            b"data" if self.smpb_item => {
                let len = end.saturating_sub(body + 8).min(MAX_TAG_BYTES) as usize;
                let mut text = vec![0u8; len];
                self.read_at(body + 8, &mut text)?;
                self.info.itunsmpb = parse_itunsmpb(&text);
            }
            _ => {}
        }
        Ok(())
    }

    /// Reads the timescale of an `mvhd`/`mdhd` body (same layout for both).
    fn timescale(&mut self, body: u64) -> io::Result<u32> {
        let version = self.read_u8(body)?;
        let offset = if version == 1 { 4 + 16 } else { 4 + 8 };
        self.read_u32(body + offset)
    }

    fn edit_list(&mut self, body: u64, end: u64) -> io::Result<Vec<Edit>> {
        let version = self.read_u8(body)?;
        let count = self.read_u32(body + 4)?.min(MAX_EDITS);
        let entry_len: u64 = if version == 1 { 20 } else { 12 };
        let mut edits = Vec::new();
        let mut pos = body + 8;
        for _ in 0..count {
            if pos + entry_len > end {
                break;
            }
            let mut entry = [0u8; 20];
            self.read_at(pos, &mut entry[..entry_len as usize])?;
            let edit = if version == 1 {
                Edit {
                    segment_duration: u64::from_be_bytes(
                        entry[0..8].try_into().unwrap_or_default(),
                    ),
                    media_time: i64::from_be_bytes(entry[8..16].try_into().unwrap_or_default()),
                }
            } else {
                Edit {
                    segment_duration: u64::from(u32::from_be_bytes(
                        entry[0..4].try_into().unwrap_or_default(),
                    )),
                    media_time: i64::from(i32::from_be_bytes(
                        entry[4..8].try_into().unwrap_or_default(),
                    )),
                }
            };
            edits.push(edit);
            pos += entry_len;
        }
        Ok(edits)
    }

    fn read_at(&mut self, pos: u64, buf: &mut [u8]) -> io::Result<()> {
        self.reader.seek(SeekFrom::Start(pos))?;
        self.reader.read_exact(buf)
    }

    fn read_u8(&mut self, pos: u64) -> io::Result<u8> {
        let mut b = [0u8; 1];
        self.read_at(pos, &mut b)?;
        Ok(b[0])
    }

    fn read_u32(&mut self, pos: u64) -> io::Result<u32> {
        let mut b = [0u8; 4];
        self.read_at(pos, &mut b)?;
        Ok(u32::from_be_bytes(b))
    }
}

/// Parses the text of an `iTunSMPB` tag: `" 00000000 00000840 000001CA 00000000000A1A36 ..."`
/// (reserved, priming, padding, valid frame count, all hexadecimal).
pub(crate) fn parse_itunsmpb(text: &[u8]) -> Option<ITunSmpb> {
    let text = std::str::from_utf8(text).ok()?;
    let mut fields = text.split_whitespace().skip(1);
    let mut next = || fields.next().and_then(|f| u64::from_str_radix(f, 16).ok());
    let priming = next()?;
    let padding = next()?;
    let frames = next()?;
    (frames > 0).then_some(ITunSmpb {
        priming,
        padding,
        frames,
    })
}

/// Rounds `value × num / den` to the nearest integer without overflow for realistic inputs.
fn rescale(value: u64, num: u64, den: u64) -> u64 {
    if den == 0 {
        return value;
    }
    ((u128::from(value) * u128::from(num) + u128::from(den) / 2) / u128::from(den)) as u64
}

/// The gapless trim for track `track_id` of a file described by `info`, whose decoder outputs
/// `sample_rate` Hz and `raw_frames` frames in total (if known).
///
/// Order of preference: the track's edit list; the iTunSMPB tag; for AAC a default of 1024
/// priming frames (what every common AAC-LC encoder adds) with no end trim; otherwise no trim.
pub(crate) fn gapless_trim(
    info: &Mp4Info,
    track_id: u32,
    sample_rate: u32,
    is_aac: bool,
    raw_frames: Option<u64>,
) -> Trim {
    let track = info.tracks.iter().find(|t| t.track_id == track_id);
    if let Some(track) = track {
        // Empty edits (media_time −1, a delay before the track starts) are ignored: we do not
        // insert silence. Consecutive non-empty edits are assumed contiguous (the common case).
        let mut used = track.edits.iter().filter(|e| e.media_time >= 0).peekable();
        if let Some(first) = used.peek().copied() {
            let media_ts = u64::from(track.media_timescale.max(1));
            let skip = rescale(first.media_time as u64, u64::from(sample_rate), media_ts);
            let total: u64 = used.map(|e| e.segment_duration).sum();
            let length = match info.movie_timescale {
                Some(movie_ts) if movie_ts > 0 && total > 0 => {
                    Some(rescale(total, u64::from(sample_rate), u64::from(movie_ts)))
                }
                _ => raw_frames.map(|n| n.saturating_sub(skip)),
            };
            return Trim { skip, length };
        }
    }
    if let Some(tag) = info.itunsmpb {
        return Trim {
            skip: tag.priming,
            length: Some(tag.frames),
        };
    }
    let skip = if is_aac { 1024 } else { 0 };
    Trim {
        skip,
        length: raw_frames.map(|n| n.saturating_sub(skip)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn boxed(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut out = ((body.len() + 8) as u32).to_be_bytes().to_vec();
        out.extend_from_slice(kind);
        out.extend_from_slice(body);
        out
    }

    fn full(version: u8, rest: &[u8]) -> Vec<u8> {
        let mut out = vec![version, 0, 0, 0];
        out.extend_from_slice(rest);
        out
    }

    /// mvhd/mdhd v0 body: version/flags, ctime, mtime, timescale, duration.
    fn header_v0(timescale: u32, duration: u32) -> Vec<u8> {
        let mut rest = vec![0u8; 8];
        rest.extend_from_slice(&timescale.to_be_bytes());
        rest.extend_from_slice(&duration.to_be_bytes());
        full(0, &rest)
    }

    fn tkhd_v0(id: u32) -> Vec<u8> {
        let mut rest = vec![0u8; 8];
        rest.extend_from_slice(&id.to_be_bytes());
        rest.extend_from_slice(&[0u8; 72]);
        full(0, &rest)
    }

    fn hdlr(kind: &[u8; 4]) -> Vec<u8> {
        let mut rest = vec![0u8; 4];
        rest.extend_from_slice(kind);
        rest.extend_from_slice(&[0u8; 13]);
        full(0, &rest)
    }

    fn elst_v0(entries: &[(u32, i32)]) -> Vec<u8> {
        let mut rest = (entries.len() as u32).to_be_bytes().to_vec();
        for (dur, time) in entries {
            rest.extend_from_slice(&dur.to_be_bytes());
            rest.extend_from_slice(&time.to_be_bytes());
            rest.extend_from_slice(&0x0001_0000u32.to_be_bytes());
        }
        full(0, &rest)
    }

    fn elst_v1(entries: &[(u64, i64)]) -> Vec<u8> {
        let mut rest = (entries.len() as u32).to_be_bytes().to_vec();
        for (dur, time) in entries {
            rest.extend_from_slice(&dur.to_be_bytes());
            rest.extend_from_slice(&time.to_be_bytes());
            rest.extend_from_slice(&0x0001_0000u32.to_be_bytes());
        }
        full(1, &rest)
    }

    fn trak(id: u32, handler: &[u8; 4], media_ts: u32, elst: Option<Vec<u8>>) -> Vec<u8> {
        let mut body = boxed(b"tkhd", &tkhd_v0(id));
        if let Some(elst) = elst {
            body.extend(boxed(b"edts", &boxed(b"elst", &elst)));
        }
        let mut mdia = boxed(b"mdhd", &header_v0(media_ts, 0));
        mdia.extend(boxed(b"hdlr", &hdlr(handler)));
        mdia.extend(boxed(b"minf", &[0u8; 32]));
        body.extend(boxed(b"mdia", &mdia));
        boxed(b"trak", &body)
    }

    fn file(moov_body: Vec<u8>, moov_first: bool) -> Vec<u8> {
        let mut out = boxed(b"ftyp", b"M4A \0\0\0\0M4A mp42");
        let moov = boxed(b"moov", &moov_body);
        let mdat = boxed(b"mdat", &[0xAB; 5000]);
        if moov_first {
            out.extend(moov);
            out.extend(mdat);
        } else {
            out.extend(mdat);
            out.extend(moov);
        }
        out
    }

    fn parse_bytes(bytes: &[u8]) -> Mp4Info {
        parse(&mut Cursor::new(bytes), bytes.len() as u64).unwrap()
    }

    #[test]
    fn edit_list_gives_priming_and_length_with_moov_anywhere() {
        // ffmpeg's layout: movie timescale 1000, one edit skipping 1024 frames, 1.000 s long.
        for moov_first in [true, false] {
            let mut moov = boxed(b"mvhd", &header_v0(1000, 1000));
            moov.extend(trak(1, b"soun", 44_100, Some(elst_v0(&[(1000, 1024)]))));
            let info = parse_bytes(&file(moov, moov_first));
            assert!(info.has_moov && !info.truncated);
            assert_eq!(info.movie_timescale, Some(1000));
            assert_eq!(info.tracks[0].track_id, 1);
            assert_eq!(&info.tracks[0].handler, b"soun");
            assert_eq!(info.tracks[0].media_timescale, 44_100);
            let trim = gapless_trim(&info, 1, 44_100, true, Some(46_080));
            assert_eq!(
                trim,
                Trim {
                    skip: 1024,
                    length: Some(44_100)
                }
            );
        }
    }

    #[test]
    fn version_1_edit_list_and_empty_edits() {
        let mut moov = boxed(b"mvhd", &header_v0(600, 0));
        moov.extend(trak(1, b"vide", 12_800, None));
        moov.extend(trak(
            2,
            b"soun",
            48_000,
            Some(elst_v1(&[(300, -1), (1500, 2112)])),
        ));
        let info = parse_bytes(&file(moov, true));
        assert_eq!(info.tracks.len(), 2);
        assert_eq!(info.tracks[1].edits.len(), 2);
        // The empty edit is ignored; 1500 / 600 s = 2.5 s at 48 kHz.
        let trim = gapless_trim(&info, 2, 48_000, true, None);
        assert_eq!(
            trim,
            Trim {
                skip: 2112,
                length: Some(120_000)
            }
        );
        // The video track has no edits: AAC default.
        assert_eq!(gapless_trim(&info, 1, 48_000, true, Some(5000)).skip, 1024);
    }

    #[test]
    fn itunsmpb_is_the_fallback() {
        let text = b" 00000000 00000840 000001CA 00000000000A1A36 00000000 00000000";
        let mut data = vec![0, 0, 0, 1, 0, 0, 0, 0];
        data.extend_from_slice(text);
        let mut item = boxed(b"mean", b"\0\0\0\0com.apple.iTunes");
        item.extend(boxed(b"name", b"\0\0\0\0iTunSMPB"));
        item.extend(boxed(b"data", &data));
        let ilst = boxed(b"ilst", &boxed(b"----", &item));
        let mut meta = full(0, &boxed(b"hdlr", &hdlr(b"mdir")));
        meta.extend(ilst);
        let udta = boxed(b"udta", &boxed(b"meta", &meta));
        let mut moov = boxed(b"mvhd", &header_v0(1000, 0));
        moov.extend(trak(1, b"soun", 44_100, None));
        moov.extend(udta);
        let info = parse_bytes(&file(moov, true));
        let tag = info.itunsmpb.unwrap();
        assert_eq!(
            (tag.priming, tag.padding, tag.frames),
            (0x840, 0x1CA, 0xA1A36)
        );
        let trim = gapless_trim(&info, 1, 44_100, true, None);
        assert_eq!(
            trim,
            Trim {
                skip: 0x840,
                length: Some(0xA1A36)
            }
        );
    }

    #[test]
    fn no_gapless_info_means_aac_default_or_nothing() {
        let info = Mp4Info::default();
        assert_eq!(
            gapless_trim(&info, 1, 44_100, true, Some(10_000)),
            Trim {
                skip: 1024,
                length: Some(8976)
            }
        );
        assert_eq!(
            gapless_trim(&info, 1, 44_100, false, None),
            Trim {
                skip: 0,
                length: None
            }
        );
    }

    #[test]
    fn cut_file_is_flagged_truncated_and_garbage_does_not_panic() {
        let mut moov = boxed(b"mvhd", &header_v0(1000, 1000));
        moov.extend(trak(1, b"soun", 44_100, Some(elst_v0(&[(1000, 1024)]))));
        let bytes = file(moov, true);
        let info = parse_bytes(&bytes[..bytes.len() / 2]);
        assert!(info.truncated);
        // Header sizes of 0, 1 (64-bit), tiny and huge must not loop or panic.
        for garbage in [
            vec![0u8; 64],
            vec![0, 0, 0, 1, b'm', b'o', b'o', b'v', 0, 0, 0, 0, 0, 0, 0, 3],
            vec![0, 0, 0, 4, b'f', b'r', b'e', b'e', 1, 2, 3, 4],
            vec![0xFF; 64],
        ] {
            let _ = parse(&mut Cursor::new(&garbage), garbage.len() as u64);
        }
        assert!(looks_like_mp4(&bytes));
        assert!(!looks_like_mp4(b"RIFF\0\0\0\0WAVE"));
    }
}
