//! A collective micro-benchmark in the manner of nccl-tests: for each size, run the
//! collective alone on the flow model and report time, algbw and busbw.
//!
//! `clustersim collective --hardware h100-sxm --nodes 2 --op all_reduce --sizes 1MiB..1GiB`
//! maps onto [`run`] + [`format_table`]; sizes double between the bounds.

use super::collective::{choose_all_reduce, schedule_time, CollectiveOp};
use super::collective::{AllReduceAlgorithm, AllToAllAlgorithm};
use super::runner::{CollectiveRequest, CollectiveRunner};
use crate::engine::SimTime;
use crate::error::{Error, Result};
use crate::hardware::topology::Topology;
use std::fmt::Write;

/// GPUs per node of the preset systems (DGX/HGX boards).
pub const PRESET_GPUS_PER_NODE: u32 = 8;

/// One line of the table.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// Buffer size S, bytes.
    pub bytes: u64,
    /// The algorithm run (all-reduce: the one `auto` chose for this size).
    pub algorithm: &'static str,
    /// Time on the flow model.
    pub time: SimTime,
    /// Closed-form time, for comparison.
    pub closed_form: SimTime,
    /// S / time, GB/s.
    pub algbw_gb_s: f64,
    /// algbw x nccl-tests factor, GB/s.
    pub busbw_gb_s: f64,
}

/// Parses a byte count: an integer or decimal with an optional suffix `B`, `KiB`,
/// `MiB`, `GiB` (powers of 2; `K`, `M`, `G` too) or `KB`, `MB`, `GB` (powers of 10).
pub fn parse_size(s: &str) -> Result<u64> {
    let t = s.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let mult: f64 = match unit.trim() {
        "" | "B" => 1.0,
        "K" | "KiB" => 1024.0,
        "M" | "MiB" => 1024.0 * 1024.0,
        "G" | "GiB" => 1024.0 * 1024.0 * 1024.0,
        "KB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        other => {
            return Err(Error::Usage(format!(
                "size `{s}`: unknown unit `{other}`; use B, KiB, MiB, GiB (or K, M, G), KB, MB, GB"
            )))
        }
    };
    let v: f64 = num.parse().map_err(|_| Error::Usage(format!("size `{s}`: expected a number such as 1MiB")))?;
    let bytes = (v * mult).round();
    if !(bytes >= 1.0 && bytes < 2f64.powi(62)) {
        return Err(Error::Usage(format!("size `{s}`: must be at least 1 byte")));
    }
    Ok(bytes as u64)
}

/// Parses `LO..HI` (or a single size) into sizes doubling from LO while <= HI.
pub fn parse_size_range(s: &str) -> Result<Vec<u64>> {
    let (lo, hi) = match s.split_once("..") {
        Some((a, b)) => (parse_size(a)?, parse_size(b)?),
        None => {
            let v = parse_size(s)?;
            (v, v)
        }
    };
    if lo > hi {
        return Err(Error::Usage(format!("size range `{s}`: the lower bound exceeds the upper bound")));
    }
    let mut out = Vec::new();
    let mut v = lo;
    while v <= hi {
        out.push(v);
        v = match v.checked_mul(2) {
            Some(x) => x,
            None => break,
        };
    }
    Ok(out)
}

/// The algorithms to run: all-reduce (`Auto`: the choice per size of
/// [`choose_all_reduce`], NCCL's tuner's without a stack's kernels) and all-to-all.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Algorithms {
    /// All-reduce algorithm.
    pub all_reduce: AllReduceAlgorithm,
    /// How all-to-all is posted.
    pub all_to_all: AllToAllAlgorithm,
    /// The serving stack's own all-reduce kernels run below this many bytes (`auto`
    /// only; 0: none, NCCL's choice).
    pub custom_max_bytes: u64,
}

fn all_reduce_name(alg: AllReduceAlgorithm) -> &'static str {
    match alg {
        AllReduceAlgorithm::Auto => "auto",
        AllReduceAlgorithm::Ring => "ring",
        AllReduceAlgorithm::HalvingDoubling => "halving_doubling",
        AllReduceAlgorithm::Hierarchical => "hierarchical",
        AllReduceAlgorithm::Pipelined => "pipelined",
        AllReduceAlgorithm::Tree => "tree",
        AllReduceAlgorithm::Nvls => "nvls",
        AllReduceAlgorithm::OneShot => "one_shot",
        AllReduceAlgorithm::TwoShot => "two_shot",
    }
}

