//! The structure stays as designed (issue 9): dependencies run one way, no file is
//! over 500 lines and no function over 80. These read the sources as text.
//!
//! Layers, lowest first; a module may use its own layer and those below it, and
//! every module may use the leaf utilities `crate::error` and `crate::textfile`
//! (reading user files as text with line-accurate errors):
//!
//! engine <- hardware <- parallel <- model <- workload <- scenario <- metrics
//!        <- serving <- output <- analysis <- cli
//!
//! The scenario sits above what it resolves into (hardware, parallel, model, workload
//! types), so nothing below it reads the TOML schema; metrics is an instrument that
//! serving drives, so it knows nothing of serving; output writes what metrics and
//! serving produce.

use std::path::{Path, PathBuf};

const LAYERS: &[&str] = &[
    "engine", "hardware", "parallel", "model", "workload", "scenario", "metrics", "serving", "output", "analysis",
    "cli",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn src_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    rust_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut files);
    files.sort();
    files
}

/// The layer a source file belongs to: its top folder under src/, or its stem.
fn layer_of(path: &Path) -> Option<usize> {
    let rel = path.strip_prefix(Path::new(env!("CARGO_MANIFEST_DIR")).join("src")).ok()?;
    let top = rel.components().next()?.as_os_str().to_str()?.trim_end_matches(".rs");
    LAYERS.iter().position(|l| *l == top)
}

/// Every `crate::name` a file mentions (in `use` lines and paths alike).
fn crate_refs(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, _) in text.match_indices("crate::") {
        let rest = &text[i + 7..];
        let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        if rest.starts_with('{') {
            out.push("{".into());
        } else if !name.is_empty() {
            out.push(name);
        }
    }
    out
}

#[test]
fn dependencies_run_one_way() {
    let mut wrong = Vec::new();
    for file in src_files() {
        let Some(own) = layer_of(&file) else { continue };
        let text = std::fs::read_to_string(&file).expect("readable");
        for name in crate_refs(&text) {
            if ["error", "Error", "Result", "textfile"].contains(&name.as_str()) {
                continue;
            }
            match LAYERS.iter().position(|l| *l == name) {
                Some(l) if l <= own => {}
                _ => wrong.push(format!("{} uses crate::{name}", file.display())),
            }
        }
    }
    assert!(wrong.is_empty(), "imports against the layer order:\n{}", wrong.join("\n"));
}

#[test]
fn the_layer_check_sees_a_wrong_import() {
    // The check itself: a metrics file naming serving must be caught.
    let refs = crate_refs("use crate::serving::request::Request;\nlet x = crate::engine::SimTime::ZERO;");
    assert_eq!(refs, vec!["serving", "engine"]);
    let metrics = LAYERS.iter().position(|l| *l == "metrics").unwrap();
    let serving = LAYERS.iter().position(|l| *l == "serving").unwrap();
    assert!(serving > metrics);
}

#[test]
fn no_source_file_is_over_500_lines() {
    let long: Vec<String> = src_files()
        .into_iter()
        .filter_map(|f| {
            let n = std::fs::read_to_string(&f).expect("readable").lines().count();
            (n > 500).then(|| format!("{} ({n} lines)", f.display()))
        })
        .collect();
    assert!(long.is_empty(), "files over 500 lines:\n{}", long.join("\n"));
}

/// Functions longer than `max` lines in rustfmt-formatted `text`: a `fn` line whose
/// body closes at a `}` line with the same indentation.
fn long_functions(text: &str, max: usize) -> Vec<(usize, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        let is_fn = ["fn ", "pub fn ", "pub(crate) fn ", "pub(super) fn ", "const fn ", "pub const fn "]
            .iter()
            .any(|p| trimmed.starts_with(p));
        if !is_fn || trimmed.ends_with(';') {
            continue;
        }
        let close = format!("{}}}", " ".repeat(indent));
        if let Some(end) = lines[i + 1..].iter().position(|l| *l == close) {
            let len = end + 2;
            if len > max {
                out.push((i + 1, len));
            }
        }
    }
    out
}

#[test]
fn the_function_scanner_measures_by_hand() {
    // A 4-line function and a 3-line one: only the first is over 3 lines.
    let text = "fn a() {\n    x();\n    y();\n}\n    pub fn b() {\n        z();\n    }\n";
    assert_eq!(long_functions(text, 3), vec![(1, 4)]);
}

#[test]
fn no_function_is_over_80_lines() {
    let mut long = Vec::new();
    for f in src_files() {
        let text = std::fs::read_to_string(&f).expect("readable");
        for (line, len) in long_functions(&text, 80) {
            long.push(format!("{}:{line} ({len} lines)", f.display()));
        }
    }
    assert!(long.is_empty(), "functions over 80 lines:\n{}", long.join("\n"));
}
