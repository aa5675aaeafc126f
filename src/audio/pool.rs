//! [`BlockPool`]: a bounded free-list of blocks, so a job allocates its buffers once.

use super::Block;
use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How often a thread waiting in [`BlockPool::take_unless`] looks at its cancel flag. Only
/// waiting threads poll (a pool with free blocks answers at once), so this costs nothing on the
/// per-block path and bounds how long a failed job's threads linger.
const CANCEL_POLL: Duration = Duration::from_millis(20);

/// A fixed set of blocks handed out and given back; the pool never grows.
///
/// The pool's size is part of the job's memory budget: `size × channels × capacity × 4` bytes.
/// Cloning shares the same set (both ends are held by every clone; the pool lives until the last
/// clone drops).
#[derive(Clone)]
pub struct BlockPool {
    free_tx: Sender<Block>,
    free_rx: Receiver<Block>,
}

impl BlockPool {
    /// A pool of `count` blocks of `channels` × `capacity` samples.
    pub fn new(count: usize, channels: usize, capacity: usize) -> Self {
        let (free_tx, free_rx) = bounded(count);
        for _ in 0..count {
            // Cannot fail: the channel has room for exactly `count` blocks and we hold the receiver.
            let _ = free_tx.send(Block::new(channels, capacity));
        }
        Self { free_tx, free_rx }
    }

    /// Takes a block, waiting until one is given back if all are in use (backpressure).
    /// Returns `None` only if the pool is gone, which cannot happen while `self` exists.
    pub fn take(&self) -> Option<Block> {
        self.free_rx.recv().ok()
    }

    /// [`BlockPool::take`], but gives up (returns `None`) once `cancelled` is set: a pipeline
    /// whose other side failed stops waiting for blocks that side will never give back.
    pub fn take_unless(&self, cancelled: &AtomicBool) -> Option<Block> {
        loop {
            if cancelled.load(Ordering::Acquire) {
                return None;
            }
            match self.free_rx.recv_timeout(CANCEL_POLL) {
                Ok(block) => return Some(block),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return None,
            }
        }
    }

    /// Gives a block back for reuse.
    pub fn give(&self, mut block: Block) {
        block.set_frames(0);
        // A full pool means a block that was never taken from it: dropping it is correct.
        let _ = self.free_tx.try_send(block);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_reused() {
        let pool = BlockPool::new(1, 2, 4);
        let block = pool.take().expect("pool has one block");
        assert!(pool.free_rx.is_empty());
        pool.give(block);
        assert_eq!(pool.free_rx.len(), 1);
    }

    #[test]
    fn a_waiting_take_gives_up_when_cancelled() {
        let pool = BlockPool::new(1, 1, 4);
        let _held = pool.take().expect("one block");
        let cancelled = AtomicBool::new(false);
        std::thread::scope(|scope| {
            let waiter = scope.spawn(|| pool.take_unless(&cancelled));
            std::thread::sleep(Duration::from_millis(50));
            cancelled.store(true, Ordering::Release);
            assert!(waiter.join().expect("no panic").is_none());
        });
    }
}
