//! A collective micro-benchmark in the manner of nccl-tests: for each size, run the
//! collective alone on the flow model and report time, algbw and busbw.
//!
//! `clustersim collective --hardware h100-sxm --nodes 2 --op all_reduce --sizes 1MiB..1GiB`
//! maps onto [`run_preset`] + [`format_table`]; sizes double between the bounds.

use super::collective::AllReduceAlgorithm;
use super::collective::{closed_form_time, CollectiveOp};
use super::runner::{CollectiveRequest, CollectiveRunner};
use crate::engine::SimTime;
use crate::error::{Error, Result};
use crate::hardware::spec::{gpu_preset, gpu_preset_names};
use crate::hardware::topology::Topology;
use std::fmt::Write;

/// GPUs per node of the preset systems (DGX/HGX boards).
pub const PRESET_GPUS_PER_NODE: u32 = 8;

/// One line of the table.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// Buffer size S, bytes.
    pub bytes: u64,
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

/// Runs `op` over `ranks` with `alg` alone on an idle network, once per size.
pub fn run(
    topo: &Topology,
    op: CollectiveOp,
    alg: AllReduceAlgorithm,
    ranks: &[u32],
    sizes: &[u64],
) -> Result<Vec<Row>> {
    let mut rows = Vec::with_capacity(sizes.len());
    for &bytes in sizes {
        let s = bytes as f64;
        let req = CollectiveRequest::new(topo, op, alg, ranks, s)?;
        let mut runner = CollectiveRunner::new(topo);
        runner.admit(req, &vec![SimTime::ZERO; ranks.len()])?;
        let done = runner.run_to_end();
        let d = done.first().ok_or_else(|| Error::Run("collective did not finish".to_string()))?;
        rows.push(Row {
            bytes,
            time: d.duration(),
            closed_form: closed_form_time(topo, op, alg, ranks, s),
            algbw_gb_s: d.algbw_gb_s(),
            busbw_gb_s: d.busbw_gb_s(),
        });
    }
    Ok(rows)
}

/// Builds the preset's cluster of `nodes` x 8 GPUs and runs `op` (a name such as
/// `all_reduce`) over all its GPUs for every size of `sizes` (`1MiB..1GiB`), Auto algorithm.
pub fn run_preset(gpu: &str, nodes: u32, op: &str, sizes: &str) -> Result<(Topology, Vec<Row>)> {
    let preset = gpu_preset(gpu).ok_or_else(|| {
        Error::Usage(format!("unknown hardware `{gpu}`; expected one of {}", gpu_preset_names().join(", ")))
    })?;
    let op = CollectiveOp::parse(op)?;
    let sizes = parse_size_range(sizes)?;
    let topo = Topology::new(nodes, PRESET_GPUS_PER_NODE, &(preset.nvlink)(), &(preset.network)())?;
    let ranks: Vec<u32> =
        if op == CollectiveOp::SendRecv { vec![0, topo.gpus() - 1] } else { (0..topo.gpus()).collect() };
    let rows = run(&topo, op, AllReduceAlgorithm::Auto, &ranks, &sizes)?;
    Ok((topo, rows))
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
        "{:>14} {:>10} {:>14} {:>12} {:>12} {:>16}",
        "size(B)", "size", "time(us)", "algbw(GB/s)", "busbw(GB/s)", "closed_form(us)"
    );
    for r in rows {
        let _ = writeln!(
            s,
            "{:>14} {:>10} {:>14.2} {:>12.2} {:>12.2} {:>16.2}",
            r.bytes,
            human(r.bytes),
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
