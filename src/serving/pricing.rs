//! Prices the serving run's collectives as affine functions of their payload.
//!
//! A serving run does hundreds of collectives per iteration and ~10^5 iterations per
//! replica, so each is priced in O(1). A group's collective on links that carry nothing
//! else takes its closed-form time, which the flow-level network reproduces exactly on
//! idle links (see tests/network.rs). [`closed_form_affine`] splits it into latency and
//! per-byte parts once per group, and again when a what-if changes a link; each
//! collective is then a multiply-add.
//! On top come the software stack's costs: its launch overhead per collective, its
//! extra latency per step, and its share of the link bandwidth.

use super::stage::StageComm;
use crate::error::Result;
use crate::hardware::topology::Topology;
use crate::hardware::topology::{LinkId, LinkKind};
use crate::metrics::network::{GroupFact, LinkFact, NetworkFacts};
use crate::model::framework::FrameworkProfile;
use crate::parallel::collective::convex_closed_form;
use crate::parallel::collective::{auto_candidates, custom_window, is_chunked, resolve_all_reduce, CHUNK_OPTIONS};
use crate::parallel::collective::{AllReduceAlgorithm, CollectiveOp};
use crate::parallel::fabric::{concurrent_prices, serving_all_to_all, shared_links, Member, SetPrice};
use crate::parallel::ledger::CommKind;
use crate::parallel::plan::Plan;
use crate::parallel::price::{cheapest_somewhere, Affine, Convex, Price};
use crate::scenario::Setup;
use std::collections::{BTreeMap, BTreeSet};

/// Prices collectives over groups of GPUs.
#[derive(Clone, Debug)]
pub struct Pricer {
    topo: Topology,
    nominal: Topology,
    all_reduce: AllReduceAlgorithm,
    framework: FrameworkProfile,
    collective_overhead_ns: f64,
}

impl Pricer {
    /// A pricer for the scenario's cluster and software stack.
    pub fn new(setup: &Setup) -> Result<Self> {
        let topo = Topology::new(setup.nodes, setup.gpus_per_node, &setup.nvlink, &setup.network)?;
        let overhead_us = setup.parallel.collective_overhead_us;
        Ok(Pricer::on(topo, setup.parallel.all_reduce, setup.framework.clone(), overhead_us))
    }

    /// A pricer over `topo` with the all-reduce choice `all_reduce`, the software stack
    /// `framework` and a fixed extra cost per collective of `collective_overhead_us`.
    pub fn on(
        topo: Topology,
        all_reduce: AllReduceAlgorithm,
        framework: FrameworkProfile,
        collective_overhead_us: f64,
    ) -> Self {
        Pricer {
            nominal: topo.clone(),
            topo,
            all_reduce,
            framework,
            collective_overhead_ns: collective_overhead_us * 1e3,
        }
    }

    /// What-if: one link class (NVLink, or the NICs), on one node or all, at
    /// `fraction` of its nominal bandwidth.
    pub fn set_link_fraction(&mut self, nvlink: bool, node: Option<u32>, fraction: f64) {
        let per_node = self.topo.gpus_per_node();
        let nodes = match node {
            Some(n) => n..n + 1,
            None => 0..self.topo.nodes(),
        };
        for n in nodes {
            for g in n * per_node..(n + 1) * per_node {
                let links = if nvlink {
                    [self.topo.nvlink_up(g), self.topo.nvlink_down(g)]
                } else {
                    let nic = self.topo.nic_of(g);
                    [self.topo.nic_up(nic), self.topo.nic_down(nic)]
                };
                for l in links {
                    let nominal = self.nominal.link(l).bytes_per_s;
                    self.topo.set_link_capacity(l, nominal * fraction);
                }
            }
        }
    }

    /// The two links (up, down) of NIC `index` of `node`, or with `nvlink` of the
    /// NVLink of GPU `index` of `node`.
    pub fn node_links(&self, nvlink: bool, node: u32, index: u32) -> [LinkId; 2] {
        if nvlink {
            let g = node * self.topo.gpus_per_node() + index;
            [self.topo.nvlink_up(g), self.topo.nvlink_down(g)]
        } else {
            let nic = node * self.topo.nics_per_node() + index;
            [self.topo.nic_up(nic), self.topo.nic_down(nic)]
        }
    }

    /// Nodes of the cluster.
    pub fn nodes(&self) -> u32 {
        self.topo.nodes()
    }

