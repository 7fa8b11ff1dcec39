//! The deployment DAG: the operator graph of one iteration of a plan.
//!
//! Nodes are operators and collectives on their GPUs: per replica, per stage, per EP
//! group, one representative layer block (identical layers are one node marked
//! "x N layers"); edges are dependencies. The DAG also lists the plan's groups
//! (TP, PP, EP, DP) and each GPU's memory layout, so a plan can be checked for
//! having enough information to be built at all.

use crate::parallel::plan::{Plan, Rank};
use crate::serving::assemble::Assembly;
use serde::Serialize;
use std::fmt::Write;

/// One operator or collective.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct DagNode {
    /// Unique id (DOT-safe).
    pub id: String,
    /// Operator: `embedding`, `attention`, `tp_allreduce`, `mlp`, `router`,
    /// `ep_dispatch`, `experts`, `ep_combine`, `pp_send`, `lm_head`.
    pub op: String,
    /// `compute` or `collective`.
    pub kind: String,
    /// Replica.
    pub replica: u32,
    /// Stage.
    pub stage: u32,
    /// GPUs taking part.
    pub gpus: Vec<u32>,
    /// Layers this node stands for (1 for per-iteration operators).
    pub layers: u32,
}

/// A GPU's place and memory.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct DagGpu {
    /// Global index.
    pub gpu: u32,
    /// Node.
    pub node: u32,
    /// Replica.
    pub replica: u32,
    /// Stage.
    pub stage: u32,
    /// EP rank.
    pub ep_rank: u32,
    /// TP rank.
    pub tp_rank: u32,
    /// Weights, GiB.
    pub weights_gib: f64,
    /// KV cache reserved, GiB.
    pub kv_gib: f64,
    /// Activation workspace, GiB.
    pub activations_gib: f64,
    /// Capacity, GiB.
    pub capacity_gib: f64,
}

/// The plan's communication groups (lists of GPUs).
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Groups {
    /// One per replica: all its GPUs.
    pub dp: Vec<Vec<u32>>,
    /// GPUs of equal (replica, ep rank, tp rank) across stages.
    pub pp: Vec<Vec<u32>>,
    /// TP groups.
    pub tp: Vec<Vec<u32>>,
    /// EP groups (equal TP rank across EP ranks of a stage).
    pub ep: Vec<Vec<u32>>,
}

/// The whole graph.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Dag {
    /// Scenario name.
    pub scenario: String,
    /// GPUs of the plan.
    pub gpus: Vec<DagGpu>,
    /// Groups.
    pub groups: Groups,
    /// Operators and collectives.
    pub nodes: Vec<DagNode>,
    /// Dependencies (from id, to id).
    pub edges: Vec<(String, String)>,
}

struct Builder<'a> {
    plan: &'a Plan,
    nodes: Vec<DagNode>,
    edges: Vec<(String, String)>,
}

