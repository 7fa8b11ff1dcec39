//! Engine profiles as files: a scenario names a shipped profile or its own TOML file
//! (relative to the scenario), the scenario may override admission and chunking, and a
//! bad profile file is an input error naming the file and line or key (exit 2).

use clustersim::model::framework::{framework_profile, Admission};
use clustersim::scenario::{parse, validate};
use std::path::Path;
use std::process::Command;

const TINY: &str = include_str!("data/scenarios/tiny.toml");

fn with_framework(framework: &str, extra: &str) -> String {
    TINY.replace("framework = \"optimized\"", &format!("framework = \"{framework}\"\n{extra}"))
}

#[test]
fn a_scenario_loads_its_own_profile_relative_to_its_folder() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("p")).expect("mkdir");
    // The shipped trtllm profile under another name, with a slower host.
    let text = include_str!("../profiles/trtllm.toml")
        .replace("name = \"trtllm\"", "name = \"mine\"")
        .replace("per_seq_overhead_us = ", "per_seq_overhead_us = 7.5 #");
    std::fs::write(dir.path().join("p/mine.toml"), text).expect("write");
    let file = dir.path().join("s.toml");
    let setup = validate(&parse(&with_framework("p/mine.toml", ""), &file, &[]).unwrap(), &file).unwrap();
    assert_eq!(setup.framework.name, "mine");
    assert_eq!(setup.framework.per_seq_overhead_us, 7.5);
    assert_eq!(setup.framework.admission, Admission::NoEvict);
}

#[test]
fn the_scenario_overrides_the_profiles_admission_and_chunking() {
    let file = Path::new("s.toml");
    let text = with_framework("trtllm", "admission = \"preempt\"\nchunked_prefill = false");
    let setup = validate(&parse(&text, file, &[]).unwrap(), file).unwrap();
    assert_eq!(setup.framework.admission, Admission::Preempt);
    assert!(!setup.framework.chunked_prefill);
    // Without the keys, the profile's own.
    let setup = validate(&parse(&with_framework("trtllm", ""), file, &[]).unwrap(), file).unwrap();
    assert_eq!(setup.framework.admission, framework_profile("trtllm").unwrap().admission);
}

#[test]
fn a_bad_profile_file_exits_2_naming_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = include_str!("../profiles/optimized.toml").replace("memory_efficiency", "memory_eficiency");
    let line = text.lines().position(|l| l.starts_with("memory_eficiency")).unwrap() + 1;
    std::fs::write(dir.path().join("bad.toml"), text).expect("write");
    std::fs::write(dir.path().join("s.toml"), with_framework("bad.toml", "")).expect("write");
    std::fs::write(dir.path().join("t.toml"), with_framework("missing.toml", "")).expect("write");
    let run = |s: &str| {
        Command::new(env!("CARGO_BIN_EXE_clustersim")).current_dir(dir.path()).args(["validate", s]).output().unwrap()
    };
    let out = run("s.toml");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&format!("bad.toml:{line}:")) && stderr.contains("memory_eficiency"), "{stderr}");
    let out = run("t.toml");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("missing.toml") && stderr.contains("cannot read"), "{stderr}");
}