    /// Every link a (NVLink) or NIC (not `nvlink`) slowdown of `node` (all nodes when
    /// None) touches.
    pub fn class_links(&self, nvlink: bool, node: Option<u32>) -> Vec<LinkId> {
        let per_node = if nvlink { self.topo.gpus_per_node() } else { self.topo.nics_per_node() };
        let nodes = node.map_or(0..self.topo.nodes(), |n| n..n + 1);
        nodes.flat_map(|n| (0..per_node).flat_map(move |i| self.node_links(nvlink, n, i))).collect()
    }

    /// A link for people (see [`describe_link`]).
    pub fn link_name(&self, link: LinkId) -> String {
        describe_link(&self.topo, link)
    }

    /// Each link's bandwidth now (what-ifs applied), bytes / s, by link id.
    pub fn link_capacities(&self) -> Vec<f64> {
        self.topo.links().iter().map(|l| l.bytes_per_s).collect()
    }

    /// Every link the collectives of stage `s` of replica `r` cross (a TP all-reduce:
    /// the links of any algorithm it may run).
    pub fn unit_links(&self, plan: &Plan, r: u32, s: u32) -> BTreeSet<LinkId> {
        let [_, (_, ep), (_, pp)] = self.stage_sets(plan, r, s);
        let tp = (0..plan.ep).flat_map(|e| self.all_reduce_options(&plan.tp_group(r, s, e)));
        ep.into_iter().chain(pp).chain(tp).filter(|m| m.ranks.len() > 1).flat_map(|m| m.links(&self.topo)).collect()
    }

    /// A point-to-point transfer of `bytes` from GPU `src` to GPU `dst` alone: its
    /// time (stack costs included) and the bytes it puts on each link of its route.
    pub fn transfer(&self, src: u32, dst: u32, bytes: f64) -> (u64, Vec<(LinkId, f64)>) {
        let ns = self.send(src, dst).ns(bytes);
        (ns, self.topo.route(src, dst).links().iter().map(|l| (*l, bytes)).collect())
    }

    /// Prices a set of collectives that start together (see [`concurrent_prices`]),
    /// stack costs included (see [`Self::with_stack`]).
    fn priced(&self, members: &[Member]) -> Vec<SetPrice> {
        let prices = concurrent_prices(&self.topo, members);
        members.iter().zip(prices).map(|(m, p)| self.with_stack(m, p)).collect()
    }

    /// A member's price with the stack's costs added: the scenario's fixed cost per
    /// collective, and the stack's launch, per-step latency (over the algorithm's real
    /// steps) and share of the link bandwidth.
    fn with_stack(&self, m: &Member, p: SetPrice) -> SetPrice {
        if m.ranks.len() < 2 {
            return SetPrice { affine: Affine::default(), contended: false };
        }
        SetPrice { affine: self.stack(m, p.affine), ..p }
    }

    /// `a` with the stack's costs for member `m` added (see [`Self::with_stack`]).
    fn stack(&self, m: &Member, a: Affine) -> Affine {
        self.stack_steps(m.schedule(&self.topo, 1.0).map_or(0, |s| s.steps()), a)
    }

    /// `a` with the stack's costs for a collective of `steps` steps added.
    fn stack_steps(&self, steps: usize, a: Affine) -> Affine {
        let extra = self.framework.collective_extra_ns(steps as f64) + self.collective_overhead_ns;
        Affine { fixed_ns: a.fixed_ns + extra, per_byte_ns: a.per_byte_ns / self.framework.collective_efficiency }
    }

