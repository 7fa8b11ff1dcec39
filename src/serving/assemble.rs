//! Builds what a serving run needs from a validated scenario: the plan, the cost
//! model behind the stage executor, every group's collective prices, and the KV
//! capacity left after weights and workspace.

use super::stage::{StageComm, StageCosts, Work};
use crate::error::Result;
use crate::hardware::spec::GIB;
use crate::metrics::report::ReportContext;
use crate::model::cost::{BatchShape, CostModel, OpCost};
use crate::model::memory::{
    activation_bytes, plan_memory, stage_kv_bytes_per_token, stage_weight_bytes, window_kv_reserve_bytes, MemoryRequest,
};
use crate::parallel::plan::Plan;
use crate::scenario::types::{LinkClass, WhatIfEvent};
use crate::scenario::Setup;

use super::pricing::Pricer;
use crate::hardware::topology::LinkId;
use std::cell::RefCell;
use std::collections::BTreeSet;

/// The cost model seen through the executor's [`StageCosts`].
pub struct ModelCosts {
    model: CostModel,
    /// Operators whose price depends on one token count only, remembered by that count:
    /// a long replay asks for the same few hundred counts millions of times.
    memo: RefCell<TokenMemo>,
}

/// Remembered prices by token count (`None` until first asked).
#[derive(Default)]
struct TokenMemo {
    mlp: Vec<Option<Work>>,
    lm_head: Vec<Option<Work>>,
    embedding: Vec<Option<Work>>,
    attention_projections: Vec<Option<Work>>,
}

/// Counts above this are priced afresh each time (memory stays small).
const MEMO_TOKENS: usize = 1 << 16;

/// The price for `n` from `table`, computing and keeping it on first use.
fn remembered(table: &mut Vec<Option<Work>>, n: u32, price: impl FnOnce() -> Work) -> Work {
    let i = n as usize;
    if i >= MEMO_TOKENS {
        return price();
    }
    if table.len() <= i {
        table.resize(i + 1, None);
    }
    *table[i].get_or_insert_with(price)
}

impl ModelCosts {
    /// The stage pricer's view of `model`.
    pub fn new(model: CostModel) -> Self {
        ModelCosts { model, memo: RefCell::new(TokenMemo::default()) }
    }
}

fn sum(ops: &[OpCost]) -> Work {
    Work { ns: ops.iter().map(|o| o.time.as_ns() as f64).sum(), flops: ops.iter().map(|o| o.flops).sum() }
}

impl StageCosts for ModelCosts {
    fn attention(&self, shape: &BatchShape) -> Work {
        if self.model.has_latent_attention() {
            return sum(&self.model.attention_block(shape));
        }
        // The projections and norms depend on the token count only: remembered. (Sums
        // of whole ns and of whole FLOP counts, so the order does not change them.)
        let tokens = shape.tokens();
        let fixed = remembered(&mut self.memo.borrow_mut().attention_projections, tokens, || {
            sum(&self.model.attention_projections(tokens))
        });
        let core = sum(&[self.model.attention_core(shape)]);
        Work { ns: fixed.ns + core.ns, flops: fixed.flops + core.flops }
    }
    fn mlp(&self, tokens: u32) -> Work {
        remembered(&mut self.memo.borrow_mut().mlp, tokens, || sum(&[self.model.dense_mlp(tokens)]))
    }
    fn moe(&self, tokens: u32, local: &[u32]) -> Work {
        sum(&self.model.moe_block(tokens, local))
    }
    fn lm_head(&self, seqs: u32) -> Work {
        if seqs == 0 {
            return Work::default();
        }
        remembered(&mut self.memo.borrow_mut().lm_head, seqs, || sum(&[self.model.lm_head(seqs)]))
    }
    fn embedding(&self, tokens: u32) -> Work {
        remembered(&mut self.memo.borrow_mut().embedding, tokens, || sum(&[self.model.embedding(tokens)]))
    }
    fn draft(&self, shape: &BatchShape, local_experts: u32) -> Work {
        sum(&self.model.draft_block(shape, local_experts))
    }
    fn tp_bytes(&self, tokens: u32) -> f64 {
        self.model.tp_allreduce_bytes(tokens)
    }
    fn pp_bytes(&self, tokens: u32) -> f64 {
        self.model.pp_transfer_bytes(tokens)
    }
    fn ep_bytes_per_choice(&self) -> f64 {
        self.model.ep_bytes_per_choice()
    }
    fn ep_combine_bytes_per_choice(&self) -> f64 {
        self.model.ep_combine_bytes_per_choice()
    }
    fn kernels_per_layer(&self, shape: &BatchShape) -> u32 {
        // The same ops the stage prices, counted: an MoE layer's experts as the MLP's
        // three GEMMs (grouped GEMMs launch one kernel per matrix).
        let attention: u32 = self.model.attention_block(shape).iter().map(|o| o.kernels).sum();
        attention + self.model.dense_mlp(shape.tokens()).kernels
    }
}

