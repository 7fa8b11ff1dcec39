//! A plan search split over the tasks of a batch job (e.g. a Slurm array) with the
//! shard layer of [`crate::analysis::shard`], and merged back.
//!
//! Each task (`plan --shard K/N` or `--shard auto`) prunes every plan, simulates
//! its own (index % N == K - 1) to a decision and writes `shard-K-of-N.json` of
//! kind `plan` with those plans' `plan.csv` rows, plus `plan-job.json` (the base
//! scenario as searched and the objective: the same bytes from every task). The
//! merge joins the rows in plan order and writes `plan.csv` with the writer an
//! unsharded search uses, so it is byte for byte the `plan.csv` of
//! `plan --exhaustive` on one machine (goodput aside: shards do not bisect), then
//! picks the winner from the table by the rule the search uses
//! ([`super::report::winner_of_table`]) and writes `winner.toml`.

use super::{report, Objective, PlanOptions, PlanSearch};
use crate::analysis::shard::{Merged, Shard, ShardFile, SHARD_FORMAT};
use crate::error::{Error, Result};
use crate::output::files;
use crate::scenario::Override;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The shard kind of plan searches.
pub const KIND: &str = "plan";
/// The job file every task writes beside its shard.
pub const JOB_FILE: &str = "plan-job.json";

/// What a merge needs besides the rows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlanJob {
    /// `gpus`, `cost` or `energy`.
    pub objective: String,
    /// The base scenario as searched ([`report::base_text`]).
    pub scenario_toml: String,
}

/// The fingerprint of a search: program version, the base scenario as searched,
/// the trace's bytes, the search space, the objective and the early-stop switch.
pub fn fingerprint(file: &Path, set: &[Override], opts: &PlanOptions) -> Result<String> {
    let base = report::base_text(file, set)?;
    let cfg = super::search_config(file, set, opts.space_file.as_deref())?;
    let space = toml::to_string(&cfg).map_err(|e| Error::Run(format!("cannot serialize the space: {e}")))?;
    let mut bytes = format!(
        "clustersim {}\nplan\n{base}\n{space}\nobjective {}\nearly_stop {}\n",
        env!("CARGO_PKG_VERSION"),
        opts.objective.name(),
        opts.early_stop
    )
    .into_bytes();
    if let Some(trace) = crate::scenario::load_setup(file, set)?.trace_path {
        bytes.extend(std::fs::read(&trace).map_err(|e| Error::io(&trace, e))?);
    }
    Ok(crate::analysis::shard::fingerprint(&bytes))
}

/// The shard file of `found`, searched as `shard`.
pub fn shard_file(found: &PlanSearch, shard: Shard, fingerprint: String) -> ShardFile {
    ShardFile {
        format: SHARD_FORMAT,
        kind: KIND.into(),
        version: env!("CARGO_PKG_VERSION").into(),
        build: crate::analysis::shard::build_id(),
        fingerprint,
        shard: shard.k,
        shards: shard.n,
        total_points: found.rows.len() as u64,
        columns: report::header(),
        rows: found
            .rows
            .iter()
            .filter(|r| shard.contains(r.index as u64))
            .map(|r| (r.index as u64, report::csv_row(r)))
            .collect(),
    }
}

/// Writes `plan-job.json` into `dir` (atomically; every task writes the same bytes).
pub fn write_job(dir: &Path, file: &Path, set: &[Override], objective: Objective) -> Result<()> {
    let job = PlanJob { objective: objective.name().into(), scenario_toml: report::base_text(file, set)? };
    let text = serde_json::to_string_pretty(&job).map_err(|e| Error::Run(format!("{JOB_FILE}: {e}")))?;
    files::write_atomic(&dir.join(JOB_FILE), text.as_bytes())
}

/// The kind of the shards among `inputs` (`sweep`, `plan`), from the first one.
pub fn shard_kind(inputs: &[PathBuf]) -> Result<String> {
    let first = crate::analysis::shard::find_shard_files(inputs)?;
    let path = first.first().ok_or_else(|| Error::Usage("merge: no shard files given".into()))?;
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Error::Usage(format!("{}: not a clustersim shard file: {e}", path.display())))?;
    Ok(v.get("kind").and_then(|k| k.as_str()).unwrap_or("").to_string())
}

/// A merged search: the table, the winner's position in it and its scenario.
pub struct MergedPlan {
    /// The joined shards.
    pub merged: Merged,
    /// Position of the winner in `merged.rows`.
    pub winner: Option<usize>,
    /// The winner's scenario TOML.
    pub winner_toml: Option<String>,
}

/// Joins the plan shards among `inputs` and writes `plan.csv` into `out_dir`. The
/// job file is read from the folder of the first shard.
pub fn merge(inputs: &[PathBuf], out_dir: &Path) -> Result<MergedPlan> {
    let found = crate::analysis::shard::find_shard_files(inputs)?;
    let merged = crate::analysis::shard::merge(&found, KIND)?;
    let job_path = found.first().and_then(|p| p.parent()).unwrap_or(Path::new(".")).join(JOB_FILE);
    let text = std::fs::read_to_string(&job_path).map_err(|e| Error::io(&job_path, e))?;
    let job: PlanJob = serde_json::from_str(&text)
        .map_err(|e| Error::Usage(format!("{}: not a plan job file: {e}", job_path.display())))?;
    let objective = match job.objective.as_str() {
        "gpus" => Objective::Gpus,
        "cost" => Objective::Cost,
        "energy" => Objective::Energy,
        other => return Err(Error::Usage(format!("{}: unknown objective `{other}`", job_path.display()))),
    };
    crate::analysis::compare::write_table_csv(&out_dir.join("plan.csv"), &merged.columns, &merged.rows)?;
    let winner = report::winner_of_table(&merged.rows, objective);
    let winner_toml = match winner {
        Some(k) => {
            let cand = report::candidate_of_row(&merged.rows[k])?;
            Some(report::winner_toml(&job.scenario_toml, &job_path, &cand)?)
        }
        None => None,
    };
    Ok(MergedPlan { merged, winner, winner_toml })
}
