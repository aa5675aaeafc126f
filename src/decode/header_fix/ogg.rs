//! Ogg whose last page's granule position ends the stream before the page's own audio starts.
//!
//! A granule position is the stream time at the end of the last packet completed on a page. The
//! last page may state less than its packets decode to: that trims the encoder's padding, and is
//! only meaningful inside the last page. A value *below the previous page's* (seen: a broken
//! muxer or a tool that rewrote the last page) is impossible; symphonia then trims every packet of
//! the last page to nothing, and up to a page of audio (0.6 s of a 20 s Vorbis file) disappears
//! with exit 0, where ffmpeg decodes it all. The stream decides instead: the granule position is
//! replaced, in what symphonia reads, by one beyond anything the page can hold, so no audio is
//! trimmed (the last packet's padding is then kept, as ffmpeg does), and the disagreement is noted.
//!
//! Hand-written: a scan for page headers in the file's last two pages and Ogg's CRC (symphonia's
//! [`Crc32`]); the repair has to happen before symphonia's reader sees the page.

use std::io::{self, Read, Seek, SeekFrom};

use symphonia::core::checksum::Crc32;
use symphonia::core::io::Monitor;

use super::SizeFix;

/// The largest Ogg page: a 27-byte header, 255 lacing values and 255 segments of 255 bytes.
const MAX_PAGE_BYTES: u64 = 27 + 255 + 255 * 255;

/// How far past the previous page the patched granule position lies: more frames than any page
/// can hold (255 packets of FLAC's largest block, 65,535 frames), so nothing is trimmed.
const BEYOND_ANY_PAGE: i64 = 255 * 65_535 + 1;

/// "No packet ends on this page."
const NO_GRANULE: i64 = -1;

/// One page found in the scanned tail.
#[derive(Debug, Clone, Copy)]
struct Page {
    /// Offset of the page in the scanned buffer.
    at: usize,
    /// Header plus body bytes.
    len: usize,
    granule: i64,
    serial: u32,
}

/// Looks at the last two pages of a seekable Ogg file of `len` bytes and returns the repair an
/// impossible final granule position needs, if any. Leaves the source's position unspecified.
pub(crate) fn inspect_ogg<R: Read + Seek + ?Sized>(
    source: &mut R,
    len: u64,
) -> io::Result<Option<SizeFix>> {
    let tail_len = len.min(2 * MAX_PAGE_BYTES);
    let tail_start = len - tail_len;
    source.seek(SeekFrom::Start(tail_start))?;
    let mut tail = vec![0u8; tail_len as usize];
    source.read_exact(&mut tail)?;

    let pages = pages_in(&tail);
    let Some(last) = pages.last().copied() else {
        return Ok(None);
    };
    let previous = pages
        .iter()
        .rev()
        .skip(1)
        .find(|p| p.serial == last.serial && p.granule != NO_GRANULE);
    let Some(previous) = previous.copied() else {
        return Ok(None);
    };
    if last.granule == NO_GRANULE || last.granule >= previous.granule {
        return Ok(None);
    }
    let Some(patched) = previous.granule.checked_add(BEYOND_ANY_PAGE) else {
        return Ok(None);
    };
    let mut page = tail[last.at..last.at + last.len].to_vec();
    page[6..14].copy_from_slice(&patched.to_le_bytes());
    let crc = page_crc(&mut page);
    let at = tail_start + last.at as u64;
    let granule = patched.to_le_bytes();
    let word = |range: std::ops::Range<usize>| {
        let mut w = [0u8; 4];
        w.copy_from_slice(&granule[range]);
        w
    };
    Ok(Some(SizeFix {
        patches: vec![
            (at + 6, word(0..4)),
            (at + 10, word(4..8)),
            (at + 22, crc.to_le_bytes()),
        ],
        note: format!(
            "the last Ogg page's granule position ({}) is before the previous page's ({}), \
             which would cut off the last page's audio; it was decoded to its end instead",
            last.granule, previous.granule
        ),
        length_unknown: true,
    }))
}

/// Every complete page with a valid checksum in `buf`, in order. Bytes that only look like a
/// page header (a capture pattern inside audio data) fail the checksum and are skipped.
fn pages_in(buf: &[u8]) -> Vec<Page> {
    let mut pages = Vec::new();
    let mut at = 0;
    while at + 27 <= buf.len() {
        match page_at(buf, at) {
            Some(page) => {
                pages.push(page);
                at += page.len;
            }
            None => at += 1,
        }
    }
    pages
}