/// Everything a serving run is built from.
pub struct Assembly {
    /// The plan.
    pub plan: Plan,
    /// Operator costs.
    pub costs: Box<dyn StageCosts>,
    /// Collective prices, `[replica][stage]`.
    pub comm: Vec<Vec<StageComm>>,
    /// KV blocks of each attention data-parallel group's pool (one per EP rank of a
    /// stage, each on its own `tp` GPUs; the binding stage's).
    pub kv_blocks_per_group: u32,
    /// Facts for the report.
    pub report: ReportContext,
    first_moe_layer: u32,
    moe: bool,
    pricer: Pricer,
}

impl Assembly {
    /// Builds the run's pieces from `setup`.
    pub fn build(setup: &Setup) -> Result<Assembly> {
        let p = &setup.parallel;
        let m = &setup.model;
        let plan =
            Plan { dp: p.dp, pp: p.pp, ep: p.ep, tp: p.tp, gpus_per_node: setup.gpus_per_node, layers: m.layers };
        let req = MemoryRequest {
            tp: p.tp,
            pp: p.pp,
            ep: p.ep,
            max_batch_tokens: setup.serving.max_batch_tokens,
            max_seqs: setup.serving.max_seqs,
            kv_block_tokens: setup.serving.kv_block_tokens,
            gpu_memory_utilization: setup.serving.gpu_memory_utilization,
        };
        let mem = plan_memory(m, &setup.gpu, &req).map_err(|e| match e {
            crate::Error::Infeasible(msg) => crate::Error::Infeasible(format!(
                "{}: the plan does not fit in GPU memory: {msg}",
                setup.file.display()
            )),
            other => other,
        })?;
        let blocks = mem.kv_capacity_blocks.min(u32::MAX as u64) as u32;
        let kv_by_stage: Vec<f64> = (0..p.pp).map(|s| stage_kv_bytes_per_token(m, p.tp, p.pp, s)).collect();
        let weights_by_stage: Vec<f64> = (0..p.pp).map(|s| stage_weight_bytes(m, &req, s) / GIB).collect();
        let kv_reserved_gib = (0..p.pp as usize)
            .map(|s| {
                let pool = blocks as f64 * setup.serving.kv_block_tokens as f64 * kv_by_stage[s];
                (pool + window_kv_reserve_bytes(m, &req, s as u32)) / GIB
            })
            .fold(0.0, f64::max);
        let activations_gib = (0..p.pp).map(|s| activation_bytes(m, &req, s + 1 == p.pp) / GIB).fold(0.0, f64::max);
        let report = ReportContext {
            name: setup.name.clone(),
            seed: setup.seed,
            plan: plan.clone(),
            cluster_gpus: setup.total_gpus(),
            peak_flops_per_gpu: setup.gpu.peak_flops(m.dtype.bytes()),
            capacity_gib: setup.gpu.memory_gib,
            weights_gib_by_stage: weights_by_stage,
            kv_gib_per_gpu: kv_reserved_gib,
            kv_bytes_per_token_by_stage: kv_by_stage,
            kv_block_tokens: setup.serving.kv_block_tokens,
            activations_gib_per_gpu: activations_gib,
            kv_peak_blocks: Vec::new(),
            network: Default::default(),
            pools: Vec::new(),
        };
        let costs = ModelCosts::new(CostModel::new(m, &setup.gpu, &setup.framework, p.tp));
        let pricer = Pricer::new(setup)?;
        let mut asm = Assembly {
            plan,
            costs: Box::new(costs),
            comm: Vec::new(),
            kv_blocks_per_group: blocks,
            report,
            first_moe_layer: if m.is_moe() { m.dense_layers } else { u32::MAX },
            moe: m.is_moe(),
            pricer,
        };
        asm.reprice();
        asm.report.network = asm.pricer.network_facts(&asm.plan);
        Ok(asm)
    }

    /// True when layer `l` has routed experts.
    pub fn is_moe_layer(&self, l: u32) -> bool {
        self.moe && l >= self.first_moe_layer
    }

    /// What-if: NVLink (`nvlink`) or NICs of each listed node run at its fraction of
    /// their nominal bandwidth; every collective price is recomputed once.
    pub fn set_link_fractions(&mut self, nvlink: bool, fractions: &[(u32, f64)]) {
        for &(node, fraction) in fractions {
            self.pricer.set_link_fraction(nvlink, Some(node), fraction);
        }
        self.reprice();
    }

    /// Collectives that start together and share links (NICs shared by several GPUs,
    /// an oversubscribed spine), stage by stage: priced by the flow model.
    pub fn contention(&self) -> Vec<super::pricing::Sharing> {
        self.pricer.contention(&self.plan)
    }

