//! MPEG audio Layer III frames as the parallel encoder needs them: where a frame's main data
//! lies in the bit reservoir, copied out so that frames from different encoders can be laid out
//! again behind each other (see [`super::layout`]).
//!
//! Hand-written because this bit-level view of the reservoir (`main_data_begin`, the
//! `part2_3_length` of each granule) is the product here: symphonia and the demuxing crates
//! decode frames but do not expose it.

/// One parsed Layer III frame header: what the layout needs to place the frame's main data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// MPEG-1 (true) or MPEG-2/2.5 (false): 2 or 1 granules, 9- or 8-bit `main_data_begin`.
    pub mpeg1: bool,
    /// One channel (side info 17/9 bytes) or two (32/17).
    pub mono: bool,
    /// Whole frame in bytes, header included.
    pub size: usize,
    /// Bitrate in kbit/s (what LAME's seek table sums).
    pub kbps: u32,
    /// Samples per channel the frame carries (1152 or 576).
    pub samples: usize,
}

impl Header {
    /// Bytes of side information after the 4-byte header (no CRC: see [`parse_header`]).
    pub fn side_info_len(&self) -> usize {
        match (self.mpeg1, self.mono) {
            (true, false) => 32,
            (true, true) | (false, false) => 17,
            (false, true) => 9,
        }
    }

    /// Bytes before the frame's own data area: header plus side info.
    pub fn head_len(&self) -> usize {
        4 + self.side_info_len()
    }

    /// The largest `main_data_begin` the side info can express (9 or 8 bits).
    pub fn max_main_data_begin(&self) -> usize {
        if self.mpeg1 {
            511
        } else {
            255
        }
    }
}

const KBPS_MPEG1: [u32; 15] = [
    0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320,
];
const KBPS_MPEG2: [u32; 15] = [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160];

/// Parses a Layer III header without CRC protection (LAME is never asked for CRCs here), not
/// free-format. `None` for anything else: the caller treats it as an encoder fault.
pub fn parse_header(bytes: &[u8]) -> Option<Header> {
    let h = bytes.get(..4)?;
    if h[0] != 0xFF || h[1] & 0xE0 != 0xE0 {
        return None;
    }
    let version = (h[1] >> 3) & 3; // 0 = 2.5, 2 = 2, 3 = 1
    let layer = (h[1] >> 1) & 3; // 1 = Layer III
    let unprotected = h[1] & 1 == 1;
    if version == 1 || layer != 1 || !unprotected {
        return None;
    }
    let mpeg1 = version == 3;
    let bitrate_index = usize::from(h[2] >> 4);
    let rate_index = usize::from((h[2] >> 2) & 3);
    if bitrate_index == 0 || bitrate_index == 15 || rate_index == 3 {
        return None;
    }
    let base_rate = [44_100u32, 48_000, 32_000][rate_index];
    let sample_rate = match version {
        3 => base_rate,
        2 => base_rate / 2,
        _ => base_rate / 4,
    };
    let kbps = if mpeg1 {
        KBPS_MPEG1[bitrate_index]
    } else {
        KBPS_MPEG2[bitrate_index]
    };
    let padding = usize::from((h[2] >> 1) & 1);
    let coefficient = if mpeg1 { 144_000 } else { 72_000 };
    let size = (coefficient * kbps / sample_rate) as usize + padding;
    Some(Header {
        mpeg1,
        mono: h[3] >> 6 == 3,
        size,
        kbps,
        samples: if mpeg1 { 1152 } else { 576 },
    })
}

/// The frame's `main_data_begin`: how many bytes before its own data area its main data starts.
pub fn main_data_begin(header: &Header, frame: &[u8]) -> usize {
    if header.mpeg1 {
        (usize::from(frame[4]) << 1) | usize::from(frame[5] >> 7)
    } else {
        usize::from(frame[4])
    }
}

/// Writes `value` (≤ [`Header::max_main_data_begin`]) as the frame's `main_data_begin`.
pub fn set_main_data_begin(header: &Header, frame: &mut [u8], value: usize) {
    debug_assert!(value <= header.max_main_data_begin());
    if header.mpeg1 {
        frame[4] = (value >> 1) as u8;
        frame[5] = (frame[5] & 0x7F) | (((value & 1) as u8) << 7);
    } else {
        frame[4] = value as u8;
    }
}

/// Reads bits MSB-first from a byte slice.
struct Bits<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Bits<'_> {
    fn take(&mut self, n: usize) -> u32 {
        let mut v = 0u32;
        for _ in 0..n {
            let byte = self.bytes.get(self.at / 8).copied().unwrap_or(0);
            v = (v << 1) | u32::from((byte >> (7 - self.at % 8)) & 1);
            self.at += 1;
        }
        v
    }

    fn skip(&mut self, n: usize) {
        self.at += n;
    }
}

