//! `clustersim calibrate`: fits an engine profile's free parameters to measurements.
//!
//! Input: measurement CSVs (the validation set's format, `analysis::measured`) and/or
//! result JSONs of vLLM's `benchmark_serving.py --save-result` (`vllm_json`). Each row
//! is simulated under a candidate profile; a deterministic bounded search (`fit`)
//! minimizes the mean squared log error. Printed: every row's measured value, its
//! in-sample simulation and error, and its held-out one (refitted without the row's
//! source, or without the row). Written (only with `--out`, all or nothing, never over
//! an existing file without `--force`): the base profile with the fitted values.

mod fit;
mod vllm_json;
mod write;

pub use fit::{fit, objective, round4, simulate_all, Fitted, Settings};

use crate::analysis::limit::thousands;
use crate::analysis::measured::{parse_csv, Measurement};
use crate::analysis::validation::median_and_worst;
use crate::error::{Error, InputError, Result};
use crate::model::framework::{parse_profile, FrameworkProfile, Parameter, PARAMETERS, SHIPPED};
use std::path::{Path, PathBuf};

/// How held-out errors are computed.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrossValidate {
    /// Refit without each source in turn; predict that source's rows.
    Source,
    /// Refit without each row in turn (one fit per row: slow).
    Row,
    /// No held-out errors.
    None,
}

/// `clustersim calibrate`.
#[derive(clap::Args, Debug, Clone)]
pub struct CalibrateArgs {
    /// Measurement files: CSV (validation format; see README) or vLLM result JSON (`.json`).
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Profile to start from and keep the other values of: a shipped name or a `.toml` file.
    #[arg(long, default_value = "optimized")]
    pub base: String,
    /// Parameters to fit, comma-separated (e.g. per_seq_overhead_us,memory_efficiency).
    #[arg(long, value_delimiter = ',', required = true)]
    pub fit: Vec<String>,
    /// Only rows whose engine starts with this text (case-insensitive), e.g. TensorRT-LLM.
    #[arg(long)]
    pub engine: Option<String>,
    /// Only rows whose configuration contains this text (case-insensitive), e.g. H200.
    #[arg(long)]
    pub only: Option<String>,
    /// Leave out mixture-of-experts rows.
    #[arg(long)]
    pub dense: bool,
    /// Held-out errors: by source, by row, or none.
    #[arg(long, value_enum, default_value_t = CrossValidate::Source)]
    pub cross_validate: CrossValidate,
    /// Most requests simulated per row (the row's own count when smaller).
    #[arg(long, default_value_t = 1000)]
    pub max_requests: u32,
    /// Stop when the search step is below this fraction of each parameter's range.
    #[arg(long, default_value_t = 0.01)]
    pub tolerance: f64,
    /// Most simulations of the whole row set per fit.
    #[arg(long, default_value_t = 200)]
    pub max_evals: u32,
    /// Name of the written profile (default: the base's).
    #[arg(long)]
    pub name: Option<String>,
    /// Write the fitted profile here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Replace `--out` if it exists.
    #[arg(long)]
    pub force: bool,
}

/// Runs `clustersim calibrate`; exit status 0.
pub fn command(a: &CalibrateArgs) -> Result<i32> {
    let (base, base_text, base_file) = base_profile(&a.base)?;
    let free = free_parameters(&a.fit)?;
    if !(a.tolerance > 0.0 && a.tolerance < 0.25) || a.max_evals == 0 || a.max_requests == 0 {
        return Err(Error::Usage("--tolerance must be in (0, 0.25), --max-evals and --max-requests at least 1".into()));
    }
    if let Some(out) = &a.out {
        if out.exists() && !a.force {
            return Err(Error::Usage(format!("{}: exists; pass --force to replace it", out.display())));
        }
    }
    let rows = select(read_inputs(&a.inputs)?, a)?;
    let settings = Settings { max_requests: a.max_requests, tolerance: a.tolerance, max_evals: a.max_evals };
    let mut fitted = fit(&base, &free, &rows, &settings);
    fitted.profile.name = a.name.clone().unwrap_or(base.name.clone());
    fitted.profile.fitted_rows = rows.iter().map(Measurement::configuration).collect();
    fitted.profile.fitted_parameters = free.iter().map(|p| p.key.to_string()).collect();
    let in_sample = simulate_all(&fitted.profile, &rows, a.max_requests);
    let held_out = cross_validate(&base, &free, &rows, &settings, a.cross_validate);
    print!("{}", report(&rows, &in_sample, held_out.as_deref(), &fitted, &free));
    if let Some(out) = &a.out {
        let data: Vec<String> = a.inputs.iter().map(|p| p.display().to_string()).collect();
        let text =
            write::profile_text(&base_text, &base_file, &fitted.profile, &free, &command_line(a), &data.join(", "))?;
        // The written text must load back as the profile just fitted.
        parse_profile(&text, out).map_err(|e| Error::Run(format!("the fitted profile does not read back: {e}")))?;
        crate::output::files::write_atomic(out, text.as_bytes())?;
        println!("\nwrote {}", out.display());
    }
    Ok(0)
}