impl Builder<'_> {
    #[allow(clippy::too_many_arguments)]
    fn node(&mut self, r: u32, s: u32, tag: &str, op: &str, collective: bool, gpus: Vec<u32>, layers: u32) -> String {
        let id = format!("r{r}_s{s}_{tag}_{op}");
        self.nodes.push(DagNode {
            id: id.clone(),
            op: op.into(),
            kind: if collective { "collective" } else { "compute" }.into(),
            replica: r,
            stage: s,
            gpus,
            layers,
        });
        id
    }
    fn edge(&mut self, from: &str, to: &str) {
        self.edges.push((from.to_string(), to.to_string()));
    }

    /// Stage `s` of replica `r`, fed by the previous stage's outputs; returns its own.
    fn stage(&mut self, asm: &Assembly, r: u32, s: u32, prev_stage_out: &[String]) -> Vec<String> {
        let layers = self.plan.stage_layers(s);
        let moe = layers.clone().filter(|l| asm.is_moe_layer(*l)).count() as u32;
        let dense = layers.len() as u32 - moe;
        let mut block_ends = self.dense_blocks(r, s, dense, prev_stage_out);
        if moe > 0 {
            block_ends = self.moe_block(r, s, moe, &block_ends);
        }
        self.stage_tails(r, s, block_ends)
    }

    /// Per EP group: the stage's entry (embedding or receive) and its dense layers.
    /// Returns each group's last node ("" when the group has none).
    fn dense_blocks(&mut self, r: u32, s: u32, dense: u32, prev_stage_out: &[String]) -> Vec<String> {
        let mut block_ends = Vec::new();
        for e in 0..self.plan.ep {
            let tp = self.plan.tp_group(r, s, e);
            let tag = format!("e{e}");
            let mut last =
                if s == 0 { self.node(r, s, &tag, "embedding", false, tp.clone(), 1) } else { String::new() };
            for from in prev_stage_out {
                if last.is_empty() {
                    last = self.node(r, s, &tag, "recv", true, tp.clone(), 1);
                }
                self.edge(from, &last);
            }
            if dense > 0 {
                let attn = self.node(r, s, &format!("{tag}_dense"), "attention", false, tp.clone(), dense);
                if !last.is_empty() {
                    self.edge(&last, &attn);
                }
                let ar1 = self.node(r, s, &format!("{tag}_dense_a"), "tp_allreduce", true, tp.clone(), dense);
                self.edge(&attn, &ar1);
                let mlp = self.node(r, s, &format!("{tag}_dense"), "mlp", false, tp.clone(), dense);
                self.edge(&ar1, &mlp);
                let ar2 = self.node(r, s, &format!("{tag}_dense_m"), "tp_allreduce", true, tp.clone(), dense);
                self.edge(&mlp, &ar2);
                last = ar2;
            }
            block_ends.push(last);
        }
        block_ends
    }

    /// The MoE layers after `block_ends`: attention and router per EP group, one
    /// dispatch and one combine across the stage when EP > 1, experts per group.
    fn moe_block(&mut self, r: u32, s: u32, moe: u32, block_ends: &[String]) -> Vec<String> {
        let ep = self.plan.ep;
        let stage_gpus = self.plan.stage_gpus(r, s);
        let mut dispatch_inputs = Vec::new();
        for e in 0..ep {
            let tp = self.plan.tp_group(r, s, e);
            let tag = format!("e{e}_moe");
            let attn = self.node(r, s, &tag, "attention", false, tp.clone(), moe);
            if !block_ends[e as usize].is_empty() {
                self.edge(&block_ends[e as usize], &attn);
            }
            let ar = self.node(r, s, &format!("{tag}_a"), "tp_allreduce", true, tp.clone(), moe);
            self.edge(&attn, &ar);
            let router = self.node(r, s, &tag, "router", false, tp, moe);
            self.edge(&ar, &router);
            dispatch_inputs.push(router);
        }
        let dispatch = (ep > 1).then(|| self.join(r, s, "ep_dispatch", stage_gpus.clone(), moe, &dispatch_inputs));
        let mut expert_outs = Vec::new();
        for e in 0..ep {
            let tp = self.plan.tp_group(r, s, e);
            let tag = format!("e{e}_moe");
            let ex = self.node(r, s, &tag, "experts", false, tp.clone(), moe);
            self.edge(dispatch.as_ref().unwrap_or(&dispatch_inputs[e as usize]), &ex);
            let ar = self.node(r, s, &format!("{tag}_x"), "tp_allreduce", true, tp, moe);
            self.edge(&ex, &ar);
            expert_outs.push(ar);
        }
        if ep > 1 {
            vec![self.join(r, s, "ep_combine", stage_gpus, moe, &expert_outs); ep as usize]
        } else {
            expert_outs
        }
    }

    /// One stage-wide collective `op` that every node of `inputs` feeds.
    fn join(&mut self, r: u32, s: u32, op: &str, gpus: Vec<u32>, moe: u32, inputs: &[String]) -> String {
        let j = self.node(r, s, "all", op, true, gpus, moe);
        for i in inputs {
            self.edge(i, &j);
        }
        j
    }

    /// What ends the stage after each distinct block end: the LM head on the last
    /// stage, a send to the next stage otherwise.
    fn stage_tails(&mut self, r: u32, s: u32, mut block_ends: Vec<String>) -> Vec<String> {
        let plan = self.plan;
        block_ends.dedup();
        let mut outs = Vec::new();
        for (e, end) in block_ends.iter().enumerate() {
            let tag = format!("e{e}");
            let gpus = if block_ends.len() == 1 { plan.stage_gpus(r, s) } else { plan.tp_group(r, s, e as u32) };
            let tail = if s + 1 == plan.pp {
                self.node(r, s, &tag, "lm_head", false, gpus, 1)
            } else {
                let mut pair = gpus.clone();
                pair.extend(gpus.iter().map(|g| g + plan.stage_size()));
                self.node(r, s, &tag, "pp_send", true, pair, 1)
            };
            if !end.is_empty() {
                self.edge(end, &tail);
            }
            outs.push(tail);
        }
        outs
    }
}

