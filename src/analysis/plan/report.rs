//! What a search reports: the ranked table (and `plan.csv`), the Pareto frontier
//! chart, the winning scenario as TOML, and the verdict line.
//!
//! Ranking: plans that pass first (by objective, $/h, TTFT p99), then plans that
//! ran and failed (closest first: highest worst margin), then stopped, skipped and
//! pruned ones, each in enumeration order.

use super::search::RunResult;
use super::{objective_value, PlanRow, PlanSearch};
use crate::analysis::{format_value, Series};
use crate::error::{Error, Result};
use crate::scenario::Override;
use std::fmt::Write;
use std::path::Path;

/// The requirement with the smallest margin and that margin, for a finished run.
pub fn binding(row: &PlanRow) -> Option<(String, f64)> {
    let Some(RunResult::Finished { assessment, .. }) = &row.result else { return None };
    assessment
        .checks
        .iter()
        .filter(|c| c.requirement != "gpus_max")
        .min_by(|a, b| a.margin.total_cmp(&b.margin))
        .map(|c| (c.requirement.clone(), c.margin))
}

/// The status word of a row: pass, FAIL, stopped, skipped, pruned:KIND.
pub fn status(row: &PlanRow) -> String {
    match (&row.pruned, &row.result) {
        (Some((k, _)), _) => format!("pruned:{}", k.name()),
        (None, None) => "skipped".into(),
        (None, Some(RunResult::Stopped(..))) => "stopped".into(),
        (None, Some(RunResult::Failed(_))) => "error".into(),
        (None, Some(r)) if r.passed() => "pass".into(),
        (None, Some(_)) => "FAIL".into(),
    }
}

fn rank_key(row: &PlanRow, s: &PlanSearch) -> (u8, f64, usize) {
    let tier = match status(row).as_str() {
        "pass" => 0,
        "FAIL" => 1,
        "stopped" => 2,
        "skipped" => 3,
        "error" => 4,
        _ if row.result.is_some() => 5,
        _ => 6,
    };
    let v = match tier {
        0 => objective_value(row, s.objective).unwrap_or(f64::INFINITY),
        1 | 5 => -binding(row).map_or(f64::NEG_INFINITY, |b| b.1),
        _ => 0.0,
    };
    (tier, v, row.index)
}

/// Row indices in rank order.
pub fn ranked(s: &PlanSearch) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..s.rows.len()).collect();
    idx.sort_by(|a, b| {
        let (ka, kb) = (rank_key(&s.rows[*a], s), rank_key(&s.rows[*b], s));
        ka.0.cmp(&kb.0).then(ka.1.total_cmp(&kb.1)).then(ka.2.cmp(&kb.2))
    });
    // Put the winner first (its tie-breaks are pick_winner's).
    if let Some(w) = s.winner {
        idx.retain(|i| *i != w);
        idx.insert(0, w);
    }
    idx
}

/// Position of column `name` in [`header`].
fn col(name: &str) -> usize {
    header().iter().position(|h| h == name).unwrap_or(usize::MAX)
}

/// The winner among rows of `plan.csv` (any order): status `pass`, lowest
/// (objective column, `usd_per_hour`, `ttft_p99_s`, `plan`); empty cells count as
/// infinite (0 for the price). Returns its position in `rows`.
pub fn winner_of_table(rows: &[Vec<String>], objective: super::Objective) -> Option<usize> {
    let obj = col(match objective {
        super::Objective::Gpus => "gpus",
        super::Objective::Cost => "usd_per_hour",
        super::Objective::Energy => "joules_per_token",
    });
    let num = |r: &Vec<String>, c: usize, empty: f64| r.get(c).and_then(|x| x.parse::<f64>().ok()).unwrap_or(empty);
    let key = |r: &Vec<String>| {
        let index = r.first().and_then(|x| x.parse::<u64>().ok()).unwrap_or(u64::MAX);
        (num(r, obj, f64::INFINITY), num(r, col("usd_per_hour"), 0.0), num(r, col("ttft_p99_s"), f64::INFINITY), index)
    };
    let status = col("status");
    (0..rows.len()).filter(|k| rows[*k].get(status).is_some_and(|s| s == "pass")).min_by(|a, b| {
        let (ka, kb) = (key(&rows[*a]), key(&rows[*b]));
        ka.0.total_cmp(&kb.0).then(ka.1.total_cmp(&kb.1)).then(ka.2.total_cmp(&kb.2)).then(ka.3.cmp(&kb.3))
    })
}

