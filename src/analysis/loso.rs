//! Leave-one-source-out validation of the engine profiles: for each profile and each
//! source of its dense serving rows, the profile's fitted parameters
//! (`fitted_parameters`) are refitted on the other sources' dense rows of the same
//! engine, and the left-out source's rows are simulated with the refit. A source the
//! shipped fit never saw needs no refit: the shipped profile already is that fit
//! (`calibrate` is deterministic and only the rows it was given shape it). MoE rows are
//! left to the table by class: the profiles are fitted to dense rows.

use crate::analysis::calibrate::{fit, simulate_all, Settings};
use crate::analysis::limit::thousands;
use crate::analysis::measured::Measurement;
use crate::analysis::validation::{median_and_worst, Row};
use crate::model::framework::{framework_profile, FrameworkProfile, Parameter, PARAMETERS};

/// Most objective evaluations of a refit: shorter than a shipped fit's (200) because
/// refits run inside `clustersim validation`; the fitted parameters are few and smooth.
pub const REFIT_MAX_EVALS: u32 = 60;
/// Stop a refit when the search step is below this fraction of each parameter's range.
pub const REFIT_TOLERANCE: f64 = 0.02;

/// One left-out source of one profile.
#[derive(Clone, Debug, PartialEq)]
pub struct SourceLine {
    /// The engine profile.
    pub profile: String,
    /// The source left out.
    pub source: String,
    /// How its figures were obtained (refit, shipped fit, or why there are none).
    pub how: String,
    /// Signed errors of its rows, % (empty when no held-out figure exists).
    pub errors: Vec<f64>,
}

/// The profile's fitted parameters, in its order.
fn fitted(p: &FrameworkProfile) -> Vec<Parameter> {
    p.fitted_parameters.iter().filter_map(|k| PARAMETERS.iter().find(|q| q.key == k.as_str()).copied()).collect()
}

fn error_pct(m: &Measurement, sim: &Result<f64, String>) -> Option<f64> {
    sim.as_ref().ok().map(|v| (v - m.value) / m.value * 100.0)
}

/// Leave-one-source-out over `cases` and their rows (`rows[i]` is `cases[i]` run under
/// its shipped profile), each simulated with at most `max_requests` requests.
pub fn leave_one_source_out(cases: &[Measurement], rows: &[Row], max_requests: u32) -> Vec<SourceLine> {
    let dense: Vec<usize> = (0..cases.len()).filter(|&i| !cases[i].is_moe()).collect();
    let mut out = Vec::new();
    let mut names: Vec<&str> = Vec::new();
    for &i in &dense {
        if !names.contains(&cases[i].engine_profile()) {
            names.push(cases[i].engine_profile());
        }
    }
    for name in names {
        let Some(profile) = framework_profile(name) else { continue };
        let mine: Vec<usize> = dense.iter().copied().filter(|&i| cases[i].engine_profile() == name).collect();
        let mut sources: Vec<&str> = Vec::new();
        for &i in &mine {
            if !sources.contains(&cases[i].source.as_str()) {
                sources.push(&cases[i].source);
            }
        }
        for source in &sources {
            let (test, train): (Vec<usize>, Vec<usize>) = mine.iter().partition(|&&i| cases[i].source == *source);
            out.push(held_out(&profile, source, cases, rows, &test, &train, max_requests));
        }
    }
    out
}

/// The line of `source` (rows `test`), refitted on rows `train` when needed.
fn held_out(
    profile: &FrameworkProfile,
    source: &str,
    cases: &[Measurement],
    rows: &[Row],
    test: &[usize],
    train: &[usize],
    max_requests: u32,
) -> SourceLine {
    let line = |how: String, errors: Vec<f64>| SourceLine {
        profile: profile.name.clone(),
        source: source.to_string(),
        how,
        errors,
    };
    let shipped = || test.iter().filter_map(|&i| rows[i].error_pct()).collect::<Vec<_>>();
    let free = fitted(profile);
    if free.is_empty() {
        return line("not fitted: shipped values".into(), shipped());
    }
    let saw = test.iter().any(|&i| profile.fitted_rows.contains(&cases[i].configuration()));
    if !saw {
        return line("shipped fit (fitted without this source)".into(), shipped());
    }
    if train.is_empty() {
        return line("none: the profile's only source".into(), Vec::new());
    }
    let train_rows: Vec<Measurement> = train.iter().map(|&i| cases[i].clone()).collect();
    let test_rows: Vec<Measurement> = test.iter().map(|&i| cases[i].clone()).collect();
    let s = Settings { max_requests, tolerance: REFIT_TOLERANCE, max_evals: REFIT_MAX_EVALS };
    let refit = fit(profile, &free, &train_rows, &s);
    let sims = simulate_all(&refit.profile, &test_rows, max_requests);
    let errors = test_rows.iter().zip(&sims).filter_map(|(m, v)| error_pct(m, v)).collect();
    let keys: Vec<String> =
        free.iter().map(|p| format!("{} {}", p.key, refit.profile.get(p.key).unwrap_or(f64::NAN))).collect();
    line(format!("refit on the other sources' {} rows: {}", train.len(), keys.join(", ")), errors)
}

/// The lines as Markdown, then the median and worst over every held-out row.
pub fn markdown(lines: &[SourceLine]) -> String {
    let mut s = String::from(
        "| profile | left-out source | rows | held out by | median abs error % | worst % |\n|---|---|---:|---|---:|---:|\n",
    );
    for l in lines {
        let stats = median_and_worst(&l.errors).map_or("- | -".into(), |(m, w)| format!("{m:.1} | {w:.1}"));
        s.push_str(&format!("| {} | {} | {} | {} | {stats} |\n", l.profile, l.source, l.errors.len(), l.how));
    }
    let all: Vec<f64> = lines.iter().flat_map(|l| l.errors.iter().copied()).collect();
    let per_source: Vec<f64> =
        lines.iter().filter_map(|l| median_and_worst(&l.errors).map(|(m, _)| m)).collect::<Vec<_>>();
    match (median_and_worst(&all), median_and_worst(&per_source)) {
        (Some((m, w)), Some((ms, _))) => s.push_str(&format!(
            "\nleave-one-source-out: {} rows of {} sources, median {m:.1} %, worst {w:.1} %; median of the sources' medians {ms:.1} %\n",
            thousands(all.len() as f64),
            per_source.len()
        )),
        _ => s.push_str("\nleave-one-source-out: no held-out row\n"),
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(errors: &[f64]) -> SourceLine {
        SourceLine { profile: "p".into(), source: "s".into(), how: "h".into(), errors: errors.to_vec() }
    }

    #[test]
    fn the_summary_takes_every_held_out_row_and_each_sources_median() {
        // All rows |-2|, 4, |-30|, 10 sorted: 2, 4, 10, 30: median (4 + 10) / 2 = 7,
        // worst 30. Source one's median of 2, 4, 30 is 4, source two's 10: median 7.
        let text = markdown(&[line(&[-2.0, 4.0, -30.0]), line(&[10.0]), line(&[])]);
        assert!(text.contains("4 rows of 2 sources, median 7.0 %, worst 30.0 %"), "{text}");
        assert!(text.contains("median of the sources' medians 7.0 %"), "{text}");
        assert!(text.contains("| p | s | 0 | h | - | - |"), "{text}");
    }
}
