//! One pool of a disaggregated run: its pipeline (plan, costs, collective prices),
//! its instances (replicas with queues and KV pools), and its batching limits.

use crate::error::{Error, Result};
use crate::scenario::pools::{PoolRole, PoolSetup};
use crate::serving::assemble::Assembly;
use crate::serving::pipeline::Pipeline;
use crate::serving::replica::Replica;
use crate::serving::scheduler::Limits;

/// A pool's serving machinery.
pub struct Pool {
    /// What its instances do.
    pub role: PoolRole,
    /// Prices and books its batches on its GPUs.
    pub pipeline: Pipeline,
    /// Its instances.
    pub replicas: Vec<Replica>,
    /// Batching limits.
    pub limits: Limits,
    /// Batches in flight per instance.
    pub max_in_flight: usize,
    /// Its first GPU in the cluster.
    pub first_gpu: u32,
    /// Its GPU preset's name.
    pub gpu_name: String,
}

impl Pool {
    /// Builds pool `index` from its setup, its instances numbered from `first_instance`
    /// over the run; a plan that does not fit in memory is an input error naming the
    /// pool.
    pub fn build(index: usize, p: &PoolSetup, first_instance: u32) -> Result<Pool> {
        let asm = Assembly::build(&p.setup).map_err(|e| match e {
            Error::Infeasible(msg) => Error::Infeasible(format!("pools.{index} ({} pool): {msg}", p.role.name())),
            other => other,
        })?;
        let (plan, s) = (asm.plan.clone(), &p.setup.serving);
        // Speculation streams: one per instance, distinct across pools.
        let replicas =
            (0..plan.dp).map(|r| Replica::for_setup(&p.setup, &asm, ((index as u64) << 32) | r as u64)).collect();
        Ok(Pool {
            role: p.role,
            pipeline: Pipeline::for_setup(&p.setup, asm).in_cluster(p.first_gpu, first_instance),
            replicas,
            limits: Limits::of(s, &p.setup.framework),
            max_in_flight: s.max_inflight_batches.unwrap_or(plan.pp) as usize,
            first_gpu: p.first_gpu,
            gpu_name: p.setup.gpu.name.clone(),
        })
    }

    /// The cluster GPUs of instance `r`, stage by stage.
    pub fn instance_gpus(&self, r: u32) -> Vec<u32> {
        let plan = &self.pipeline.asm.plan;
        (0..plan.pp).flat_map(|s| plan.stage_gpus(r, s)).map(|g| g + self.first_gpu).collect()
    }

    /// GPUs its plan uses.
    pub fn used_gpus(&self) -> u32 {
        self.pipeline.asm.plan.gpus()
    }

    /// Free KV blocks of instance `r`, over its attention groups.
    pub fn free_blocks(&self, r: usize) -> u64 {
        self.replicas[r].queues.kv.iter().map(|k| k.free as u64).sum()
    }
}
