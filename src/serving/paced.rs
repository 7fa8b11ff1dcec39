//! Stage runs whose traffic crosses links shared with other replicas or stages.
//!
//! Which links are shared is decided from the plan before the run: a link crossed by
//! the collectives of more than one (replica, stage) is *tracked*, and so is every
//! link a `link_slowdown` what-if names (so a slowdown reaches transfers in flight),
//! and in a disaggregated run every NIC a KV handoff may cross: the pools' links are
//! numbered in one id space ([`FabricPart`]) and a handoff is booked here like any
//! transfer ([`SharedFabric::book_transfer`]), so it and the instances' traffic on a
//! NIC share it.
//! A stage whose collectives cross no tracked link is priced as before, in O(1) when
//! its batch forms. A stage that does is priced the same way, and then the part of its
//! run spent in the collectives that cross tracked links (their exposed time, summed
//! over the run: its *tail*) is booked on the [`LinkLedger`] as one transfer, from the
//! end of the rest of the run, with the bytes those collectives put on each tracked
//! link. Where other tails overlap it there, it stretches by what max-min sharing says,
//! and the tails it overlaps stretch too; their batches' completion events move.
//!
//! Simplifications, said plainly: a stage's shared traffic is gathered into one
//! transfer at the end of its run (exact for a PP send, which comes last; the TP and
//! EP collectives of a real run are spread over its layers, so which other traffic
//! they meet can differ, not how much time they need alone); and when a stage before
//! the last stretches after its batch was booked, the batch's later stages move by the
//! same amount without being priced again.

use super::links::{LinkLedger, Move, Owner, Transfer};
use super::replica::Replica;
use super::stage::StageRun;
use crate::engine::{EventQueue, SimTime};
use crate::hardware::topology::LinkId;
use crate::metrics::network::NetworkFacts;
use crate::metrics::recorder::{Activity, Recorder, Span};
use crate::parallel::ledger::{CommKind, GpuState};
use crate::parallel::plan::Plan;
use std::collections::{BTreeMap, BTreeSet};

/// What one (replica, stage) puts on tracked links.
#[derive(Clone, Debug, Default)]
struct UnitPace {
    /// First GPU of the stage.
    first_gpu: u32,
    /// GPUs of the stage.
    gpus: u32,
    /// Kinds whose collectives cross a tracked link.
    kinds: Vec<CommKind>,
    /// (local GPU, kind, link, link bytes per payload byte that GPU books).
    factors: Vec<(u32, CommKind, LinkId, f64)>,
}

/// One transfer on one tracked link, for the trace's per-link tracks.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinkSpan {
    /// The link.
    pub link: LinkId,
    /// Start of the transfer.
    pub start: SimTime,
    /// When it would have ended alone.
    pub alone_end: SimTime,
    /// When it ended.
    pub end: SimTime,
    /// Batch it belongs to (a KV handoff's: none, see `handoff`).
    pub batch: u64,
    /// Bytes it put on this link.
    pub bytes: f64,
    /// A KV handoff between pools rather than a stage's collectives.
    pub handoff: bool,
}

/// One plan's share of a fabric that several plans' GPUs live on (the pools of a
/// disaggregated run), its links and GPUs numbered in the fabric's ids.
pub struct FabricPart<'a> {
    /// The plan.
    pub plan: &'a Plan,
    /// The links each (replica, stage) crosses, by `replica * pp + stage` (fabric ids).
    pub unit_links: Vec<BTreeSet<LinkId>>,
    /// Links tracked whatever crosses them (fabric ids).
    pub extra: Vec<LinkId>,
    /// How each GPU's payload becomes link bytes (the plan's own GPU and link ids).
    pub facts: &'a NetworkFacts,
    /// The fabric id of the plan's link 0.
    pub link_base: LinkId,
    /// The cluster GPU of the plan's GPU 0.
    pub gpu_base: u32,
}

