//! How many batches a drain keeps in flight: up to [`PIPELINE_DEPTH`] of all lanes, and
//! [`EXPRESS_DEPTH`] express batches of the high lane alone beside them; while the high lane is
//! busy (a claim took its events within [`HIGH_LANE_BUSY`]), the other lanes yield half their
//! pipeline, so their statements leave the high lane's more of the machine.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Batches of all lanes one drain keeps in flight.
pub const PIPELINE_DEPTH: usize = 4;
/// Express batches (the high lane alone) one drain keeps in flight besides them.
pub const EXPRESS_DEPTH: usize = 4;
/// Batches of all lanes kept in flight while the high lane is busy.
pub const DEPTH_BESIDE_HIGH: usize = 2;
const _: () = assert!(DEPTH_BESIDE_HIGH < PIPELINE_DEPTH);
/// How long after a claim took high-lane events the high lane counts as busy.
pub const HIGH_LANE_BUSY: Duration = Duration::from_secs(1);

/// When a claim of this process last took high-lane events.
#[derive(Default)]
pub struct HighLane {
    last: Mutex<Option<Instant>>,
}

impl HighLane {
    /// A claim just took high-lane events.
    pub fn claimed(&self) {
        if let Ok(mut last) = self.last.lock() {
            *last = Some(Instant::now());
        }
    }

    /// Batches of all lanes a drain keeps in flight now.
    pub fn depth(&self) -> usize {
        let last = self.last.lock().ok().and_then(|last| *last);
        depth_after(last, Instant::now())
    }
}

/// The pipeline's depth at `now` when a claim last took high-lane events at `last`.
fn depth_after(last: Option<Instant>, now: Instant) -> usize {
    match last {
        Some(at) if now.saturating_duration_since(at) < HIGH_LANE_BUSY => DEPTH_BESIDE_HIGH,
        _ => PIPELINE_DEPTH,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_other_lanes_yield_half_the_pipeline_for_a_second_after_high_lane_events() {
        let now = Instant::now();
        assert_eq!(depth_after(None, now), PIPELINE_DEPTH);
        assert_eq!(depth_after(Some(now), now), DEPTH_BESIDE_HIGH);
        assert_eq!(depth_after(Some(now), now + HIGH_LANE_BUSY), PIPELINE_DEPTH);
        let lane = HighLane::default();
        assert_eq!(lane.depth(), PIPELINE_DEPTH);
        lane.claimed();
        assert_eq!(lane.depth(), DEPTH_BESIDE_HIGH);
    }
}