/// The page starting at `at`, if a whole, valid one does.
fn page_at(buf: &[u8], at: usize) -> Option<Page> {
    let rest = &buf[at..];
    if !rest.starts_with(b"OggS") || rest[4] != 0 {
        return None;
    }
    let segments = usize::from(rest[26]);
    let lacing = rest.get(27..27 + segments)?;
    let len = 27 + segments + lacing.iter().map(|&l| usize::from(l)).sum::<usize>();
    let mut page = rest.get(..len)?.to_vec();
    let stored = u32::from_le_bytes([page[22], page[23], page[24], page[25]]);
    if page_crc(&mut page) != stored {
        return None;
    }
    let mut granule = [0u8; 8];
    granule.copy_from_slice(&page[6..14]);
    Some(Page {
        at,
        len,
        granule: i64::from_le_bytes(granule),
        serial: u32::from_le_bytes([page[14], page[15], page[16], page[17]]),
    })
}

/// Ogg's page checksum (CRC-32, polynomial 0x04C11DB7, computed with the checksum field zeroed,
/// which this leaves zeroed).
fn page_crc(page: &mut [u8]) -> u32 {
    page[22..26].fill(0);
    let mut crc = Crc32::new(0);
    crc.process_buf_bytes(page);
    crc.crc()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    /// A page of `serial` with one packet of `body` bytes ending at `granule`, checksummed.
    fn page(serial: u32, sequence: u32, granule: i64, body: &[u8]) -> Vec<u8> {
        let mut p = b"OggS\0\0".to_vec();
        p.extend_from_slice(&granule.to_le_bytes());
        p.extend_from_slice(&serial.to_le_bytes());
        p.extend_from_slice(&sequence.to_le_bytes());
        p.extend_from_slice(&[0; 4]);
        p.push(1);
        p.push(body.len() as u8);
        p.extend_from_slice(body);
        let crc = page_crc(&mut p);
        p[22..26].copy_from_slice(&crc.to_le_bytes());
        p
    }

    fn apply(file: &[u8], fix: &SizeFix) -> Vec<u8> {
        let mut out = file.to_vec();
        for (at, bytes) in &fix.patches {
            out[*at as usize..*at as usize + 4].copy_from_slice(bytes);
        }
        out
    }

    #[test]
    fn a_last_granule_before_the_previous_page_is_replaced_and_rechecksummed() {
        let mut file = page(7, 0, 1000, &[1; 100]);
        file.extend(page(7, 1, 2000, &[2; 100]));
        file.extend(page(7, 2, 1500, &[3; 100]));
        let fix = inspect_ogg(&mut Cursor::new(&file), file.len() as u64)
            .unwrap()
            .expect("a repair");
        assert!(
            fix.note.contains("(1500)") && fix.note.contains("(2000)"),
            "{}",
            fix.note
        );
        let patched = apply(&file, &fix);
        let pages = pages_in(&patched);
        assert_eq!(pages.len(), 3, "the patched page still passes its checksum");
        assert_eq!(pages[2].granule, 2000 + BEYOND_ANY_PAGE);
        assert_eq!(
            patched[..2 * 127],
            file[..2 * 127],
            "earlier pages untouched"
        );
    }

    #[test]
    fn honest_end_trims_and_unknown_granules_are_left_alone() {
        let repair = |last: i64| {
            let mut file = page(7, 0, 1000, &[1; 100]);
            file.extend(page(7, 1, 2000, &[2; 100]));
            file.extend(page(7, 2, last, &[3; 100]));
            inspect_ogg(&mut Cursor::new(&file), file.len() as u64).unwrap()
        };
        for honest in [2000, 2001, 2500, NO_GRANULE] {
            assert!(repair(honest).is_none(), "{honest}");
        }
        assert!(repair(1999).is_some(), "1999 < 2000 is impossible");
    }

    #[test]
    fn pages_with_a_bad_checksum_or_cut_short_are_not_pages() {
        let mut file = page(7, 0, 1000, &[1; 100]);
        file.extend(page(7, 1, 2000, &[2; 100]));
        let mut broken = file.clone();
        broken[150] ^= 0xFF;
        assert_eq!(pages_in(&broken).len(), 1);
        assert_eq!(pages_in(&file[..file.len() - 1]).len(), 1);
    }

    #[test]
    fn another_streams_page_is_not_the_previous_page() {
        let mut file = page(7, 0, 1000, &[1; 100]);
        file.extend(page(9, 0, 5000, &[2; 100]));
        file.extend(page(7, 1, 1500, &[3; 100]));
        let fix = inspect_ogg(&mut Cursor::new(&file), file.len() as u64).unwrap();
        assert!(
            fix.is_none(),
            "1500 follows stream 7's 1000, not stream 9's 5000"
        );
    }
}