/// Builds the DAG of `asm`'s plan; which layers of a stage are MoE comes from the
/// assembly.
pub fn build(name: &str, asm: &Assembly) -> Dag {
    let plan = &asm.plan;
    let ctx = &asm.report;
    let mut b = Builder { plan, nodes: Vec::new(), edges: Vec::new() };
    for r in 0..plan.dp {
        let mut prev_stage_out: Vec<String> = Vec::new();
        for s in 0..plan.pp {
            prev_stage_out = b.stage(asm, r, s, &prev_stage_out);
        }
    }
    let gpus = (0..plan.gpus())
        .filter_map(|g| plan.rank_of(g).map(|r| (g, r)))
        .map(|(g, r)| DagGpu {
            gpu: g,
            node: plan.node_of(g),
            replica: r.replica,
            stage: r.stage,
            ep_rank: r.ep_rank,
            tp_rank: r.tp_rank,
            weights_gib: ctx.weights_gib_by_stage[r.stage as usize],
            kv_gib: ctx.kv_gib_per_gpu,
            activations_gib: ctx.activations_gib_per_gpu,
            capacity_gib: ctx.capacity_gib,
        })
        .collect();
    Dag { scenario: name.to_string(), gpus, groups: groups(plan), nodes: b.nodes, edges: b.edges }
}

/// The plan's groups.
pub fn groups(p: &Plan) -> Groups {
    let mut g = Groups::default();
    for r in 0..p.dp {
        g.dp.push((p.stage_first_gpu(r, 0)..p.stage_first_gpu(r, 0) + p.pp * p.stage_size()).collect());
        for e in 0..p.ep {
            for t in 0..p.tp {
                g.pp.push((0..p.pp).map(|s| p.gpu(Rank { replica: r, stage: s, ep_rank: e, tp_rank: t })).collect());
            }
        }
        for s in 0..p.pp {
            for e in 0..p.ep {
                g.tp.push(p.tp_group(r, s, e));
            }
            for t in 0..p.tp {
                g.ep.push(p.ep_group(r, s, t));
            }
        }
    }
    g
}

fn gpu_list(g: &[u32]) -> String {
    match (g.first(), g.last()) {
        (Some(a), Some(b)) if g.len() > 2 && (*b - *a) as usize == g.len() - 1 => format!("GPUs {a}-{b}"),
        _ => format!("GPUs {}", g.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(",")),
    }
}

/// Graphviz DOT text: a cluster per replica and stage, collectives as ellipses,
/// operators as boxes, and a memory table per stage.
pub fn to_dot(d: &Dag) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "digraph \"{}\" {{", d.scenario.replace('"', "'"));
    let _ = writeln!(o, "  rankdir=LR; node [fontname=\"DejaVu Sans\", fontsize=10];");
    let replicas = d.gpus.iter().map(|g| g.replica).max().map_or(0, |m| m + 1);
    let stages = d.gpus.iter().map(|g| g.stage).max().map_or(0, |m| m + 1);
    for r in 0..replicas {
        let _ = writeln!(o, "  subgraph cluster_r{r} {{ label=\"replica {r} (DP)\";");
        for s in 0..stages {
            let _ = writeln!(o, "    subgraph cluster_r{r}_s{s} {{ label=\"stage {s} (PP)\";");
            for n in d.nodes.iter().filter(|n| n.replica == r && n.stage == s) {
                let shape = if n.kind == "collective" { "ellipse" } else { "box" };
                let times = if n.layers > 1 { format!(" x{} layers", n.layers) } else { String::new() };
                let _ =
                    writeln!(o, "      {} [shape={shape}, label=\"{}{times}\\n{}\"];", n.id, n.op, gpu_list(&n.gpus));
            }
            let mem: Vec<String> = d
                .gpus
                .iter()
                .filter(|g| g.replica == r && g.stage == s)
                .map(|g| {
                    format!(
                        "GPU {} (node {}, ep {}, tp {}): weights {:.2} GiB, KV {:.2} GiB, act {:.2} GiB of {:.1} GiB",
                        g.gpu, g.node, g.ep_rank, g.tp_rank, g.weights_gib, g.kv_gib, g.activations_gib, g.capacity_gib
                    )
                })
                .collect();
            let _ = writeln!(o, "      mem_r{r}_s{s} [shape=note, label=\"{}\\l\"];", mem.join("\\l"));
            let _ = writeln!(o, "    }}");
        }
        let _ = writeln!(o, "  }}");
    }
    for (a, b) in &d.edges {
        let _ = writeln!(o, "  {a} -> {b};");
    }
    let _ = writeln!(o, "}}");
    o
}
