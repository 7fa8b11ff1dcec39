//! The validation set's table: a subset run through the library, its structure, and its
//! errors computed as (simulated - measured) / measured.

mod common;

use clustersim::analysis::validation::{markdown, run, summary, Options, Row};

fn subset() -> Vec<Row> {
    // Llama-3.1-8B on H100 at 128/128 (few short requests: fast in debug builds) plus
    // every kernel and link row on H100.
    let serving = run(&Options { max_requests: 64, only: Some("Llama-3.1-8B fp8 H100-SXM-80GB TP1 128/128".into()) });
    let mut rows = serving.expect("runs");
    rows.extend(run(&Options { max_requests: 1, only: Some("H100-SXM-80GB FlashAttention".into()) }).expect("runs"));
    rows.extend(run(&Options { max_requests: 1, only: Some("NCCL".into()) }).expect("runs"));
    rows
}

#[test]
fn a_subset_runs_and_errors_are_relative_to_the_measurement() {
    let rows = subset();
    // 1 serving row, 6 FlashAttention-3 rows, 1 ring all-reduce row (the NVLS row's
    // `what` also names NCCL's default: 2 NCCL rows).
    assert_eq!(rows.len(), 1 + 6 + 2, "{}", markdown(&rows));
    let serving = &rows[0];
    assert_eq!(serving.class, "dense throughput");
    assert_eq!(serving.measured, 28312.0);
    for r in &rows {
        let sim = *r.simulated.as_ref().expect("every subset row simulates");
        assert!(sim > 0.0, "{}: {sim}", r.configuration);
        let want = (sim - r.measured) / r.measured * 100.0;
        assert_eq!(r.error_pct(), Some(want));
    }
    // The ring all-reduce busbw row: 450 GB/s x 0.82 = 369 GB/s against 370 measured:
    // (369 - 370) / 370 = -0.27 %.
    let ring = rows.iter().find(|r| r.configuration.contains("NCCL_ALGO=RING")).expect("row");
    let e = ring.error_pct().expect("simulated");
    assert!((e - (369.0 - 370.0) / 370.0 * 100.0).abs() < 1e-6, "{e}");
}

#[test]
fn the_table_has_every_row_and_a_summary_by_class() {
    let rows = subset();
    let table = markdown(&rows);
    assert!(table.starts_with("| source | configuration | profile | metric | measured | simulated | error % |"));
    // The serving row ran under its engine's profile; trtllm was not fitted to H100 rows.
    assert!(table.contains("| Llama-3.1-8B fp8 H100-SXM-80GB TP1 128/128 | trtllm | output_tokens_per_s |"), "{table}");
    assert!(table.contains("| trtllm, dense throughput | 0 | - | - | 1 |"), "{table}");
    assert!(table.contains("| class | rows | median abs error % | worst abs error % |"));
    // One line per row plus two header lines, then the summary table.
    let row_lines = table.lines().take_while(|l| !l.is_empty()).count();
    assert_eq!(row_lines, rows.len() + 2);
    let classes: Vec<String> = summary(&rows).into_iter().map(|(c, ..)| c).collect();
    assert_eq!(classes, ["dense throughput", "kernels", "collectives", "all"]);
    let (_, n, median, worst) = summary(&rows).pop().expect("all");
    assert_eq!(n, rows.len());
    assert!(median <= worst);
}

#[test]
fn the_cli_prints_the_table_and_rejects_an_unknown_filter() {
    let (code, out, err) = common::clustersim(&["validation", "--only", "NCCL_ALGO=RING"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("370") && out.contains("| collectives | 1 |"), "{out}");
    let (code, _, err) = common::clustersim(&["validation", "--only", "no-such-row"]);
    assert_eq!(code, 2);
    assert!(err.contains("no validation row matches"), "{err}");
}

#[test]
fn leave_one_source_out_reuses_the_shipped_fit_for_a_source_it_never_saw() {
    use clustersim::analysis::loso::leave_one_source_out;
    use clustersim::analysis::validation::serving_cases;
    // NIM's Llama-3.3-70B TP2 5000/500 rows (4 requests each: fast): `trtllm` was
    // fitted to perf-overview rows only, so the shipped profile is already the fit
    // without NIM and its errors are the table's.
    let opts = Options { max_requests: 4, only: Some("TP2 5000/500 concurrency 1".into()) };
    let (cases, rows) = (serving_cases(&opts).expect("cases"), run(&opts).expect("runs"));
    // Throughput at concurrency 1 and 100 (the filter text is a prefix of both), ITL at 1.
    assert_eq!(cases.len(), 3);
    let lines = leave_one_source_out(&cases, &rows[..cases.len()], 4);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0].how, "shipped fit (fitted without this source)");
    let table: Vec<f64> = rows[..3].iter().filter_map(Row::error_pct).collect();
    assert_eq!(lines[0].errors, table);
    // vLLM's CI rows alone: `vllm` was fitted to them and no other vLLM source is in the
    // selection, so no held-out figure exists (an in-sample error would pass for one).
    let opts = Options { max_requests: 8, only: Some("TP1 32/128".into()) };
    let (cases, rows) = (serving_cases(&opts).expect("cases"), run(&opts).expect("runs"));
    let lines = leave_one_source_out(&cases, &rows[..cases.len()], 8);
    assert_eq!((lines[0].how.as_str(), lines[0].errors.len()), ("none: the profile's only source", 0));
}
