//! What-if events that compose: several slowdowns of one GPU or link class, load
//! changes and failures may overlap, and their effects stack and unwind correctly.
//!
//! Each event is either active or not; an effect is the product of the active
//! events' fractions (two slowdowns of a GPU to 0.5 and 0.8 leave it at 0.4; when one
//! ends, the other's fraction remains), so the order in which events end does not
//! matter. Failures are counted per replica (see [`super::replica::Replica`]).

use crate::scenario::types::{LinkClass, WhatIfEvent};

/// Which what-if events are active.
#[derive(Clone, Debug)]
pub struct WhatIfs {
    events: Vec<WhatIfEvent>,
    active: Vec<bool>,
}

impl WhatIfs {
    /// The scenario's events, none active yet.
    pub fn new(events: &[WhatIfEvent]) -> Self {
        WhatIfs { events: events.to_vec(), active: vec![false; events.len()] }
    }

    /// The events.
    pub fn events(&self) -> &[WhatIfEvent] {
        &self.events
    }

    /// Event `index` starts (`on`) or ends.
    pub fn set(&mut self, index: usize, on: bool) {
        self.active[index] = on;
    }

    fn product(&self, mut pick: impl FnMut(&WhatIfEvent) -> Option<f64>) -> f64 {
        self.events.iter().zip(&self.active).filter(|(_, on)| **on).filter_map(|(e, _)| pick(e)).product()
    }

    /// Speed of `gpu`: the product of its active slowdowns (1 when none).
    pub fn gpu_speed(&self, gpu: u32) -> f64 {
        self.product(|e| match *e {
            WhatIfEvent::GpuSlowdown { gpu: g, fraction, .. } if g == gpu => Some(fraction),
            _ => None,
        })
    }

    /// Bandwidth fraction of `class` links on `node`: the product of the active
    /// slowdowns of that class on that node or on all nodes.
    pub fn link_fraction(&self, class: LinkClass, node: u32) -> f64 {
        self.product(|e| match *e {
            WhatIfEvent::LinkSlowdown { link, node: n, fraction, .. }
                if link == class && n.is_none_or(|n| n == node) =>
            {
                Some(fraction)
            }
            _ => None,
        })
    }

    /// The fraction of `class` links on each node a slowdown of `node` (or of all
    /// `nodes`) touches, after it started or ended.
    pub fn link_fractions(&self, class: LinkClass, node: Option<u32>, nodes: u32) -> Vec<(u32, f64)> {
        node.map_or(0..nodes, |n| n..n + 1).map(|n| (n, self.link_fraction(class, n))).collect()
    }

    /// Arrival-rate factor: the product of the active load changes.
    pub fn load_factor(&self) -> f64 {
        self.product(|e| match *e {
            WhatIfEvent::LoadChange { factor, .. } => Some(factor),
            _ => None,
        })
    }
}

/// When an event starts and (if it does) ends, s.
pub fn event_times(e: &WhatIfEvent) -> (f64, Option<f64>) {
    match *e {
        WhatIfEvent::LinkSlowdown { at_s, until_s, .. }
        | WhatIfEvent::GpuSlowdown { at_s, until_s, .. }
        | WhatIfEvent::GpuFailure { at_s, until_s, .. }
        | WhatIfEvent::LinkFailure { at_s, until_s, .. }
        | WhatIfEvent::LoadChange { at_s, until_s, .. } => (at_s, until_s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slow(gpu: u32, fraction: f64) -> WhatIfEvent {
        WhatIfEvent::GpuSlowdown { at_s: 0.0, until_s: None, gpu, fraction }
    }

    #[test]
    fn overlapping_gpu_slowdowns_stack_and_unwind_in_any_order() {
        // 0.5 starts, then 0.8: 0.5 x 0.8 = 0.4. They end in reverse order: the 0.8
        // ends first, leaving 0.5; then the 0.5 ends: full speed. Another GPU is untouched.
        let mut w = WhatIfs::new(&[slow(3, 0.5), slow(3, 0.8), slow(4, 0.25)]);
        w.set(0, true);
        assert_eq!(w.gpu_speed(3), 0.5);
        w.set(1, true);
        assert!((w.gpu_speed(3) - 0.4).abs() < 1e-15);
        w.set(1, false);
        assert_eq!(w.gpu_speed(3), 0.5);
        w.set(0, false);
        assert_eq!((w.gpu_speed(3), w.gpu_speed(4)), (1.0, 1.0));
    }

    #[test]
    fn link_slowdowns_of_all_nodes_and_one_node_compose() {
        // NICs of every node at 0.5, node 1's also at 0.5: node 1 at 0.25, node 0 at 0.5,
        // NVLink untouched.
        let all =
            WhatIfEvent::LinkSlowdown { at_s: 0.0, until_s: None, link: LinkClass::Nic, node: None, fraction: 0.5 };
        let one =
            WhatIfEvent::LinkSlowdown { at_s: 0.0, until_s: None, link: LinkClass::Nic, node: Some(1), fraction: 0.5 };
        let mut w = WhatIfs::new(&[all, one]);
        w.set(0, true);
        w.set(1, true);
        assert_eq!(w.link_fraction(LinkClass::Nic, 1), 0.25);
        assert_eq!(w.link_fraction(LinkClass::Nic, 0), 0.5);
        assert_eq!(w.link_fraction(LinkClass::Nvlink, 1), 1.0);
        w.set(0, false);
        assert_eq!(w.link_fraction(LinkClass::Nic, 0), 1.0);
    }

    #[test]
    fn overlapping_slowdowns_follow_their_times() {
        // GPU 0 at 0.5 from 1 s to 4 s, and at 0.8 from 2 s to 3 s: applied in time order
        // as the event queue does, speed is 0.5 on [1, 2), 0.4 on [2, 3), 0.5 on [3, 4),
        // 1.0 from 4 s.
        let events = [
            WhatIfEvent::GpuSlowdown { at_s: 1.0, until_s: Some(4.0), gpu: 0, fraction: 0.5 },
            WhatIfEvent::GpuSlowdown { at_s: 2.0, until_s: Some(3.0), gpu: 0, fraction: 0.8 },
        ];
        let mut changes: Vec<(f64, usize, bool)> = Vec::new();
        for (i, e) in events.iter().enumerate() {
            let (at, until) = event_times(e);
            changes.push((at, i, true));
            changes.extend(until.map(|u| (u, i, false)));
        }
        changes.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut w = WhatIfs::new(&events);
        let mut seen = Vec::new();
        for (t, i, on) in changes {
            w.set(i, on);
            seen.push((t, (w.gpu_speed(0) * 1e6).round() / 1e6));
        }
        assert_eq!(seen, vec![(1.0, 0.5), (2.0, 0.4), (3.0, 0.5), (4.0, 1.0)]);
    }
}
