//! The KV handoff from a prefill instance to a decode instance.
//!
//! The decode side reserves blocks for the prompt's KV before any of it moves; a
//! request whose decode instance has no room waits, holding its prefill blocks, in
//! that instance's pending queue (first come, first served). Layer-wise streaming
//! reserves when the prefill starts and sends each layer as it is computed, so after
//! the prefill ends only the last layer's share remains, or more when the links could
//! not carry the rest during the prefill; whole-cache mode (or a stream whose
//! reservation had to wait) sends everything after the prefill. The bytes go over the
//! NICs [`super::net::HandoffNet`] routes them through, booked on the cluster's one
//! fabric (sharing them with other handoffs and the instances' traffic), and land
//! after the path's latency; the request then
//! joins the decode instance's running set: its first token is delivered then (TTFT
//! includes the handoff), and no request is decoded before its KV has landed.

use super::sim::{Event, Handoff, PoolSim};
use crate::engine::SimTime;
use crate::serving::kv::blocks_for;
use crate::serving::links::{Move, Owner};
use crate::serving::scheduler::BatchEntry;

impl PoolSim {
    /// Records that the request in `slot` goes from prefill instance `p` to decode
    /// instance `d`, wanting `output_tokens` tokens.
    pub(super) fn route_handoff(&mut self, slot: u32, p: u32, d: u32, output_tokens: u32) {
        if self.handoffs.len() <= slot as usize {
            self.handoffs.resize(slot as usize + 1, None);
        }
        let req = self.reqs.get(slot);
        let blocks = blocks_for(req.prompt_tokens, self.replica_of(d).queues.block_tokens());
        let incoming = &mut self.incoming[d as usize];
        incoming.0 += req.prompt_tokens as u64 + output_tokens as u64;
        incoming.1 += blocks as u64;
        self.handoffs[slot as usize] = Some(Handoff {
            prefill: p,
            decode: d,
            output_tokens,
            reserved: None,
            stream_from: None,
            prefill_done_at: self.now,
            transfer_start: self.now,
            latency: Default::default(),
            landing: None,
        });
    }

    /// Forgets the handoff of `slot` (it finished on the prefill side or landed).
    pub(super) fn forget_handoff(&mut self, slot: u32) -> Option<Handoff> {
        let h = self.handoffs.get_mut(slot as usize).and_then(Option::take)?;
        let prompt = self.reqs.get(slot).prompt_tokens;
        let blocks = blocks_for(prompt, self.replica_of(h.decode).queues.block_tokens());
        let incoming = &mut self.incoming[h.decode as usize];
        incoming.0 -= prompt as u64 + h.output_tokens as u64;
        if h.reserved.is_none() {
            incoming.1 -= blocks as u64;
        }
        Some(h)
    }

    /// Layer-wise mode: requests whose prefill starts in this batch reserve their
    /// decode blocks now, so their KV can stream while they prefill.
    pub(super) fn start_streams(&mut self, entries: &[BatchEntry]) {
        for e in entries.iter().filter(|e| e.context == 0) {
            let Some(h) = self.handoffs.get(e.slot as usize).and_then(Option::as_ref) else { continue };
            if h.reserved.is_none() && self.pending[h.decode as usize].is_empty() && self.reserve(e.slot) {
                self.handoffs[e.slot as usize].as_mut().expect("handoff").stream_from = Some(self.now);
            }
        }
    }

    /// Reserves the decode-side blocks of `slot`'s prompt; false when there is no room.
    fn reserve(&mut self, slot: u32) -> bool {
        let Some(h) = self.handoffs[slot as usize].as_ref() else { return false };
        let d = h.decode;
        let blocks = blocks_for(self.reqs.get(slot).prompt_tokens, self.replica_of(d).queues.block_tokens());
        let (p, r) = self.insts[d as usize];
        let Some(group) = self.pools[p as usize].replicas[r as usize].queues.reserve(blocks) else { return false };
        self.incoming[d as usize].1 -= blocks as u64;
        self.handoffs[slot as usize].as_mut().expect("handoff").reserved = Some((blocks, group));
        true
    }

    /// The prefill of `slot` is done: it holds its blocks, unschedulable, until its KV
    /// has left; the transfer starts now if the decode side has room.
    pub(super) fn prefill_done(&mut self, slot: u32) {
        self.reqs.get_mut(slot).in_flight = true;
        let h = self.handoffs[slot as usize].as_mut().expect("a prefilled request has a handoff");
        h.prefill_done_at = self.now;
        let (d, reserved) = (h.decode, h.reserved.is_some());
        if reserved || (self.pending[d as usize].is_empty() && self.reserve(slot)) {
            self.start_transfer(slot);
        } else {
            self.pending[d as usize].push_back(slot);
        }
    }