/// The tracked links of a run, the transfers on them, and who waits for each.
#[derive(Clone, Debug)]
pub struct SharedFabric {
    /// One ledger per group of stages joined through shared links (stages that never
    /// meet on a link never need to be simulated together).
    ledgers: Vec<LinkLedger>,
    /// The ledger of each unit.
    unit_ledger: Vec<usize>,
    /// The ledger of each tracked link some stage (or transfer between plans) crosses.
    link_ledger: BTreeMap<LinkId, usize>,
    /// One per (replica, stage), replica by replica; None for a stage with no tracked
    /// traffic.
    units: Vec<Option<UnitPace>>,
    /// The first unit of each replica (replicas numbered over every part).
    replica_unit: Vec<u32>,
    tracked: Vec<LinkId>,
    moves: Vec<Move>,
    /// Transfers on tracked links inside the timeline window, in finishing order.
    pub link_spans: Vec<LinkSpan>,
}

impl SharedFabric {
    /// The shared fabric of `plan`: `unit_links[r * pp + s]` are the links stage `s` of
    /// replica `r` crosses, `extra` links are tracked whatever crosses them, `facts`
    /// say how each GPU's payload becomes link bytes, `capacity` is each link's
    /// bytes / s. None when no link is tracked or no stage crosses one.
    pub fn build(
        plan: &Plan,
        unit_links: &[BTreeSet<LinkId>],
        extra: &[LinkId],
        facts: &NetworkFacts,
        capacity: &[f64],
    ) -> Option<Self> {
        let part = FabricPart {
            plan,
            unit_links: unit_links.to_vec(),
            extra: extra.to_vec(),
            facts,
            link_base: 0,
            gpu_base: 0,
        };
        Self::join(&[part], &[], capacity)
    }

    /// One fabric over the `parts` (replicas numbered part by part), where
    /// `transfer_links` are the links transfers between parts may cross (KV handoffs
    /// between pools): they are tracked, and joined into one ledger with every stage
    /// that crosses one, so a handoff and an instance's collective on one NIC share it.
    /// `capacity`: each link's bytes / s by fabric id. None when nothing is tracked, or
    /// no stage crosses a tracked link and there are no transfer links.
    pub fn join(parts: &[FabricPart], transfer_links: &[LinkId], capacity: &[f64]) -> Option<Self> {
        let mut groups: Vec<BTreeSet<LinkId>> = parts.iter().flat_map(|p| p.unit_links.iter().cloned()).collect();
        let shared = shared_between_units(&groups);
        let extra = parts.iter().flat_map(|p| p.extra.iter().copied());
        let tracked: BTreeSet<LinkId> = shared.into_keys().chain(extra).chain(transfer_links.iter().copied()).collect();
        if tracked.is_empty() {
            return None;
        }
        let (mut units, mut replica_unit) = (Vec::new(), Vec::new());
        for part in parts {
            let plan = part.plan;
            for r in 0..plan.dp {
                replica_unit.push(units.len() as u32);
                let pace = |s| unit_pace(plan.stage_first_gpu(r, s), plan.stage_size(), &tracked, part);
                units.extend((0..plan.pp).map(pace));
            }
        }
        if units.iter().all(Option::is_none) && transfer_links.is_empty() {
            return None;
        }
        // The transfer links as one more user: every link a transfer may cross joins
        // one ledger (a handoff meets the traffic on both of its ends).
        if !transfer_links.is_empty() {
            groups.push(transfer_links.iter().copied().collect());
        }
        let (mut unit_ledger, link_ledger, count) = components(&groups, &tracked);
        unit_ledger.truncate(units.len());
        Some(SharedFabric {
            ledgers: vec![LinkLedger::new(capacity); count],
            unit_ledger,
            link_ledger,
            units,
            replica_unit,
            tracked: tracked.into_iter().collect(),
            moves: Vec::new(),
            link_spans: Vec::new(),
        })
    }

    /// The index of stage `s` of replica `r` in `units`.
    fn unit_index(&self, r: u32, s: u32) -> usize {
        (self.replica_unit[r as usize] + s) as usize
    }

    /// The stage a transfer's owner is, if it is one with tracked traffic.
    fn unit_of(&self, owner: Owner) -> Option<&UnitPace> {
        let first = owner.is_stage().then(|| self.replica_unit.get(owner.replica as usize)).flatten()?;
        self.units.get((first + owner.stage) as usize)?.as_ref()
    }

