//! KV block accounting of a pooled run, checked: every block taken from an instance's
//! pool is held by a request running there or reserved for a handoff on its way to it.

use super::sim::PoolSim;

impl PoolSim {
    /// Checks every instance's KV pools; the first mismatch, described, if any.
    pub fn audit_kv(&self) -> Result<(), String> {
        let mut held: Vec<Vec<u64>> = self
            .insts
            .iter()
            .map(|&(p, r)| vec![0; self.pools[p as usize].replicas[r as usize].queues.kv.len()])
            .collect();
        for (i, &(p, r)) in self.insts.iter().enumerate() {
            for &slot in &self.pools[p as usize].replicas[r as usize].queues.running {
                let req = self.reqs.get(slot);
                held[i][req.kv_group as usize] += req.blocks as u64;
            }
        }
        for h in self.handoffs.iter().flatten() {
            if let Some((blocks, group)) = h.reserved {
                held[h.decode as usize][group as usize] += blocks as u64;
            }
        }
        for (i, &(p, r)) in self.insts.iter().enumerate() {
            for (g, kv) in self.pools[p as usize].replicas[r as usize].queues.kv.iter().enumerate() {
                let used = (kv.total - kv.free) as u64;
                if used != held[i][g] {
                    return Err(format!("instance {i} group {g}: {used} blocks in use, {} held", held[i][g]));
                }
            }
        }
        Ok(())
    }

    /// Blocks in use over every instance (0 once every request has finished).
    pub fn kv_blocks_in_use(&self) -> u64 {
        let kv = self.pools.iter().flat_map(|p| p.replicas.iter()).flat_map(|r| r.queues.kv.iter());
        kv.map(|k| (k.total - k.free) as u64).sum()
    }
}

#[cfg(test)]
mod tests {
    use crate::serving::RunOptions;

    /// A pooled scenario: one prefill and one decode instance of a 4-layer model on
    /// GPUs of 1 GiB, so a few thousand tokens fill a pool.
    fn setup(mode: &str) -> crate::scenario::Setup {
        let text = format!(
            r#"
[scenario]
name = "audit"
seed = 3
[hardware]
nodes = 2
gpus_per_node = 1
[hardware.gpu_spec]
peak_tflops = 100.0
compute_efficiency = 0.5
memory_gib = 0.1
memory_bandwidth_tb_s = 1.0
memory_efficiency = 0.8
launch_overhead_us = 5.0
[hardware.nvlink]
bandwidth_gb_s = 100.0
efficiency = 1.0
latency_us = 1.0
[hardware.network]
nic_bandwidth_gb_s = 1.0
efficiency = 1.0
nics_per_node = 1
latency_us = 5.0
[model]
layers = 4
hidden = 512
heads = 8
ffn = 1024
vocab = 1000
[serving]
max_batch_tokens = 2048
[[pools]]
role = "prefill"
replicas = 1
nodes = 1
[[pools]]
role = "decode"
replicas = 1
nodes = 1
[disaggregation]
kv_transfer = "{mode}"
[workload]
requests = 300
arrival = {{ process = "poisson", rate_per_s = 400.0 }}
prompt_tokens = {{ dist = "uniform", min = 200, max = 1500 }}
output_tokens = {{ dist = "uniform", min = 1, max = 400 }}
"#
        );
        let path = std::path::Path::new("audit.toml");
        crate::scenario::validate(&crate::scenario::parse(&text, path, &[]).expect("parses"), path).expect("valid")
    }

    #[test]
    fn every_block_is_held_or_freed_in_both_modes_and_with_a_horizon() {
        for mode in ["layerwise", "whole"] {
            let s = setup(mode);
            let mut sim = super::PoolSim::new(&s, s.workload().expect("workload"), RunOptions::default()).expect("sim");
            // The run audits the blocks as it goes (debug builds); at the end all are free.
            sim.run().expect("runs");
            assert_eq!(sim.kv_blocks_in_use(), 0, "{mode}");
            assert_eq!(sim.rec.completed + sim.rec.dropped, sim.rec.arrived);
            assert_eq!(sim.rec.arrived, 300);
            assert!(sim.rec.preemptions > 0 && sim.stats.waits() > 0, "{mode}: KV pressure on both sides");
            // Cut at 0.3 s: requests still held are dropped, none lost.
            let opts = RunOptions { max_simulated_s: Some(0.3), ..Default::default() };
            let mut cut = super::PoolSim::new(&s, s.workload().expect("workload"), opts).expect("sim");
            cut.run().expect("runs");
            assert!(cut.rec.dropped > 0);
            assert_eq!(cut.rec.completed + cut.rec.dropped, cut.rec.arrived);
        }
    }
}