    /// Starts the handoffs waiting on decode instance `d` while it has room, in order.
    pub(super) fn try_pending(&mut self, d: u32) {
        while let Some(&slot) = self.pending[d as usize].front() {
            if !self.reserve(slot) {
                return;
            }
            self.pending[d as usize].pop_front();
            self.start_transfer(slot);
        }
    }

    /// Sends `slot`'s KV from its prefill instance to its decode instance: booked on
    /// the cluster's fabric, it lands a path latency after its last byte.
    fn start_transfer(&mut self, slot: u32) {
        let h = self.handoffs[slot as usize].as_ref().expect("handoff");
        let bytes = self.sequence_kv.bytes(self.reqs.get(slot).prompt_tokens);
        let (src, dst) = (self.instance_gpus(h.prefill), self.instance_gpus(h.decode));
        let mut route = self.net.route(&src, &dst, bytes);
        if let Some(from) = h.stream_from {
            // What streaming during the prefill could not carry, but at least the last
            // layer's share, which is computed only as the prefill ends.
            let streamed_ns = (self.now - from).as_ns() as f64;
            let left = (1.0 - streamed_ns / self.net.alone_ns(&route).max(1.0)).max(1.0 / self.layers.max(1) as f64);
            route = route.scaled(left.min(1.0));
        }
        // Alone on its links, the last byte lands in the ns its busiest link says.
        let work_ns = self.net.alone_ns(&route).ceil() as u64;
        let owner = Owner::handoff(slot, h.decode);
        let (now, rec) = (self.now, &mut self.rec);
        let end = match self.fabric.as_mut() {
            Some(f) => f.book_transfer(owner, now, work_ns, &route.link_bytes, now, rec),
            None => now + SimTime(work_ns),
        };
        // Each byte leaves through one NIC and enters through another: count it once.
        self.stats.kv_bytes += route.link_bytes.iter().map(|(_, b)| b).sum::<f64>() / 2.0;
        let event = self.queue.schedule(end + route.latency, Event::Landed(slot));
        let h = self.handoffs[slot as usize].as_mut().expect("handoff");
        (h.transfer_start, h.latency, h.landing) = (now, route.latency, Some((end, event)));
        let moves = self.fabric.as_mut().map(|f| f.take_moves()).unwrap_or_default();
        self.follow(moves.into_iter().map(|m| (m, false)).collect());
    }

    /// A handoff's last byte moved (other traffic joined its links): so does its landing.
    pub(super) fn move_landing(&mut self, mv: Move) {
        let Some(h) = self.handoffs.get_mut(mv.owner.batch as usize).and_then(Option::as_mut) else { return };
        let Some((end, event)) = h.landing else { return };
        let end = SimTime(end.as_ns().saturating_add_signed(mv.delta_ns));
        if let Some(id) = self.queue.reschedule(event, end + h.latency) {
            h.landing = Some((end, id));
        }
    }

    /// `slot`'s KV has landed: the prefill side frees its blocks, the decode side takes
    /// the request into its running set in the blocks it reserved.
    pub(super) fn landed(&mut self, slot: u32) {
        let h = self.forget_handoff(slot).expect("a landing request has a handoff");
        let (blocks, group) = h.reserved.expect("reserved before the transfer");
        self.stats
            .handoff((self.now - h.transfer_start).as_secs_f64(), (h.transfer_start - h.prefill_done_at).as_secs_f64());
        let (pp, pr) = self.insts[h.prefill as usize];
        let prep = &mut self.pools[pp as usize].replicas[pr as usize];
        prep.queues.retire(&mut self.reqs, slot);
        prep.outstanding -= self.reqs.get(slot).outstanding_tokens();
        let req = self.reqs.get_mut(slot);
        (req.output_tokens, req.blocks, req.kv_group, req.in_flight) = (h.output_tokens, blocks, group, false);
        // The first token reaches the user with the decode side's first answer.
        (req.first_token_at, req.last_token_at) = (Some(self.now), Some(self.now));
        let (dp, dr) = self.insts[h.decode as usize];
        let drep = &mut self.pools[dp as usize].replicas[dr as usize];
        drep.queues.install(slot, group);
        drep.outstanding += self.reqs.get(slot).outstanding_tokens();
        self.try_start(h.decode);
        self.try_start(h.prefill);
    }

    /// The cluster GPUs of instance `i`.
    fn instance_gpus(&self, i: u32) -> Vec<u32> {
        let (p, r) = self.insts[i as usize];
        self.pools[p as usize].instance_gpus(r)
    }
}