/// The plan of a `plan.csv` row (the inverse of [`csv_row`]'s plan columns).
pub fn candidate_of_row(r: &[String]) -> Result<super::space::Candidate> {
    let bad = |c: &str| Error::Usage(format!("plan table: column `{c}` of plan {} is not valid", r[0]));
    let get = |c: &str| r.get(col(c)).ok_or_else(|| bad(c));
    let int = |c: &str| get(c)?.parse::<u32>().map_err(|_| bad(c));
    let router = match get("router")?.as_str() {
        "round_robin" => crate::scenario::types::RouterKind::RoundRobin,
        "random" => crate::scenario::types::RouterKind::Random,
        "least_outstanding" => crate::scenario::types::RouterKind::LeastOutstanding,
        "cache_aware" => crate::scenario::types::RouterKind::CacheAware,
        _ => return Err(bad("router")),
    };
    let chunk = get("chunk_tokens")?;
    Ok(super::space::Candidate {
        gpu: get("gpu")?.clone(),
        nodes: int("nodes")?,
        dp: int("dp")?,
        pp: int("pp")?,
        tp: int("tp")?,
        ep: int("ep")?,
        max_batch_tokens: int("max_batch_tokens")?,
        max_seqs: int("max_seqs")?,
        chunk_tokens: if chunk.is_empty() { None } else { Some(int("chunk_tokens")?) },
        router,
    })
}

/// `plan.csv`'s header.
pub fn header() -> Vec<String> {
    [
        "plan",
        "gpu",
        "gpus",
        "nodes",
        "dp",
        "pp",
        "tp",
        "ep",
        "max_batch_tokens",
        "max_seqs",
        "chunk_tokens",
        "router",
        "usd_per_hour",
        "status",
        "binding",
        "margin",
        "ttft_p99_s",
        "tpot_p99_s",
        "tokens_per_ms_per_gpu",
        "limit_tokens_per_ms_per_gpu",
        "usd_per_million_tokens",
        "joules_per_token",
        "goodput_req_s",
        "note",
    ]
    .map(String::from)
    .to_vec()
}

/// One row of `plan.csv`.
pub fn csv_row(r: &PlanRow) -> Vec<String> {
    let c = &r.candidate;
    let opt = |x: Option<f64>| x.map(format_value).unwrap_or_default();
    let summary = match &r.result {
        Some(RunResult::Finished { summary, .. }) => Some(summary),
        _ => None,
    };
    let b = binding(r);
    let note = match (&r.pruned, &r.result) {
        (Some((_, why)), _) => why.clone(),
        (_, Some(RunResult::Stopped(why, _) | RunResult::Failed(why))) => why.clone(),
        _ => String::new(),
    };
    vec![
        r.index.to_string(),
        c.gpu.clone(),
        c.gpus().to_string(),
        c.nodes.to_string(),
        c.dp.to_string(),
        c.pp.to_string(),
        c.tp.to_string(),
        c.ep.to_string(),
        c.max_batch_tokens.to_string(),
        c.max_seqs.to_string(),
        c.chunk_tokens.map(|x| x.to_string()).unwrap_or_default(),
        super::space::router_name(c.router).to_string(),
        opt(r.usd_per_hour),
        status(r),
        b.as_ref().map(|b| b.0.clone()).unwrap_or_default(),
        opt(b.map(|b| b.1)),
        opt(summary.map(|s| s.ttft_s.p99)),
        opt(summary.map(|s| s.tpot_s.p99)),
        opt(summary.map(|s| s.throughput.tokens_per_ms_per_gpu)),
        format_value(r.limit_tokens_per_ms_per_gpu),
        opt(summary.map(|s| s.cost.usd_per_million_tokens)),
        opt(summary.map(|s| s.cost.joules_per_token)),
        opt(r.goodput_req_s),
        note,
    ]
}

/// Writes `plan.csv` (every plan, in enumeration order) to `path`.
pub fn write_csv(path: &Path, s: &PlanSearch) -> Result<()> {
    let rows: Vec<Vec<String>> = s.rows.iter().map(csv_row).collect();
    crate::analysis::compare::write_table_csv(path, &header(), &rows)
}