/// The base profile, its text and the file it came from.
fn base_profile(spec: &str) -> Result<(FrameworkProfile, String, PathBuf)> {
    if let Some((name, text)) = SHIPPED.iter().find(|(n, _)| *n == spec) {
        let file = PathBuf::from(format!("profiles/{name}.toml"));
        return Ok((parse_profile(text, &file)?, text.to_string(), file));
    }
    if !spec.ends_with(".toml") {
        let known: Vec<&str> = SHIPPED.iter().map(|(n, _)| *n).collect();
        return Err(Error::Usage(format!("--base {spec}: unknown; known: {}, or a .toml file", known.join(", "))));
    }
    let file = PathBuf::from(spec);
    let text = crate::textfile::read_text(&file, "profile file")?;
    Ok((parse_profile(&text, &file)?, text, file))
}

fn free_parameters(keys: &[String]) -> Result<Vec<Parameter>> {
    let mut out: Vec<Parameter> = Vec::new();
    for k in keys {
        let p = PARAMETERS.iter().find(|p| p.key == k.trim()).ok_or_else(|| {
            let known: Vec<&str> = PARAMETERS.iter().map(|p| p.key).collect();
            Error::Usage(format!("--fit {k}: unknown parameter; known: {}", known.join(", ")))
        })?;
        if out.iter().any(|q| q.key == p.key) {
            return Err(Error::Usage(format!("--fit names {} twice", p.key)));
        }
        out.push(*p);
    }
    Ok(out)
}

fn read_inputs(paths: &[PathBuf]) -> Result<Vec<Measurement>> {
    let mut out = Vec::new();
    for p in paths {
        let text = crate::textfile::read_text(p, "measurements file")?;
        if is_vllm_json(p) {
            out.extend(vllm_json::parse(&text, p)?);
        } else {
            out.extend(parse_csv(&text, p)?);
        }
    }
    Ok(out)
}

fn select(rows: Vec<Measurement>, a: &CalibrateArgs) -> Result<Vec<Measurement>> {
    let lower = |s: &Option<String>| s.as_ref().map(|s| s.to_lowercase());
    let (engine, only) = (lower(&a.engine), lower(&a.only));
    let rows: Vec<Measurement> = rows
        .into_iter()
        .filter(|m| engine.as_ref().is_none_or(|e| m.engine.to_lowercase().starts_with(e.as_str())))
        .filter(|m| only.as_ref().is_none_or(|o| m.configuration().to_lowercase().contains(o.as_str())))
        .filter(|m| !(a.dense && m.is_moe()))
        .collect();
    if rows.is_empty() {
        return Err(Error::Input(InputError::file(&a.inputs[0], "no row is left after --engine, --only and --dense")));
    }
    Ok(rows)
}