    /// The links tracked.
    pub fn tracked(&self) -> &[LinkId] {
        &self.tracked
    }

    /// Books the tail of stage `s` of replica `r`'s run of `batch` (the run would end
    /// at `run_end` alone) and returns when it ends with the traffic already booked;
    /// transfers it slows are kept as moves for [`Self::take_moves`]. A stage with no
    /// tracked traffic ends at `run_end`.
    #[allow(clippy::too_many_arguments)]
    pub fn book_stage(
        &mut self,
        batch: u64,
        r: u32,
        s: u32,
        run: &StageRun,
        run_end: SimTime,
        now: SimTime,
        rec: &mut Recorder,
    ) -> SimTime {
        let u = self.unit_index(r, s);
        // A stage with no tracked traffic books nothing: the fabric settles at the next
        // booking that does (what it books then does not depend on when).
        if self.units[u].is_none() {
            return run_end;
        }
        self.settle(now, rec);
        let Some(unit) = &self.units[u] else { return run_end };
        let work_ns = (0..unit.gpus as usize)
            .map(|i| unit.kinds.iter().map(|k| run.gpus.get(i).map_or(0, |g| g.comm(*k))).sum::<u64>())
            .max()
            .unwrap_or(0);
        let mut bytes: BTreeMap<LinkId, f64> = BTreeMap::new();
        for &(i, k, l, f) in &unit.factors {
            *bytes.entry(l).or_default() += run.gpus.get(i as usize).map_or(0.0, |g| g.comm_bytes[k.index()]) * f;
        }
        if work_ns == 0 || bytes.values().all(|b| *b <= 0.0) {
            return run_end;
        }
        let owner = Owner { batch, replica: r, stage: s };
        let bytes: Vec<(LinkId, f64)> = bytes.into_iter().collect();
        let ledger = &mut self.ledgers[self.unit_ledger[u]];
        let id = ledger.book(owner, run_end - SimTime(work_ns.min(run_end.as_ns())), work_ns, &bytes);
        self.moves.extend(ledger.project().into_iter().filter(|m| m.owner != owner));
        ledger.get(id).map_or(run_end, Transfer::finish)
    }

    /// Books a transfer of `link_bytes` (bytes on each link of its route) that takes
    /// `work_ns` alone from `start` for `owner` (a KV handoff between pools); returns
    /// its projected end, rounded up to the ns of its last byte when it is slowed. Only
    /// its bytes on tracked links are shared, on the ledger of the first; the moves it
    /// causes wait in [`Self::take_moves`].
    pub fn book_transfer(
        &mut self,
        owner: Owner,
        start: SimTime,
        work_ns: u64,
        link_bytes: &[(LinkId, f64)],
        now: SimTime,
        rec: &mut Recorder,
    ) -> SimTime {
        self.settle(now, rec);
        if work_ns == 0 {
            return start;
        }
        // The links a transfer between parts may cross share one ledger (see `join`).
        let Some(k) = link_bytes.iter().find_map(|(l, _)| self.link_ledger.get(l).copied()) else {
            return start + SimTime(work_ns);
        };
        let on_tracked: Vec<(LinkId, f64)> =
            link_bytes.iter().copied().filter(|(l, _)| self.link_ledger.get(l) == Some(&k)).collect();
        let ledger = &mut self.ledgers[k];
        let id = ledger.book_bytes(owner, start, work_ns, &on_tracked);
        self.moves.extend(ledger.project().into_iter().filter(|m| m.owner != owner));
        ledger.get(id).map_or(start + SimTime(work_ns), Transfer::finish)
    }

    /// Link capacities changed (a what-if) at `now`: transfers in flight run at the new
    /// shares from now on; their moves wait in [`Self::take_moves`].
    pub fn capacities_changed(&mut self, now: SimTime, capacity: &[f64], rec: &mut Recorder) {
        self.settle(now, rec);
        for ledger in &mut self.ledgers {
            for &l in &self.tracked {
                if let Some(c) = capacity.get(l as usize) {
                    ledger.set_capacity(l, *c);
                }
            }
            self.moves.extend(ledger.project());
        }
    }

