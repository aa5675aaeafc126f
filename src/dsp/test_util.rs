//! Helpers shared by the stages' unit tests.

use super::{Chain, Stage};
use crate::audio::{Block, StreamSpec};

/// Runs `channels` (planar) through a one-stage [`Chain`] in blocks of `block` frames, including
/// the flush (latency compensated, tails rendered), and returns the output channels.
pub(crate) fn run_chain(
    stage: Box<dyn Stage>,
    rate: u32,
    channels: &[Vec<f32>],
    block: usize,
) -> Vec<Vec<f32>> {
    let mut chain = Chain::new(vec![stage]);
    let spec = StreamSpec::new(rate, channels.len()).expect("valid spec");
    let out_spec = chain.prepare(spec, block).expect("prepare");
    let mut out = vec![Vec::new(); out_spec.channels];
    let frames = channels[0].len();
    let mut start = 0;
    while start < frames {
        let end = (start + block).min(frames);
        let slices: Vec<&[f32]> = channels.iter().map(|c| &c[start..end]).collect();
        let output = chain.process(&Block::from_channels(&slices));
        for (o, ch) in out.iter_mut().zip(output.channels()) {
            o.extend_from_slice(ch);
        }
        start = end;
    }
    while let Some(output) = chain.flush() {
        for (o, ch) in out.iter_mut().zip(output.channels()) {
            o.extend_from_slice(ch);
        }
    }
    out
}
