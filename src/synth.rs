//! A deterministic speech-like test recording, synthesised block by block: voiced "syllables"
//! (a harmonic series with formant-like weights and a smooth envelope) grouped into words and
//! phrases, pauses of 0.2–2.5 s between phrases, over a −60 dBFS noise floor.
//!
//! It exists so the demo, the benches and the memory measurements need no external files, and so
//! a 3-hour input costs nothing to store: the signal is generated as it is consumed, in constant
//! memory. Depends on `audio` only.

use crate::audio::{Block, StreamSpec};
use std::f64::consts::TAU;

/// A small, fast, deterministic PRNG (xorshift64*), so the same seed gives the same recording on
/// every machine.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }
}

/// What the generator is emitting right now.
#[derive(Debug, Clone, Copy)]
enum Segment {
    /// A voiced syllable: fundamental (Hz), peak amplitude, length and position in frames.
    Syllable {
        f0: f64,
        amplitude: f64,
        length: u64,
        position: u64,
    },
    /// Noise floor only, for `remaining` frames.
    Pause { remaining: u64 },
}

/// A speech-like signal of a fixed length, produced on demand.
#[derive(Debug, Clone)]
pub struct SpeechLike {
    spec: StreamSpec,
    total_frames: u64,
    produced: u64,
    rng: Rng,
    noise_rng: Rng,
    segment: Segment,
    syllables_left_in_word: u32,
    words_left_in_phrase: u32,
    phase: f64,
    /// Per-channel gain, so stereo is placed slightly off-centre like a real recording.
    channel_gain: [f64; crate::audio::MAX_CHANNELS],
}

/// Noise floor amplitude: uniform noise of this peak is about −60 dBFS RMS.
const NOISE_PEAK: f64 = 0.001 * 1.732;

impl SpeechLike {
    /// A recording of `seconds` seconds in `spec`, fully determined by `seed`.
    pub fn new(spec: StreamSpec, seconds: f64, seed: u64) -> Self {
        let mut channel_gain = [1.0; crate::audio::MAX_CHANNELS];
        for (ch, gain) in channel_gain.iter_mut().enumerate().take(spec.channels) {
            *gain = 1.0 - 0.08 * (ch % 2) as f64;
        }
        let mut generator = Self {
            spec,
            total_frames: (seconds.max(0.0) * f64::from(spec.sample_rate)).round() as u64,
            produced: 0,
            rng: Rng::new(seed),
            noise_rng: Rng::new(seed ^ 0x5EED),
            segment: Segment::Pause { remaining: 0 },
            syllables_left_in_word: 2,
            words_left_in_phrase: 3,
            phase: 0.0,
            channel_gain,
        };
        // Start with a short lead-in pause, as recordings do.
        generator.segment = Segment::Pause {
            remaining: generator.frames_of(0.3),
        };
        generator
    }

    /// Total length in frames.
    pub fn total_frames(&self) -> u64 {
        self.total_frames
    }

    /// The stream spec it produces.
    pub fn spec(&self) -> StreamSpec {
        self.spec
    }

    fn frames_of(&self, seconds: f64) -> u64 {
        (seconds * f64::from(self.spec.sample_rate)) as u64
    }

    fn next_segment(&mut self) {
        if self.syllables_left_in_word == 0 {
            if self.words_left_in_phrase == 0 {
                // New phrase: after a real pause (0.2–2.5 s).
                self.words_left_in_phrase = 2 + (self.rng.unit() * 6.0) as u32;
                self.syllables_left_in_word = 1 + (self.rng.unit() * 3.0) as u32;
                let pause = self.rng.range(0.2, 2.5);
                self.segment = Segment::Pause {
                    remaining: self.frames_of(pause),
                };
                return;
            }
            // Gap between words inside a phrase: short (40–120 ms).
            self.words_left_in_phrase -= 1;
            self.syllables_left_in_word = 1 + (self.rng.unit() * 3.0) as u32;
            let gap = self.rng.range(0.04, 0.12);
            self.segment = Segment::Pause {
                remaining: self.frames_of(gap),
            };
            return;
        }
        self.syllables_left_in_word -= 1;
        let seconds = self.rng.range(0.12, 0.28);
        let length = self.frames_of(seconds);
        self.segment = Segment::Syllable {
            f0: self.rng.range(100.0, 230.0),
            amplitude: self.rng.range(0.15, 0.55),
            length: length.max(1),
            position: 0,
        };
    }

    /// Fills `block` with the next frames (up to its capacity); returns how many, 0 at the end.
    pub fn fill(&mut self, block: &mut Block) -> usize {
        let want = (self.total_frames - self.produced).min(block.capacity() as u64) as usize;
        block.set_frames(want);
        block.set_start_frame(self.produced);
        let rate = f64::from(self.spec.sample_rate);
        for i in 0..want {
            let voiced = match &mut self.segment {
                Segment::Pause { remaining } if *remaining > 0 => {
                    *remaining -= 1;
                    0.0
                }
                Segment::Syllable {
                    f0,
                    amplitude,
                    length,
                    position,
                } if *position < *length => {
                    let t = *position as f64 / *length as f64;
                    // Raised-cosine envelope: smooth onset and decay, no clicks.
                    let envelope = 0.5 - 0.5 * (TAU * t).cos();
                    self.phase = (self.phase + *f0 / rate) % 1.0;
                    // Harmonics with weights peaking near 500 Hz and 1500 Hz (vowel formants).
                    let mut sample = 0.0;
                    for h in 1..=8u32 {
                        let freq = *f0 * f64::from(h);
                        let weight = 1.0 / (1.0 + ((freq - 500.0) / 300.0).powi(2))
                            + 0.5 / (1.0 + ((freq - 1500.0) / 400.0).powi(2));
                        sample += weight * (TAU * self.phase * f64::from(h)).sin();
                    }
                    *position += 1;
                    0.3 * *amplitude * envelope * sample
                }
                _ => {
                    self.next_segment();
                    0.0
                }
            };
            for ch in 0..self.spec.channels {
                let noise = (self.noise_rng.unit() * 2.0 - 1.0) * NOISE_PEAK;
                let value = (voiced * self.channel_gain[ch] + noise).clamp(-1.0, 1.0);
                block.channel_buffer_mut(ch)[i] = value as f32;
            }
        }
        self.produced += want as u64;
        want
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(seconds: f64, block: usize) -> Vec<f32> {
        let spec = StreamSpec::new(16_000, 1).expect("spec");
        let mut generator = SpeechLike::new(spec, seconds, 7);
        let mut out = Vec::new();
        let mut b = Block::new(1, block);
        while generator.fill(&mut b) > 0 {
            out.extend_from_slice(b.channel(0));
        }
        out
    }

    #[test]
    fn exact_length_and_independent_of_block_size() {
        let a = render(3.0, 4096);
        let b = render(3.0, 17);
        assert_eq!(a.len(), 48_000);
        assert_eq!(a, b);
    }

    #[test]
    fn has_pauses_and_speech() {
        let samples = render(20.0, 4096);
        let window = 1600; // 100 ms at 16 kHz
        let levels: Vec<f64> = samples
            .chunks(window)
            .map(|w| (w.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / w.len() as f64).sqrt())
            .collect();
        let quiet = levels.iter().filter(|&&l| l < 0.003).count();
        let loud = levels.iter().filter(|&&l| l > 0.03).count();
        assert!(quiet > 20, "expected pauses, got {quiet} quiet windows");
        assert!(loud > 40, "expected speech, got {loud} loud windows");
        assert!(samples.iter().all(|x| x.abs() <= 1.0));
    }
}