    /// Transfers whose end moved since the last call.
    pub fn take_moves(&mut self) -> Vec<Move> {
        std::mem::take(&mut self.moves)
    }

    /// Drops the transfers of a lost batch.
    pub fn cancel_batch(&mut self, batch: u64) {
        self.ledgers.iter_mut().for_each(|l| l.cancel_batch(batch));
    }

    /// Commits the fluid model to `now` and books, for every transfer finished by then,
    /// the time it lost to sharing: the GPUs that move its bytes were communicating
    /// (and lost it to contention), the other GPUs of the stage waited for them.
    pub fn settle(&mut self, now: SimTime, rec: &mut Recorder) {
        let done: Vec<Transfer> = self.ledgers.iter_mut().flat_map(|l| l.advance(now)).collect();
        for t in done {
            if rec.wants_spans(t.alone_end() - SimTime(t.work_ns), t.finish()) {
                for &(link, per_ns) in &t.demand {
                    let bytes = per_ns * t.work_ns as f64;
                    let (start, alone_end, end, batch) =
                        (SimTime(t.start_ns), t.alone_end(), t.finish(), t.owner.batch);
                    let handoff = !t.owner.is_stage();
                    self.link_spans.push(LinkSpan { link, start, alone_end, end, batch, bytes, handoff });
                }
            }
            let lost = t.finish().as_ns().saturating_sub(t.alone_end().as_ns());
            if let (true, Some(unit)) = (lost > 0, self.unit_of(t.owner)) {
                book_lost(unit, &t, lost, rec);
            }
        }
    }
}

/// Links crossed by the collectives of more than one unit (`unit_links[u]`: the links
/// unit `u` = replica x pp + stage crosses), with the units crossing each.
pub fn shared_between_units(unit_links: &[BTreeSet<LinkId>]) -> BTreeMap<LinkId, Vec<u32>> {
    let mut users: BTreeMap<LinkId, Vec<u32>> = BTreeMap::new();
    for (u, links) in unit_links.iter().enumerate() {
        for l in links {
            users.entry(*l).or_default().push(u as u32);
        }
    }
    users.retain(|_, v| v.len() > 1);
    users
}

/// Groups of units joined through tracked links (union-find): each unit's group, each
/// tracked link's group, and how many groups. Every unit has a group (alone if it
/// shares nothing).
fn components(
    unit_links: &[BTreeSet<LinkId>],
    tracked: &BTreeSet<LinkId>,
) -> (Vec<usize>, BTreeMap<LinkId, usize>, usize) {
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    let mut parent: Vec<usize> = (0..unit_links.len()).collect();
    let mut first_user: BTreeMap<LinkId, usize> = BTreeMap::new();
    for (u, links) in unit_links.iter().enumerate() {
        for l in links.iter().filter(|l| tracked.contains(l)) {
            match first_user.get(l) {
                Some(&v) => {
                    let (a, b) = (root(&mut parent, u), root(&mut parent, v));
                    parent[a] = b;
                }
                None => {
                    first_user.insert(*l, u);
                }
            }
        }
    }
    let mut index: BTreeMap<usize, usize> = BTreeMap::new();
    let unit_group: Vec<usize> = (0..unit_links.len())
        .map(|u| {
            let (r, next) = (root(&mut parent, u), index.len());
            *index.entry(r).or_insert(next)
        })
        .collect();
    let link_group = first_user.into_iter().map(|(l, u)| (l, unit_group[u])).collect();
    (unit_group, link_group, index.len())
}

/// Follows `moves` (each with whether the pipeline already moved its replica's
/// clocks): every moved batch's completion event goes to its new time, and stage 0
/// freeing up is announced again (`stage0_free(replica)`) when its clock moved.
pub fn follow_moves<E>(
    moves: Vec<(Move, bool)>,
    replicas: &mut [Replica],
    queue: &mut EventQueue<E>,
    now: SimTime,
    rec: &mut Recorder,
    stage0_free: impl Fn(u32) -> E,
) {
    for (mv, applied) in moves {
        let Some(rep) = replicas.get_mut(mv.owner.replica as usize) else { continue };
        if !applied {
            apply_move(rep, &mv, now, rec);
        }
        if let Some(b) = rep.in_flight.iter_mut().find(|b| b.batch == mv.owner.batch) {
            if let Some(id) = queue.reschedule(b.done_event, b.done_at) {
                b.done_event = id;
            }
        }
        if mv.owner.stage == 0 && rep.stage_free.len() > 1 {
            queue.schedule(rep.stage_free[0].max(now), stage0_free(mv.owner.replica));
        }
    }
}

