//! Tests of [`super`]: shard arithmetic, Slurm variables, the hash, merges.

use super::*;

fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
    move |k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
}

#[test]
fn auto_maps_slurm_array_tasks_to_shards() {
    // --array=0-3: task 2 is the third of four.
    let s = ShardArg::Auto.resolve(env(&[("SLURM_ARRAY_TASK_ID", "2"), ("SLURM_ARRAY_TASK_COUNT", "4")]));
    assert_eq!(s.unwrap(), Shard { k: 3, n: 4 });
    // --array=1-4: task 1 is the first.
    let v = [("SLURM_ARRAY_TASK_ID", "1"), ("SLURM_ARRAY_TASK_COUNT", "4"), ("SLURM_ARRAY_TASK_MIN", "1")];
    assert_eq!(ShardArg::Auto.resolve(env(&v)).unwrap(), Shard { k: 1, n: 4 });
    // --array=10-16:2 (tasks 10, 12, 14, 16): task 14 is (14 - 10) / 2 + 1 = 3rd.
    let v = [
        ("SLURM_ARRAY_TASK_ID", "14"),
        ("SLURM_ARRAY_TASK_COUNT", "4"),
        ("SLURM_ARRAY_TASK_MIN", "10"),
        ("SLURM_ARRAY_TASK_STEP", "2"),
    ];
    assert_eq!(ShardArg::Auto.resolve(env(&v)).unwrap(), Shard { k: 3, n: 4 });
}

#[test]
fn auto_outside_an_array_or_with_odd_ids_is_a_clear_error() {
    let e = ShardArg::Auto.resolve(env(&[])).unwrap_err().to_string();
    assert!(e.contains("SLURM_ARRAY_TASK_ID is not set"), "{e}");
    // --array=1,3,9 has 3 tasks; task 9 is not the third of an evenly spaced range.
    let v = [("SLURM_ARRAY_TASK_ID", "9"), ("SLURM_ARRAY_TASK_COUNT", "3"), ("SLURM_ARRAY_TASK_MIN", "1")];
    let e = ShardArg::Auto.resolve(env(&v)).unwrap_err().to_string();
    assert!(e.contains("--array=0-2"), "{e}");
    let v = [("SLURM_ARRAY_TASK_ID", "x"), ("SLURM_ARRAY_TASK_COUNT", "3")];
    assert!(ShardArg::Auto.resolve(env(&v)).unwrap_err().to_string().contains("not a whole number"));
}

#[test]
fn shards_split_points_round_robin_and_count_them() {
    // 10 points in 4 shards: shard 1 has 0, 4, 8; shard 2 has 1, 5, 9; shards 3 and 4 have 2 each.
    let counts: Vec<u64> = (1..=4).map(|k| Shard { k, n: 4 }.count_of(10)).collect();
    assert_eq!(counts, [3, 3, 2, 2]);
    let s2: Vec<u64> = (0..10).filter(|i| Shard { k: 2, n: 4 }.contains(*i)).collect();
    assert_eq!(s2, [1, 5, 9]);
    assert_eq!(Shard { k: 3, n: 4 }.count_of(2), 0);
    assert_eq!(Shard { k: 3, n: 12 }.file_name(), "shard-03-of-12.json");
    assert_eq!("auto".parse::<ShardArg>().unwrap(), ShardArg::Auto);
    for bad in ["0/2", "3/2", "1", "a/b", "automatic"] {
        assert!(bad.parse::<ShardArg>().is_err(), "{bad}");
    }
}

#[test]
fn run_points_runs_only_the_shard_in_point_order() {
    // Shard 2 of 3 over 0..8 owns 1, 4, 7; the work squares its index.
    let out = run_points(8, Some(Shard { k: 2, n: 3 }), 3, |i| i * i).unwrap();
    assert_eq!(out, [(1, 1), (4, 16), (7, 49)]);
    assert_eq!(run_points(3, None, 1, |i| i).unwrap(), [(0, 0), (1, 1), (2, 2)]);
}