/// The ranked table: the first `top` plans, then counts.
pub fn table(s: &PlanSearch, top: usize) -> String {
    let cols = [0usize, 2, 4, 5, 6, 7, 9, 12, 13, 14, 15, 16, 18, 22];
    let head = header();
    let mut lines: Vec<Vec<String>> = vec![cols.iter().map(|c| head[*c].clone()).collect()];
    for i in ranked(s).into_iter().take(top) {
        let row = csv_row(&s.rows[i]);
        lines.push(cols.iter().map(|c| shorten(&row[*c])).collect());
    }
    let mut w = vec![0; cols.len()];
    for l in &lines {
        for (k, cell) in l.iter().enumerate() {
            w[k] = w[k].max(cell.chars().count());
        }
    }
    let mut o = String::new();
    for l in &lines {
        let cells: Vec<String> = l.iter().enumerate().map(|(k, c)| format!("{c:<width$}", width = w[k])).collect();
        let _ = writeln!(o, "{}", cells.join("  ").trim_end());
    }
    let _ = writeln!(o, "{}", counts_line(s));
    o
}

fn shorten(cell: &str) -> String {
    match cell.parse::<f64>() {
        Ok(x) if cell.contains('.') => format!("{x:.4}"),
        _ => cell.to_string(),
    }
}

/// `500 plans: 310 pruned (invalid 200, memory 60, limit 50), 190 simulated (40 stopped early), 0 skipped`.
pub fn counts_line(s: &PlanSearch) -> String {
    let mut by_kind = std::collections::BTreeMap::new();
    let (mut sim, mut stopped, mut skipped, mut anyway) = (0, 0, 0, 0);
    for r in &s.rows {
        match (&r.pruned, &r.result) {
            (Some((k, _)), res) => {
                *by_kind.entry(k.name()).or_insert(0) += 1;
                anyway += usize::from(res.is_some());
            }
            (None, None) => skipped += 1,
            (None, Some(res)) => {
                sim += 1;
                stopped += usize::from(matches!(res, RunResult::Stopped(..)));
            }
        }
    }
    let pruned: usize = by_kind.values().sum();
    let kinds: Vec<String> = by_kind.iter().map(|(k, n)| format!("{k} {n}")).collect();
    let mut line = format!(
        "{} plans: {pruned} pruned ({}), {sim} simulated ({stopped} stopped early), {skipped} skipped (dearer than the winner)",
        s.rows.len(),
        if kinds.is_empty() { "none".into() } else { kinds.join(", ") }
    );
    if anyway > 0 {
        line += &format!("; {anyway} pruned plans simulated anyway to show what the best reach");
    }
    line
}

/// The Pareto frontier of finished runs on (x, TTFT p99): plans no other plan beats
/// on both. `x` is GPUs, or $/h with the cost objective. Sorted by x.
pub fn pareto(s: &PlanSearch) -> Vec<(f64, f64, usize)> {
    let x = |r: &PlanRow| match s.objective {
        super::Objective::Cost => r.usd_per_hour.unwrap_or(f64::INFINITY),
        _ => r.candidate.gpus() as f64,
    };
    let mut pts: Vec<(f64, f64, usize)> = s
        .rows
        .iter()
        .filter_map(|r| match (&r.pruned, &r.result) {
            (None, Some(RunResult::Finished { summary, .. })) => Some((x(r), summary.ttft_s.p99, r.index)),
            _ => None,
        })
        .collect();
    pts.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)).then(a.2.cmp(&b.2)));
    let mut out: Vec<(f64, f64, usize)> = Vec::new();
    for p in pts {
        if out.last().is_none_or(|l| p.1 < l.1) {
            out.push(p);
        }
    }
    out
}

/// Draws the frontier into `path` (SVG), with the TTFT p99 requirement as a line.
pub fn pareto_chart(path: &Path, s: &PlanSearch, ttft_bound: Option<f64>) -> Result<()> {
    let front = pareto(s);
    let mut series: Vec<Series> =
        vec![("Pareto frontier: TTFT p99".into(), front.iter().map(|(x, y, _)| (*x, *y)).collect())];
    if let (Some(b), Some(first), Some(last)) = (ttft_bound, front.first(), front.last()) {
        series.push((format!("requirement {b} s"), vec![(first.0, b), (last.0, b)]));
    }
    let x_label = if s.objective == super::Objective::Cost { "US$ per hour (list price)" } else { "GPUs" };
    crate::analysis::line_chart_svg(path, "Plans: cost against TTFT p99", x_label, "TTFT p99, s", &series)
}

