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

/// The links of a flow's route that can bound its rate: the covered ones left out (see
/// the `covered` module). The re-sharing reads these, not the route.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Binding {
    links: [u32; 4],
    n: u32,
}

impl Binding {
    /// The links of `route` for which `covered` is false.
    pub(super) fn new(route: &[u32], covered: impl Fn(u32) -> bool) -> Self {
        let mut b = Binding::default();
        for &l in route.iter().filter(|&&l| !covered(l)) {
            b.links[b.n as usize] = l;
            b.n += 1;
        }
        b
    }

    /// The links.
    #[inline]
    pub(super) fn links(&self) -> &[u32] {
        &self.links[..self.n as usize]
    }
}

/// Where a flow sits in its links' flow lists, apart from [`Flow`] so the re-sharing
/// fetches 16 bytes per flow, not a whole [`Flow`].
#[derive(Clone, Copy, Debug)]
pub(super) struct Hot {
    /// Position of this flow in `link_flows[route.links()[k]]`.
    pub(super) pos: [u32; 4],
}
