//! Reading a sweep's table back: the headline table printed after a sweep or a
//! merge, and the chart series of one metric against the first varied key.
//!
//! Both work from the table as written (header and text cells), so a sweep run on
//! one machine and one merged from shards print and draw the same thing.

use super::compare::{render, short_value};
use super::{all_metric_names, Series};

/// The figures that decide a deployment, in the order printed: requests finished
/// and dropped, throughput per GPU, tail latencies, GPU busy share, overhead.
pub const HEADLINE: [&str; 7] = [
    "requests.completed",
    "requests.dropped",
    "throughput.tokens_per_ms_per_gpu",
    "ttft_s.p99",
    "tpot_s.p99",
    "gpu.utilization_mean",
    "overhead.fraction",
];

/// Points printed in the headline table; a terminal shows no more usefully, and
/// every point is in `sweep.csv`.
pub const MAX_TABLE_ROWS: usize = 50;

/// A sweep table: `point`, the varied keys, the metrics, `error`.
#[derive(Clone, Debug)]
pub struct SweepTable<'a> {
    columns: &'a [String],
    rows: &'a [Vec<String>],
    /// Number of varied keys (columns 1..=keys).
    keys: usize,
}

impl<'a> SweepTable<'a> {
    /// Wraps a table. The varied keys are the columns between `point` and the first
    /// summary figure.
    pub fn new(columns: &'a [String], rows: &'a [Vec<String>]) -> Self {
        // Any figure a summary can have, optional sections included: a sweep's columns
        // are the union of its points' figures.
        let names = all_metric_names();
        let first_metric = columns.iter().position(|c| names.contains(c)).unwrap_or(columns.len());
        SweepTable { columns, rows, keys: first_metric.saturating_sub(1) }
    }

    /// The varied keys.
    pub fn keys(&self) -> &[String] {
        self.columns.get(1..=self.keys).unwrap_or(&[])
    }

    fn col(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }

    fn number(&self, row: &[String], col: Option<usize>) -> Option<f64> {
        col.and_then(|c| row.get(c)).and_then(|v| v.parse::<f64>().ok())
    }

    /// The headline table as aligned text: one row per point (the first
    /// [`MAX_TABLE_ROWS`], then a line saying how many more) with its varied
    /// values, the [`HEADLINE`] figures (4 significant digits) and, when some
    /// point failed, the error without the scenario file's path, cut to 60
    /// characters (the full text is in `sweep.csv` and on stderr).
    pub fn render_headline(&self) -> String {
        let mut header: Vec<String> = vec!["point".into()];
        header.extend(self.keys().iter().cloned());
        let shown: Vec<(&str, Option<usize>)> =
            HEADLINE.iter().map(|m| (*m, self.col(m))).filter(|(_, c)| c.is_some()).collect();
        header.extend(shown.iter().map(|(m, _)| m.to_string()));
        let error_col = self.col("error");
        let error_of = |r: &'a Vec<String>| error_col.and_then(|c| r.get(c)).map(String::as_str).unwrap_or("");
        // The error column only when some point failed.
        let any_error = self.rows.iter().any(|r| !error_of(r).is_empty());
        if any_error {
            header.push("error".into());
        }
        let rows: Vec<Vec<String>> = self
            .rows
            .iter()
            .take(MAX_TABLE_ROWS)
            .map(|r| {
                let mut out: Vec<String> = r.iter().take(1 + self.keys).cloned().collect();
                out.extend(shown.iter().map(|(_, c)| self.number(r, *c).map(short_value).unwrap_or_default()));
                if !any_error {
                    return out;
                }
                // Every point has the same scenario file; its path leads most errors
                // and says nothing about why this point failed.
                let err = error_of(r);
                let err = match err.split_once(".toml: ") {
                    Some((path, rest)) if !path.contains(' ') => rest,
                    _ => err,
                };
                out.push(if err.chars().count() > 60 {
                    format!("{}...", err.chars().take(57).collect::<String>())
                } else {
                    err.to_string()
                });
                out
            })
            .collect();
        let mut text = render(&header, &rows);
        if self.rows.len() > MAX_TABLE_ROWS {
            text.push_str(&format!("... {} more points in sweep.csv\n", self.rows.len() - MAX_TABLE_ROWS));
        }
        text
    }

    /// The first key's distinct values in order of appearance, when some is not a
    /// number (charts then place them at 0, 1, 2, ...); `None` when all are numbers.
    pub fn x_categories(&self) -> Option<Vec<String>> {
        let mut firsts: Vec<String> = Vec::new();
        for r in self.rows {
            if let Some(v) = r.get(1).filter(|v| !firsts.contains(v)) {
                firsts.push(v.clone());
            }
        }
        (self.keys >= 1 && firsts.iter().any(|v| v.parse::<f64>().is_err())).then_some(firsts)
    }