    /// The ways a TP all-reduce over `gpus` may run, one member each: the scenario's
    /// algorithm, or with `auto` every candidate NCCL's tuner weighs
    /// ([`auto_candidates`]) and the stack's own one-shot and two-shot kernels where
    /// they run; a chunked one at each of [`CHUNK_OPTIONS`]. Each has a convex price
    /// (closed to the sizes the rule gives it, [`Self::window`]); only those cheapest
    /// alone (stack costs included) at some size are kept, so the cheapest kept at a size
    /// is `auto`'s choice there (`parallel::collective::choose_all_reduce`, with NCCL's
    /// part weighing the stack's per-step costs too). Ordered by per-byte cost, steepest
    /// first.
    fn all_reduce_options(&self, gpus: &[u32]) -> Vec<Member> {
        let algs = match self.all_reduce {
            AllReduceAlgorithm::Auto => {
                let mut algs = auto_candidates(&self.topo, gpus);
                if self.custom_max_bytes() > 0.0 {
                    let own = [AllReduceAlgorithm::OneShot, AllReduceAlgorithm::TwoShot];
                    algs.extend(own.into_iter().filter(|&a| resolve_all_reduce(&self.topo, a, gpus) == a));
                }
                algs
            }
            a => vec![resolve_all_reduce(&self.topo, a, gpus)],
        };
        let chunks = |alg| if is_chunked(alg) { CHUNK_OPTIONS.map(Some).to_vec() } else { vec![None] };
        let all: Vec<Member> = algs
            .into_iter()
            .flat_map(|alg| {
                chunks(alg)
                    .into_iter()
                    .map(move |chunks| Member { chunks, ..Member::new(CollectiveOp::AllReduce, alg, gpus.to_vec()) })
            })
            .collect();
        let alone: Vec<Convex> = all.iter().map(|m| self.alone_convex(m)).collect();
        let keep = cheapest_somewhere(&alone);
        let mut kept: Vec<(f64, Member)> = all
            .into_iter()
            .zip(&alone)
            .zip(keep)
            .filter(|(_, k)| *k)
            .map(|((m, c), _)| (c.0.iter().map(|a| a.per_byte_ns).fold(0.0, f64::max), m))
            .collect();
        kept.sort_by(|a, b| b.0.total_cmp(&a.0));
        kept.into_iter().map(|(_, m)| m).collect()
    }

    /// A member's price alone on idle links, stack costs included, at every size (its
    /// closed form bends where a step's slowest transfer changes tier).
    fn alone_convex(&self, m: &Member) -> Convex {
        let Ok(schedule) = m.schedule(&self.topo, 1.0) else { return Convex::default() };
        if m.ranks.len() < 2 {
            return Convex::default();
        }
        let steps = schedule.steps();
        let pieces = convex_closed_form(&self.topo, &schedule, 1.0).into_iter().map(|a| self.stack_steps(steps, a));
        Convex(pieces.chain(self.window(m)).collect())
    }

    /// The stack's kernel buffer, bytes (0: none).
    fn custom_max_bytes(&self) -> f64 {
        self.framework.custom_all_reduce_max_bytes as f64
    }

    /// Pieces that close member `m`'s price outside the sizes `auto` runs it at (the
    /// stack's kernels below its buffer size, NCCL's algorithms from there;
    /// [`custom_window`]); none for a scenario's fixed algorithm.
    fn window(&self, m: &Member) -> Vec<Affine> {
        match self.all_reduce {
            AllReduceAlgorithm::Auto => custom_window(&self.topo, m.alg, &m.ranks, self.custom_max_bytes()),
            _ => Vec::new(),
        }
    }

    /// A member's price alone on idle links, stack costs included.
    fn alone(&self, m: &Member) -> Affine {
        self.with_stack(m, SetPrice { affine: m.closed_form(&self.topo), contended: false }).affine
    }

    /// The TP all-reduce over `gpus` that carries most of the bytes: `auto`'s choice for
    /// large payloads (the flattest of [`Self::all_reduce_options`]). Link traffic and
    /// contention reports follow its routes.
    fn all_reduce_member(&self, gpus: Vec<u32>) -> Member {
        let mut options = self.all_reduce_options(&gpus);
        options.pop().unwrap_or_else(|| Member::new(CollectiveOp::AllReduce, AllReduceAlgorithm::Ring, gpus))
    }

    /// An EP all-to-all over `gpus`, posted as serving engines post it.
    fn all_to_all_member(&self, gpus: Vec<u32>) -> Member {
        let a2a = serving_all_to_all(&self.topo, &gpus);
        Member { a2a, ..Member::new(CollectiveOp::AllToAll, AllReduceAlgorithm::Auto, gpus) }
    }