/// Moves what waits on a transfer of replica `rep` whose end moved: its stage's clock
/// (when that batch is the stage's latest), the batch's completion (later stages move
/// by the same amount, unpriced) and the last stage's clock with it.
pub fn apply_move(rep: &mut Replica, mv: &Move, now: SimTime, rec: &mut Recorder) {
    let shift = |t: SimTime| SimTime(t.as_ns().saturating_add_signed(mv.delta_ns)).max(now);
    let (s, last) = (mv.owner.stage as usize, rep.stage_free.len() - 1);
    // Only batches in flight have clocks to move (a transfer of another owner, such as
    // a KV handoff, is its booker's to follow).
    let Some(b) = rep.in_flight.iter_mut().find(|b| b.batch == mv.owner.batch) else { return };
    if s < last && rep.stage_free[s] == SimTime(mv.from_ns) {
        rep.stage_free[s] = shift(SimTime(mv.from_ns));
    }
    let (old, new) = (b.done_at, shift(b.done_at));
    b.done_at = new;
    if rep.stage_free[last] == old {
        rep.stage_free[last] = new;
    }
    if new > rep.period_end {
        // Pipeline capacity counts pp x the time the replica has a batch in flight.
        rec.pipeline_capacity_ns += (last as u128 + 1) * (new - rep.period_end).as_ns() as u128;
        rep.period_end = new;
    }
}

/// Books `lost` ns of transfer `t` on the GPUs of its stage.
fn book_lost(unit: &UnitPace, t: &Transfer, lost: u64, rec: &mut Recorder) {
    for i in 0..unit.gpus {
        let g = unit.first_gpu + i;
        let mine = unit.factors.iter().find(|f| f.0 == i).map(|f| f.1);
        let kind = mine.unwrap_or(unit.kinds[0]);
        let state = if mine.is_some() {
            rec.ledger.communicate(g, kind, lost);
            rec.ledger.contend(g, lost);
            GpuState::Communicate
        } else {
            rec.ledger.wait(g, kind, lost);
            GpuState::Wait
        };
        let what = match kind {
            CommKind::Tp => Activity::TpAllReduce,
            CommKind::Ep => Activity::EpAllToAll,
            _ => Activity::PpSendRecv,
        };
        let (start, end, batch) = (t.alone_end(), t.finish(), t.owner.batch);
        rec.span(Span { gpu: g, start, end, state, what, batch, flops: 0.0, bytes: 0.0 });
    }
    rec.pipeline_stage_busy_ns += lost as u128;
}

/// A stage's traffic on tracked links, per GPU and kind, from its part's network facts
/// (`first_gpu`: the stage's first GPU in the part's plan).
fn unit_pace(first_gpu: u32, gpus: u32, tracked: &BTreeSet<LinkId>, part: &FabricPart) -> Option<UnitPace> {
    let (facts, first) = (part.facts, first_gpu + part.gpu_base);
    let mut unit = UnitPace { first_gpu: first, gpus, ..Default::default() };
    for i in 0..gpus {
        let Some(groups) = facts.gpu_groups.get((first_gpu + i) as usize) else { continue };
        for k in CommKind::ALL {
            let Some(group) = groups[k.index()].and_then(|g| facts.groups.get(g as usize)) else { continue };
            for &(l, f) in &group.link_bytes_per_payload {
                let l = l + part.link_base;
                if tracked.contains(&l) && f > 0.0 {
                    unit.factors.push((i, k, l, f));
                    if !unit.kinds.contains(&k) {
                        unit.kinds.push(k);
                    }
                }
            }
        }
    }
    (!unit.factors.is_empty()).then_some(unit)
}