    /// One series per combination of the other varied keys: `metric` against the
    /// first key's values (as numbers, or their positions among
    /// [`SweepTable::x_categories`]). Points without the metric (failed runs) are
    /// left out.
    pub fn series(&self, metric: &str) -> Vec<Series> {
        let (Some(m), true) = (self.col(metric), self.keys >= 1) else { return Vec::new() };
        let categories = self.x_categories();
        let mut series: Vec<Series> = Vec::new();
        for r in self.rows {
            let (Some(first), Some(y)) = (r.get(1), self.number(r, Some(m))) else { continue };
            let x = match (&categories, first.parse::<f64>()) {
                (None, Ok(x)) => x,
                (Some(names), _) => names.iter().position(|f| f == first).unwrap_or(0) as f64,
                (None, Err(_)) => continue, // cannot happen: no categories means every value parses
            };
            let label = self
                .keys()
                .iter()
                .zip(r.iter().skip(1))
                .skip(1)
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(", ");
            match series.iter_mut().find(|(l, _)| *l == label) {
                Some((_, pts)) => pts.push((x, y)),
                None => series.push((label, vec![(x, y)])),
            }
        }
        series
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> (Vec<String>, Vec<Vec<String>>) {
        let mut cols: Vec<String> = vec!["point".into(), "a".into(), "b".into()];
        let names = crate::analysis::summary_metric_names();
        cols.extend(names.iter().cloned());
        cols.push("error".into());
        let ttft = 3 + names.iter().position(|n| n == "ttft_s.p99").unwrap();
        let mut rows = Vec::new();
        // a in {1, 10}, b in {x, y}; ttft = a + 0.5 if b = y; point 3 failed.
        for (i, (a, b)) in [("1", "x"), ("1", "y"), ("10", "x"), ("10", "y")].iter().enumerate() {
            let mut r = vec![String::new(); cols.len()];
            r[0] = i.to_string();
            r[1] = a.to_string();
            r[2] = b.to_string();
            if i < 3 {
                r[ttft] = (a.parse::<f64>().unwrap() + if *b == "y" { 0.5 } else { 0.0 }).to_string();
            } else {
                *r.last_mut().unwrap() = "does not fit".repeat(10);
            }
            rows.push(r);
        }
        (cols, rows)
    }

    #[test]
    fn series_group_by_the_other_keys_and_skip_failed_points() {
        let (cols, rows) = table();
        let t = SweepTable::new(&cols, &rows);
        assert_eq!(t.keys(), ["a", "b"]);
        let s = t.series("ttft_s.p99");
        assert_eq!(s, vec![("b=x".to_string(), vec![(1.0, 1.0), (10.0, 10.0)]), ("b=y".to_string(), vec![(1.0, 1.5)])]);
    }

    #[test]
    fn names_become_categories_in_order_of_appearance() {
        let (cols, mut rows) = table();
        for (r, name) in rows.iter_mut().zip(["rr", "rr", "lo", "lo"]) {
            r[1] = name.to_string();
        }
        let t = SweepTable::new(&cols, &rows);
        assert_eq!(t.x_categories(), Some(vec!["rr".to_string(), "lo".to_string()]));
        // rr sits at 0, lo at 1; the figures are those of the numeric case above.
        let s = t.series("ttft_s.p99");
        assert_eq!(s, vec![("b=x".to_string(), vec![(0.0, 1.0), (1.0, 10.0)]), ("b=y".to_string(), vec![(0.0, 1.5)])]);
        let (cols, rows) = table();
        assert_eq!(SweepTable::new(&cols, &rows).x_categories(), None);
    }

    #[test]
    fn headline_has_the_keys_the_headline_figures_and_a_short_error() {
        for m in HEADLINE {
            assert!(crate::analysis::summary_metric_names().iter().any(|n| n == m), "{m} is not a summary figure");
        }
        let (cols, rows) = table();
        let text = SweepTable::new(&cols, &rows).render_headline();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5, "{text}");
        let head: Vec<&str> = lines[0].split_whitespace().collect();
        assert_eq!(head[..4], ["point", "a", "b", "requests.completed"]);
        assert_eq!(head.len(), 3 + HEADLINE.len() + 1);
        assert!(lines[2].contains("1.500"), "{text}");
        // 120 characters of error cut to their first 57 + "...".
        let cut: String = "does not fit".repeat(10).chars().take(57).collect();
        assert!(lines[4].ends_with(&format!("{cut}...")), "{text}");
        let many: Vec<Vec<String>> = (0..MAX_TABLE_ROWS + 7).map(|i| rows[i % 3].clone()).collect();
        let text = SweepTable::new(&cols, &many).render_headline();
        assert_eq!(text.lines().count(), 1 + MAX_TABLE_ROWS + 1);
        assert!(text.ends_with("... 7 more points in sweep.csv\n"), "{text}");
    }
}