/// Bytes of main data the frame's granules use: the sum of their `part2_3_length` bits, rounded
/// up (what follows in the reservoir up to the next frame's start is ancillary stuffing).
pub fn main_data_len(header: &Header, frame: &[u8]) -> usize {
    let channels = if header.mono { 1 } else { 2 };
    let mut bits = Bits {
        bytes: &frame[4..header.head_len()],
        at: 0,
    };
    let mut total = 0usize;
    if header.mpeg1 {
        bits.skip(9 + if header.mono { 5 } else { 3 } + 4 * channels);
        for _granule in 0..2 {
            for _channel in 0..channels {
                total += bits.take(12) as usize;
                bits.skip(59 - 12);
            }
        }
    } else {
        bits.skip(8 + channels);
        for _channel in 0..channels {
            total += bits.take(12) as usize;
            bits.skip(63 - 12);
        }
    }
    total.div_ceil(8)
}

/// Where one frame's pieces are inside a [`FrameRun`].
#[derive(Debug, Clone, Copy)]
pub struct FrameEntry {
    /// The parsed header.
    pub header: Header,
    /// Offset of the header and side info in [`FrameRun::heads`].
    pub head_at: usize,
    /// `main_data_begin` as the encoder wrote it.
    pub main_data_begin: usize,
    /// Offset of the frame's main data in [`FrameRun::main`].
    pub main_at: usize,
    /// Its length in bytes.
    pub main_len: usize,
    /// Ancillary bytes the encoder wrote after the main data, up to where the next frame's
    /// main data starts (LAME fills the reservoir's unused bytes with them); stored right after
    /// the main data. Copied where room allows, so that a stream laid out as its encoder laid
    /// it out is byte-identical to it.
    pub tail_len: usize,
}

/// Consecutive frames from one encoder with their main data cut out of the reservoir.
#[derive(Debug, Default)]
pub struct FrameRun {
    /// Header and side info of every frame, back to back.
    pub heads: Vec<u8>,
    /// Main data of every frame, back to back.
    pub main: Vec<u8>,
    /// One entry per frame, in stream order.
    pub frames: Vec<FrameEntry>,
    /// The encoder's data areas (each frame's bytes after its side info), concatenated: the
    /// reservoir the main data is cut from. Emptied of what no later frame can reach.
    areas: Vec<u8>,
    /// Absolute reservoir position of `areas[0]`.
    areas_base: usize,
    /// Absolute reservoir position where the next frame's data area starts.
    areas_end: usize,
    /// Encoder bytes not yet forming a whole frame.
    partial: Vec<u8>,
    /// Absolute reservoir position where the last frame's main data ends.
    main_end: usize,
}

/// An encoder wrote something [`FrameRun::push_bytes`] cannot take apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameError(pub String);

impl FrameRun {
    /// Appends encoder output (any split into calls): every whole frame is parsed and its main
    /// data copied out.
    ///
    /// # Errors
    /// A byte sequence that is not a Layer III frame, or main data outside the reservoir.
    pub fn push_bytes(&mut self, bytes: &[u8]) -> Result<(), FrameError> {
        let mut pending = std::mem::take(&mut self.partial);
        pending.extend_from_slice(bytes);
        let mut at = 0;
        let result = loop {
            if pending.len() - at < 4 {
                break Ok(());
            }
            let Some(header) = parse_header(&pending[at..]) else {
                break Err(self.bad());
            };
            if pending.len() - at < header.size {
                break Ok(());
            }
            if let Err(e) = self.push_frame(header, &pending[at..at + header.size]) {
                break Err(e);
            }
            at += header.size;
        };
        pending.drain(..at);
        self.partial = pending;
        result
    }

    /// True when no partial frame is pending.
    pub fn is_whole(&self) -> bool {
        self.partial.is_empty()
    }

    fn bad(&self) -> FrameError {
        FrameError(format!(
            "LAME output is not a Layer III frame after {} frames",
            self.frames.len()
        ))
    }

    fn push_frame(&mut self, header: Header, frame: &[u8]) -> Result<(), FrameError> {
        let begin = main_data_begin(&header, frame);
        let len = main_data_len(&header, frame);
        let area_start = self.areas_end;
        self.areas.extend_from_slice(&frame[header.head_len()..]);
        self.areas_end += header.size - header.head_len();
        let start = area_start
            .checked_sub(begin)
            .filter(|&s| s >= self.areas_base);
        let Some(start) = start.filter(|&s| s + len <= self.areas_end) else {
            return Err(FrameError(format!(
                "frame {} has main data outside the bit reservoir (main_data_begin {begin}, \
                 {len} bytes)",
                self.frames.len()
            )));
        };
        // What lies between the previous frame's main data and this one's is its ancillary tail.
        if let Some(prev) = self.frames.last_mut() {
            let tail_from = self.main_end.min(start);
            prev.tail_len = start - tail_from;
            let at = tail_from - self.areas_base;
            self.main
                .extend_from_slice(&self.areas[at..at + prev.tail_len]);
        }
        let main_at = self.main.len();
        let from = start - self.areas_base;
        self.main.extend_from_slice(&self.areas[from..from + len]);
        self.main_end = start + len;
        let head_at = self.heads.len();
        self.heads.extend_from_slice(&frame[..header.head_len()]);
        self.frames.push(FrameEntry {
            header,
            head_at,
            main_data_begin: begin,
            main_at,
            main_len: len,
            tail_len: 0,
        });
        // The next frame reaches back at most 511 bytes before its own data area, and the tail
        // starts where this frame's main data ends: drop what lies before both.
        let keep_from = self
            .areas_end
            .saturating_sub(512)
            .min(self.main_end)
            .max(self.areas_base);
        if keep_from - self.areas_base > 64 * 1024 {
            self.areas.drain(..keep_from - self.areas_base);
            self.areas_base = keep_from;
        }
        Ok(())
    }