#[test]
fn fnv1a_matches_the_published_test_vectors() {
    // FNV-1a 64 of "" is the offset basis; of "a" is af63dc4c8601ec8c (reference vectors
    // of the FNV specification, draft-eastlake-fnv).
    assert_eq!(fingerprint(b""), "cbf29ce484222325");
    assert_eq!(fingerprint(b"a"), "af63dc4c8601ec8c");
}

fn shard(k: u64, n: u64, total: u64, fp: &str) -> ShardFile {
    let sh = Shard { k, n };
    ShardFile {
        format: SHARD_FORMAT,
        kind: "sweep".into(),
        version: "test".into(),
        build: "b".into(),
        fingerprint: fp.into(),
        shard: k,
        shards: n,
        total_points: total,
        columns: vec!["point".into(), "x".into()],
        rows: (0..total).filter(|i| sh.contains(*i)).map(|i| (i, vec![i.to_string(), format!("v{i}")])).collect(),
    }
}

#[test]
fn merge_orders_rows_and_rejects_missing_duplicate_and_foreign_shards() {
    let dir = tempfile::tempdir().unwrap();
    let write = |f: &ShardFile, sub: &str| {
        let d = dir.path().join(sub);
        std::fs::create_dir_all(&d).unwrap();
        f.write(&d, false).unwrap()
    };
    let a = write(&shard(1, 3, 7, "f"), "a");
    let b = write(&shard(2, 3, 7, "f"), "a");
    let c = write(&shard(3, 3, 7, "f"), "b");
    let m = merge(&[c.clone(), a.clone(), b.clone()], "sweep").unwrap();
    let firsts: Vec<&str> = m.rows.iter().map(|r| r[1].as_str()).collect();
    assert_eq!(firsts, ["v0", "v1", "v2", "v3", "v4", "v5", "v6"]);

    let e = merge(&[a.clone(), c.clone()], "sweep").unwrap_err().to_string();
    assert!(e.contains("shard 2 of 3 is missing"), "{e}");
    let e = merge(&[a.clone(), a.clone()], "sweep").unwrap_err().to_string();
    assert!(e.contains("shard 1 of 3 appears twice"), "{e}");
    let other = write(&shard(3, 3, 7, "g"), "c");
    let e = merge(&[a.clone(), b.clone(), other], "sweep").unwrap_err().to_string();
    assert!(e.contains("fingerprint g") && e.contains("different sweeps"), "{e}");
    let mut other_build = shard(3, 3, 7, "f");
    other_build.build = "c".into();
    let other_build = write(&other_build, "d");
    let e = merge(&[a.clone(), b.clone(), other_build], "sweep").unwrap_err().to_string();
    assert!(e.contains("written by clustersim build c, but") && e.contains("by build b"), "{e}");
    // Leftovers of a split into 4 beside a split into 3 of the same sweep.
    let four = write(&shard(2, 4, 7, "f"), "e");
    let e = merge(&[a.clone(), four], "sweep").unwrap_err().to_string();
    assert!(e.contains("split into 4 shards of 7 points") && e.contains("has 3 shards of 7 points"), "{e}");
    // A shard file whose rows were cut short.
    let mut short = shard(2, 3, 7, "f");
    short.rows.pop();
    let short = write(&short, "f");
    let e = merge(&[a.clone(), short, c.clone()], "sweep").unwrap_err().to_string();
    assert!(e.contains("damaged shard file: 1 rows, but shard 2/3 of 7 points owns 2"), "{e}");
    let e = merge(std::slice::from_ref(&a), "plan").unwrap_err().to_string();
    assert!(e.contains("a shard of a sweep, not of a plan"), "{e}");
    // The same shard written twice without --force is refused.
    assert!(shard(1, 3, 7, "f").write(&dir.path().join("a"), false).is_err());
    let found = find_shard_files(&[dir.path().join("a"), dir.path().join("b")]).unwrap();
    assert_eq!(found, [a, b, c]);
    assert!(find_shard_files(&[dir.path().to_path_buf()]).unwrap_err().to_string().contains("no shard files"));
}