    /// The collectives of stage `s` of replica `r` that start together, by kind: the
    /// TP all-reduces of every EP group, the EP all-to-alls of every TP rank, and the
    /// pipeline sends of every GPU of the stage.
    pub fn stage_sets(&self, plan: &Plan, r: u32, s: u32) -> [(CommKind, Vec<Member>); 3] {
        let tp = (0..plan.ep).map(|e| self.all_reduce_member(plan.tp_group(r, s, e))).collect();
        let ep = (0..plan.tp).map(|t| self.all_to_all_member(plan.ep_group(r, s, t))).collect();
        let send =
            |g: &u32| Member::new(CollectiveOp::SendRecv, AllReduceAlgorithm::Auto, vec![*g, g + plan.stage_size()]);
        let pp = if s + 1 < plan.pp { plan.stage_gpus(r, s).iter().map(send).collect() } else { Vec::new() };
        [(CommKind::Tp, tp), (CommKind::Ep, ep), (CommKind::Pp, pp)]
    }

    /// The price of a TP all-reduce over `gpus` alone: the cheapest of its options at
    /// each size.
    pub fn all_reduce(&self, gpus: &[u32]) -> Price {
        Price(self.all_reduce_options(gpus).iter().map(|m| self.alone_convex(m)).collect())
    }

    /// The TP all-reduces of the EP groups `groups` (one stage), priced together: each
    /// option runs with the same option of the other groups (they run the same sizes,
    /// so `auto` picks the same for all), and each group's price is the cheapest of its
    /// options at each size.
    fn tp_prices(&self, groups: &[Vec<u32>]) -> Vec<Price> {
        let options: Vec<Vec<Member>> = groups.iter().map(|g| self.all_reduce_options(g)).collect();
        let keys: BTreeSet<(AllReduceAlgorithm, Option<usize>)> =
            options.iter().flatten().map(|m| (m.alg, m.chunks)).collect();
        let mut prices = vec![Vec::new(); groups.len()];
        for key in keys {
            let (idx, set): (Vec<usize>, Vec<Member>) = options
                .iter()
                .enumerate()
                .filter_map(|(e, o)| o.iter().find(|m| (m.alg, m.chunks) == key).map(|m| (e, m.clone())))
                .unzip();
            // Alone on their links they keep the closed form at every size; sharing
            // links, the flow model's fit.
            for ((e, p), m) in idx.into_iter().zip(self.priced(&set)).zip(&set) {
                let contended = || Convex(std::iter::once(p.affine).chain(self.window(m)).collect());
                prices[e].push(if p.contended { contended() } else { self.alone_convex(m) });
            }
        }
        prices.into_iter().map(Price).collect()
    }

    /// The price of an EP all-to-all over `gpus`, per byte of the largest volume one
    /// rank sends or receives. Pairwise exchange of S bytes per rank moves (n-1)/n x S
    /// off each rank, so the per-byte rate is scaled by n/(n-1).
    fn per_rank_volume(a: Affine, n: usize) -> Affine {
        if n < 2 {
            return Affine::default();
        }
        let n = n as f64;
        Affine { per_byte_ns: a.per_byte_ns * n / (n - 1.0), ..a }
    }

    /// The price of an EP all-to-all over `gpus` alone (see [`Self::stage_comm`]).
    pub fn all_to_all(&self, gpus: &[u32]) -> Affine {
        let m = self.all_to_all_member(gpus.to_vec());
        Self::per_rank_volume(self.priced(&[m])[0].affine, gpus.len())
    }

    /// The price of a PP send from `src` to `dst` alone.
    pub fn send(&self, src: u32, dst: u32) -> Affine {
        let m = Member::new(CollectiveOp::SendRecv, AllReduceAlgorithm::Auto, vec![src, dst]);
        self.priced(&[m])[0].affine
    }

    /// Every collective of stage `s` of replica `r` of `plan`, priced with the others
    /// that start at the same instant: members that share a link get the flow model's
    /// shares, the others their closed forms.
    pub fn stage_comm(&self, plan: &Plan, r: u32, s: u32) -> StageComm {
        let [_, (_, ep), (_, pp)] = self.stage_sets(plan, r, s);
        let tp_groups: Vec<Vec<u32>> = (0..plan.ep).map(|e| plan.tp_group(r, s, e)).collect();
        StageComm {
            tp_allreduce: self.tp_prices(&tp_groups),
            ep_alltoall: self
                .priced(&ep)
                .into_iter()
                .zip(&ep)
                .map(|(p, m)| Self::per_rank_volume(p.affine, m.ranks.len()))
                .collect(),
            pp_send: self.priced(&pp).into_iter().map(|p| p.affine).collect(),
        }
    }