    /// The header and side info of frame `i`.
    pub fn head(&self, i: usize) -> &[u8] {
        let e = &self.frames[i];
        &self.heads[e.head_at..e.head_at + e.header.head_len()]
    }

    /// Frame `i`'s bitrate index (1–14).
    pub fn bitrate_index(&self, i: usize) -> u8 {
        self.heads[self.frames[i].head_at + 2] >> 4
    }

    /// Rewrites frame `i`'s bitrate index: the frame's data area grows or shrinks, its side
    /// info and main data stay as they are (a decoder reads them the same way).
    ///
    /// # Errors
    /// `index` is not a valid bitrate index (1–14).
    pub fn set_bitrate_index(&mut self, i: usize, index: u8) -> Result<(), FrameError> {
        let at = self.frames[i].head_at;
        let old = self.heads[at + 2];
        self.heads[at + 2] = (old & 0x0F) | (index << 4);
        match parse_header(&self.heads[at..at + 4]).filter(|_| (1..=14).contains(&index)) {
            Some(header) => {
                self.frames[i].header = header;
                Ok(())
            }
            None => {
                self.heads[at + 2] = old;
                Err(FrameError(format!("{index} is not a bitrate index")))
            }
        }
    }

    /// The main data of frame `i`.
    pub fn main_data(&self, i: usize) -> &[u8] {
        let e = &self.frames[i];
        &self.main[e.main_at..e.main_at + e.main_len]
    }

    /// The ancillary bytes after frame `i`'s main data.
    pub fn tail(&self, i: usize) -> &[u8] {
        let e = &self.frames[i];
        let at = e.main_at + e.main_len;
        &self.main[at..at + e.tail_len]
    }

    /// Marks the end of the encoder's output: the last frame's tail runs to the end of its area.
    pub fn close(&mut self) {
        if let Some(last) = self.frames.last_mut() {
            let tail_from = self.main_end.min(self.areas_end);
            last.tail_len = self.areas_end - tail_from;
            let at = tail_from - self.areas_base;
            self.main.extend_from_slice(&self.areas[at..]);
            self.main_end = self.areas_end;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_sizes_match_the_standard_formula() {
        // MPEG-1 44.1 kHz 128 kbps, no padding: 417 bytes; with padding 418.
        let h = parse_header(&[0xFF, 0xFB, 0x90, 0x44]).unwrap();
        assert_eq!((h.size, h.kbps, h.mpeg1, h.mono), (417, 128, true, false));
        assert_eq!(parse_header(&[0xFF, 0xFB, 0x92, 0x44]).unwrap().size, 418);
        // MPEG-2 22.05 kHz 64 kbps mono: 72000*64/22050 = 208.
        let h = parse_header(&[0xFF, 0xF3, 0x80, 0xC4]).unwrap();
        assert_eq!(
            (h.size, h.mpeg1, h.mono, h.samples),
            (208, false, true, 576)
        );
        assert_eq!(h.side_info_len(), 9);
        // CRC-protected, Layer II, free format, reserved rate: refused.
        assert!(parse_header(&[0xFF, 0xFA, 0x90, 0x44]).is_none());
        assert!(parse_header(&[0xFF, 0xFD, 0x90, 0x44]).is_none());
        assert!(parse_header(&[0xFF, 0xFB, 0x00, 0x44]).is_none());
        assert!(parse_header(&[0xFF, 0xFB, 0x9C, 0x44]).is_none());
    }

    #[test]
    fn main_data_begin_round_trips_through_the_side_info() {
        for (header, max) in [
            ([0xFF, 0xFB, 0x90, 0x44], 511),
            ([0xFF, 0xF3, 0x80, 0xC4], 255),
        ] {
            let h = parse_header(&header).unwrap();
            let mut frame = vec![0xA5u8; h.size];
            frame[..4].copy_from_slice(&header);
            for v in [0, 1, 200, max] {
                set_main_data_begin(&h, &mut frame, v);
                assert_eq!(main_data_begin(&h, &frame), v);
            }
            // The bits after main_data_begin are untouched.
            assert_eq!(frame[5] & 0x7F, 0xA5 & 0x7F);
        }
    }
}