/// Runs `op` over `ranks` alone on an idle network, once per size.
pub fn run(topo: &Topology, op: CollectiveOp, algs: Algorithms, ranks: &[u32], sizes: &[u64]) -> Result<Vec<Row>> {
    let mut rows = Vec::with_capacity(sizes.len());
    for &bytes in sizes {
        let s = bytes as f64;
        let (req, algorithm) = match op {
            CollectiveOp::AllToAll => {
                let name = match algs.all_to_all {
                    AllToAllAlgorithm::Pairwise => "pairwise",
                    AllToAllAlgorithm::Direct => "direct",
                    AllToAllAlgorithm::DeepEp => "deep_ep",
                };
                (CollectiveRequest::all_to_all(topo, algs.all_to_all, ranks, s)?, name)
            }
            _ => {
                let alg = match algs.all_reduce {
                    AllReduceAlgorithm::Auto if op == CollectiveOp::AllReduce => {
                        choose_all_reduce(topo, ranks, s, algs.custom_max_bytes as f64)
                    }
                    a => super::collective::resolve_all_reduce(topo, a, ranks),
                };
                let name = if op == CollectiveOp::AllReduce { all_reduce_name(alg) } else { "-" };
                (CollectiveRequest::new(topo, op, alg, ranks, s)?, name)
            }
        };
        let closed_form = schedule_time(topo, &req.schedule);
        let mut runner = CollectiveRunner::new(topo);
        runner.admit(req, &vec![SimTime::ZERO; ranks.len()])?;
        let done = runner.run_to_end();
        let d = done.first().ok_or_else(|| Error::Run("collective did not finish".to_string()))?;
        rows.push(Row {
            bytes,
            algorithm,
            time: d.duration(),
            closed_form,
            algbw_gb_s: d.algbw_gb_s(),
            busbw_gb_s: d.busbw_gb_s(),
        });
    }
    Ok(rows)
}

fn human(bytes: u64) -> String {
    const UNITS: [(&str, u64); 3] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    for (u, m) in UNITS {
        if bytes >= m && bytes % m == 0 {
            return format!("{}{u}", bytes / m);
        }
    }
    format!("{bytes}B")
}

/// Formats rows like nccl-tests: size, time (µs), algbw and busbw (GB/s), closed form (µs).
pub fn format_table(op: CollectiveOp, ranks: usize, rows: &[Row]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# {} over {ranks} GPUs (flow model; closed form for comparison)", op.name());
    let _ = writeln!(
        s,
        "{:>14} {:>10} {:>16} {:>14} {:>12} {:>12} {:>16}",
        "size(B)", "size", "algorithm", "time(us)", "algbw(GB/s)", "busbw(GB/s)", "closed_form(us)"
    );
    for r in rows {
        let _ = writeln!(
            s,
            "{:>14} {:>10} {:>16} {:>14.2} {:>12.2} {:>12.2} {:>16.2}",
            r.bytes,
            human(r.bytes),
            r.algorithm,
            r.time.as_ns() as f64 / 1e3,
            r.algbw_gb_s,
            r.busbw_gb_s,
            r.closed_form.as_ns() as f64 / 1e3
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_and_double() {
        assert_eq!(parse_size("1MiB").ok(), Some(1 << 20));
        assert_eq!(parse_size("2 GB").ok(), Some(2_000_000_000));
        assert_eq!(parse_size("512").ok(), Some(512));
        // 1 MiB .. 1 GiB: 2^20 .. 2^30, 11 sizes.
        let v = parse_size_range("1MiB..1GiB").expect("valid");
        assert_eq!(v.len(), 11);
        assert_eq!(v[10], 1 << 30);
        let e = parse_size_range("1XB..2MiB").expect_err("bad unit");
        assert!(e.to_string().contains("unknown unit `XB`"));
        assert!(parse_size_range("2MiB..1MiB").is_err());
        assert!(parse_size("MiB").is_err());
    }
}