    /// The collective sets of `plan` whose members share links, with what they share.
    pub fn contention(&self, plan: &Plan) -> Vec<Sharing> {
        let mut out = Vec::new();
        for r in 0..plan.dp {
            for s in 0..plan.pp {
                for (kind, members) in self.stage_sets(plan, r, s) {
                    let shared = shared_links(&self.topo, &members);
                    if shared.is_empty() {
                        continue;
                    }
                    let links = shared.keys().map(|l| describe_link(&self.topo, *l)).collect();
                    let groups = members.into_iter().map(|m| m.ranks).collect();
                    out.push(Sharing { replica: r, stage: s, kind, groups, links });
                }
            }
        }
        out
    }
}

impl Pricer {
    /// How payload becomes link traffic for every group of `plan`, and what sharing
    /// links costs each group per payload byte (for the report's network section).
    pub fn network_facts(&self, plan: &Plan) -> NetworkFacts {
        let links = (0..self.topo.links().len() as u32)
            .map(|l| LinkFact {
                name: describe_link(&self.topo, l),
                kind: self.topo.link(l).kind,
                bytes_per_s: self.topo.link(l).bytes_per_s,
            })
            .collect();
        let mut facts =
            NetworkFacts { links, groups: Vec::new(), gpu_groups: vec![[None; 4]; self.topo.gpus() as usize] };
        for r in 0..plan.dp {
            for s in 0..plan.pp {
                for (kind, members) in self.stage_sets(plan, r, s) {
                    let together = self.priced(&members);
                    for (m, p) in members.iter().zip(together) {
                        self.add_group(&mut facts, kind, m, p.affine);
                    }
                }
            }
        }
        facts
    }

    /// One group's traffic per payload byte a recording member books: TP and EP
    /// members all book the payload (all-to-all: the volume to the others, (n-1)/n of
    /// the nccl-tests size); a PP send is booked by its sender only.
    fn add_group(&self, facts: &mut NetworkFacts, kind: CommKind, m: &Member, priced: Affine) {
        if m.ranks.len() < 2 {
            return;
        }
        let Ok(schedule) = m.schedule(&self.topo, 1.0) else { return };
        let n = m.ranks.len() as f64;
        let (recorders, scale) = match m.op {
            CollectiveOp::SendRecv => (&m.ranks[..1], 1.0),
            CollectiveOp::AllToAll => (&m.ranks[..], n / (n - 1.0) / n),
            _ => (&m.ranks[..], 1.0 / n),
        };
        let mut per_link: BTreeMap<u32, f64> = BTreeMap::new();
        for phase in &schedule.phases {
            for t in &phase.transfers {
                for &l in self.topo.route(t.src, t.dst).links() {
                    *per_link.entry(l).or_default() += t.bytes * phase.repeat as f64 * scale;
                }
            }
        }
        let alone = self.alone(m);
        let volume = if m.op == CollectiveOp::AllToAll { n / (n - 1.0) } else { 1.0 };
        let group = facts.groups.len() as u32;
        facts.groups.push(GroupFact {
            link_bytes_per_payload: per_link.into_iter().collect(),
            contention_ns_per_byte: (priced.per_byte_ns - alone.per_byte_ns).max(0.0) * volume,
        });
        for &g in recorders {
            facts.gpu_groups[g as usize][kind.index()] = Some(group);
        }
    }
}

/// Collectives of one stage that start together and share links.
#[derive(Clone, Debug, PartialEq)]
pub struct Sharing {
    /// DP replica.
    pub replica: u32,
    /// Pipeline stage.
    pub stage: u32,
    /// Which collectives.
    pub kind: CommKind,
    /// Each member's GPUs.
    pub groups: Vec<Vec<u32>>,
    /// The links more than one member crosses, described.
    pub links: Vec<String>,
}

/// A link for people: "NIC 3 up (node 1)", "spine uplink of leaf 0".
pub fn describe_link(topo: &Topology, id: LinkId) -> String {
    let l = topo.link(id);
    match l.kind {
        LinkKind::NvlinkUp => format!("NVLink up of GPU {}", l.owner),
        LinkKind::NvlinkDown => format!("NVLink down of GPU {}", l.owner),
        LinkKind::NicUp => format!("NIC {} up", l.owner),
        LinkKind::NicDown => format!("NIC {} down", l.owner),
        LinkKind::LeafUp => format!("spine uplink of leaf {}", l.owner),
        LinkKind::LeafDown => format!("spine downlink of leaf {}", l.owner),
    }
}
