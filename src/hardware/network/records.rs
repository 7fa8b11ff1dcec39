//! The flow-level network's own per-flow records, apart from its logic.

use crate::engine::{EventId, SimTime};

/// A flow's slot: what it is and how it ends.
#[derive(Clone, Debug)]
pub(super) struct Flow {
    pub(super) gen: u32,
    pub(super) live: bool,
    pub(super) draining: bool,
    pub(super) bytes: f64,
    pub(super) start: SimTime,
    pub(super) tag: u64,
    /// Its pending completion event, once drained.
    pub(super) done_event: Option<EventId>,
}

/// What a rate change reads and writes of a flow, apart from [`Flow`] so the flows of a
/// re-sharing are 40 bytes each to fetch, not a whole [`Flow`].
#[derive(Clone, Copy, Debug)]
pub(super) struct Hot {
    pub(super) remaining: f64,
    /// When `remaining` was last brought up to date.
    pub(super) updated: SimTime,
    /// Position of this flow in `link_flows[route.links()[k]]`.
    pub(super) pos: [u32; 4],
    /// Position of this flow in `active` while draining.
    pub(super) active_pos: u32,
}