/// Held-out simulated values (row order), or None when not asked for or impossible
/// (one source only under `source`).
fn cross_validate(
    base: &FrameworkProfile,
    free: &[Parameter],
    rows: &[Measurement],
    s: &Settings,
    how: CrossValidate,
) -> Option<Vec<std::result::Result<f64, String>>> {
    let key = |m: &Measurement, i: usize| match how {
        CrossValidate::Source => m.source.clone(),
        _ => i.to_string(),
    };
    let mut groups: Vec<String> = Vec::new();
    for (i, m) in rows.iter().enumerate() {
        if !groups.contains(&key(m, i)) {
            groups.push(key(m, i));
        }
    }
    if how == CrossValidate::None || groups.len() < 2 {
        return None;
    }
    let mut out: Vec<std::result::Result<f64, String>> = vec![Err("not held out".into()); rows.len()];
    for g in &groups {
        let (test, train): (Vec<usize>, Vec<usize>) = (0..rows.len()).partition(|&i| &key(&rows[i], i) == g);
        let train_rows: Vec<Measurement> = train.iter().map(|&i| rows[i].clone()).collect();
        let test_rows: Vec<Measurement> = test.iter().map(|&i| rows[i].clone()).collect();
        let f = fit(base, free, &train_rows, s);
        for (i, v) in test.iter().zip(simulate_all(&f.profile, &test_rows, s.max_requests)) {
            out[*i] = v;
        }
    }
    Some(out)
}

/// A figure for the table: thousands separated from 1,000 up, 4 significant digits below
/// (latencies in ms would otherwise lose their decimals).
pub fn figure(v: f64) -> String {
    if v.abs() >= 1000.0 {
        thousands(v)
    } else {
        format!("{}", round4(v))
    }
}

fn error_pct(m: &Measurement, s: &std::result::Result<f64, String>) -> Option<f64> {
    s.as_ref().ok().map(|v| (v - m.value) / m.value * 100.0)
}

fn report(
    rows: &[Measurement],
    in_sample: &[std::result::Result<f64, String>],
    held_out: Option<&[std::result::Result<f64, String>]>,
    fitted: &Fitted,
    free: &[Parameter],
) -> String {
    let mut s =
        String::from("| source | configuration | metric | measured | fitted | error % | held out | error % |\n");
    s.push_str("|---|---|---|---:|---:|---:|---:|---:|\n");
    let cell = |m: &Measurement, v: Option<&std::result::Result<f64, String>>| match v {
        Some(Ok(x)) => format!("{} | {:+.1}", figure(*x), error_pct(m, &Ok(*x)).unwrap_or(f64::NAN)),
        Some(Err(why)) => format!("n/a ({why}) | -"),
        None => "- | -".into(),
    };
    for (i, m) in rows.iter().enumerate() {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            m.source,
            m.configuration(),
            m.metric,
            figure(m.value),
            cell(m, in_sample.get(i)),
            cell(m, held_out.and_then(|h| h.get(i)))
        ));
    }
    let stats = |sims: &[std::result::Result<f64, String>]| {
        let errs: Vec<f64> = rows.iter().zip(sims).filter_map(|(m, v)| error_pct(m, v)).collect();
        median_and_worst(&errs).map_or("n/a".to_string(), |(m, w)| format!("median {m:.1} %, worst {w:.1} %"))
    };
    s.push_str(&format!("\nin-sample ({} rows): {}\n", rows.len(), stats(in_sample)));
    match held_out {
        Some(h) => s.push_str(&format!("held out: {}\n", stats(h))),
        None => s.push_str("held out: n/a (one source only, or --cross-validate none)\n"),
    }
    s.push_str(&format!("search: {} evaluations, mean squared log error {:.6}\n", fitted.evals, fitted.objective));
    for p in free {
        s.push_str(&format!("{} = {}\n", p.key, fitted.profile.get(p.key).unwrap_or(f64::NAN)));
    }
    s
}

/// The command as a reproducible line (no absolute paths added, options in a fixed order).
fn command_line(a: &CalibrateArgs) -> String {
    let mut s = String::from("clustersim calibrate");
    for p in &a.inputs {
        s.push_str(&format!(" {}", p.display()));
    }
    s.push_str(&format!(" --base {} --fit {}", a.base, a.fit.join(",")));
    if let Some(e) = &a.engine {
        s.push_str(&format!(" --engine {e}"));
    }
    if let Some(o) = &a.only {
        s.push_str(&format!(" --only {o}"));
    }
    if a.dense {
        s.push_str(" --dense");
    }
    s.push_str(&format!(" --max-requests {} --tolerance {} --max-evals {}", a.max_requests, a.tolerance, a.max_evals));
    if let Some(n) = &a.name {
        s.push_str(&format!(" --name {n}"));
    }
    s
}

/// Whether `path` names a file `calibrate` would read as vLLM JSON.
pub fn is_vllm_json(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "json")
}