    /// Replicas a failure event stops: the failed GPU's, or every one whose
    /// collectives cross the failed link.
    pub fn replicas_hit(&self, event: &WhatIfEvent) -> Vec<u32> {
        match *event {
            WhatIfEvent::GpuFailure { gpu, .. } => self.plan.rank_of(gpu).map(|r| r.replica).into_iter().collect(),
            WhatIfEvent::LinkFailure { link, node, index, .. } => {
                self.replicas_crossing(link == LinkClass::Nvlink, node, index)
            }
            _ => Vec::new(),
        }
    }

    /// Replicas whose collectives cross NIC `index` of `node` (or, with `nvlink`, the
    /// NVLink of GPU `index` of `node`), in order.
    pub fn replicas_crossing(&self, nvlink: bool, node: u32, index: u32) -> Vec<u32> {
        let links = self.pricer.node_links(nvlink, node, index);
        let facts = &self.report.network;
        let mut out: Vec<u32> = (0..facts.gpu_groups.len() as u32)
            .filter(|g| {
                facts.gpu_groups[*g as usize].iter().flatten().any(|grp| {
                    facts.groups[*grp as usize].link_bytes_per_payload.iter().any(|(l, _)| links.contains(l))
                })
            })
            .filter_map(|g| self.plan.rank_of(g).map(|r| r.replica))
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Nodes of the cluster.
    pub fn nodes(&self) -> u32 {
        self.pricer.nodes()
    }

    /// The run's shared fabric (see [`super::paced`]): links crossed by more than one
    /// (replica, stage), and every link a `link_slowdown` in `events` names, so the
    /// slowdown reaches transfers in flight. None when nothing is shared.
    pub fn shared_fabric(&self, events: &[WhatIfEvent]) -> Option<super::paced::SharedFabric> {
        let (units, extra) = self.fabric_links(events);
        let (facts, capacity) = (&self.report.network, &self.pricer.link_capacities());
        super::paced::SharedFabric::build(&self.plan, &units, &extra, facts, capacity)
    }

    /// The links each (replica, stage) crosses, by `replica * pp + stage`, and the
    /// links a `link_slowdown` in `events` names.
    pub fn fabric_links(&self, events: &[WhatIfEvent]) -> (Vec<BTreeSet<LinkId>>, Vec<LinkId>) {
        let extra: Vec<_> = events
            .iter()
            .filter_map(|e| match *e {
                WhatIfEvent::LinkSlowdown { link, node, .. } => {
                    Some(self.pricer.class_links(link == LinkClass::Nvlink, node))
                }
                _ => None,
            })
            .flatten()
            .collect();
        (self.unit_links(), extra)
    }

    /// The links each (replica, stage) crosses, by `replica * pp + stage`.
    fn unit_links(&self) -> Vec<BTreeSet<LinkId>> {
        let plan = &self.plan;
        (0..plan.dp * plan.pp).map(|u| self.pricer.unit_links(plan, u / plan.pp, u % plan.pp)).collect()
    }

    /// A warning when links are crossed by more than one replica or stage: how many,
    /// and the first with its users (their traffic shares it when batches overlap).
    pub fn cross_sharing(&self) -> Option<String> {
        let shared = super::paced::shared_between_units(&self.unit_links());
        let (link, users) = shared.iter().next()?;
        let pp = self.plan.pp;
        let who: Vec<String> = users.iter().map(|u| format!("replica {} stage {}", u / pp, u % pp)).collect();
        Some(format!(
            "{} link(s) carry traffic of more than one replica or pipeline stage (e.g. {}: {}); \
             where their batches overlap in time they share it (max-min), priced as the run goes",
            shared.len(),
            self.link_name(*link),
            who.join(", ")
        ))
    }

    /// A link for people ("NIC 3 up").
    pub fn link_name(&self, link: LinkId) -> String {
        self.pricer.link_name(link)
    }

    /// Each link's bandwidth now, bytes / s, by link id.
    pub fn link_capacities(&self) -> Vec<f64> {
        self.pricer.link_capacities()
    }

    /// The two links (up, down) of NIC `index` of `node`.
    pub fn nic_links(&self, node: u32, index: u32) -> [LinkId; 2] {
        self.pricer.node_links(false, node, index)
    }

    fn reprice(&mut self) {
        let (plan, pr) = (&self.plan, &self.pricer);
        self.comm = (0..plan.dp).map(|r| (0..plan.pp).map(|s| pr.stage_comm(plan, r, s)).collect()).collect();
    }
}

impl std::fmt::Debug for Assembly {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Assembly").field("plan", &self.plan).field("kv_blocks", &self.kv_blocks_per_group).finish()
    }
}