/// The base scenario as `plan` searches it: the file with `set` applied, its
/// `[search]` table dropped and a trace path made absolute (so the text can be
/// written and read anywhere). TOML text.
pub fn base_text(file: &Path, set: &[Override]) -> Result<String> {
    let mut sc = crate::scenario::load(file, set)?;
    sc.search = None;
    if let Some(t) = sc.workload.trace.as_mut() {
        let p = std::path::Path::new(t.as_str());
        if p.is_relative() {
            let dir = file.parent().unwrap_or(Path::new("."));
            let abs = std::fs::canonicalize(dir.join(p)).unwrap_or_else(|_| dir.join(p));
            *t = abs.display().to_string();
        }
    }
    toml::to_string(&sc).map_err(|e| Error::Run(format!("cannot write the scenario: {e}")))
}

/// The winning plan as a scenario `clustersim run` accepts as is: `base` (from
/// [`base_text`], as if read from `file`) with the plan's overrides applied.
pub fn winner_toml(base: &str, file: &Path, cand: &super::space::Candidate) -> Result<String> {
    let sc = crate::scenario::parse(base, file, &cand.overrides())?;
    let body = toml::to_string(&sc).map_err(|e| Error::Run(format!("cannot write the winning scenario: {e}")))?;
    Ok(format!("# Written by `clustersim plan`: the winning plan {}.\n{body}", cand.label()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::plan::Objective;

    /// A plan.csv row with the given plan index, GPUs, $/h, status, TTFT p99 and J/token.
    fn row(plan: u64, gpus: u32, usd: &str, status: &str, ttft: &str, jpt: &str) -> Vec<String> {
        let mut r = vec![String::new(); header().len()];
        r[col("plan")] = plan.to_string();
        r[col("gpus")] = gpus.to_string();
        r[col("usd_per_hour")] = usd.into();
        r[col("status")] = status.into();
        r[col("ttft_p99_s")] = ttft.into();
        r[col("joules_per_token")] = jpt.into();
        r
    }

    #[test]
    fn the_winner_is_the_cheapest_passing_row_with_ties_broken_in_order() {
        let rows = vec![
            row(0, 2, "24.58", "FAIL", "9", "0.1"),
            row(1, 4, "49.16", "pass", "0.2", "0.05"),
            row(2, 4, "49.16", "pass", "0.1", "0.06"),
            row(3, 8, "40", "pass", "0.3", "0.04"),
            row(4, 4, "49.16", "pass", "0.1", "0.06"),
        ];
        // Fewest GPUs: 4; among rows 1, 2, 4 the lowest TTFT is 0.1 (rows 2 and 4): the first, 2.
        assert_eq!(winner_of_table(&rows, Objective::Gpus), Some(2));
        // Lowest $/h among passing rows: row 3 at 40.
        assert_eq!(winner_of_table(&rows, Objective::Cost), Some(3));
        // Fewest joules per token: row 3 at 0.04.
        assert_eq!(winner_of_table(&rows, Objective::Energy), Some(3));
        assert_eq!(winner_of_table(&rows[..1], Objective::Gpus), None);
    }

    #[test]
    fn a_row_gives_back_its_plan() {
        let c = super::super::space::Candidate {
            gpu: "h100-sxm".into(),
            nodes: 2,
            dp: 3,
            pp: 2,
            tp: 2,
            ep: 1,
            max_batch_tokens: 4096,
            max_seqs: 64,
            chunk_tokens: Some(512),
            router: crate::scenario::types::RouterKind::LeastOutstanding,
        };
        let r = PlanRow {
            index: 7,
            candidate: c.clone(),
            limit_tokens_per_ms_per_gpu: 1.5,
            usd_per_hour: None,
            pruned: None,
            result: None,
            goodput_req_s: None,
        };
        assert_eq!(candidate_of_row(&csv_row(&r)).unwrap(), c);
    }
}
