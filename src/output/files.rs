//! Results folders and atomic file writes.
//!
//! A run never overwrites results the user did not ask to overwrite: without
//! `--force` an existing folder is left alone and a fresh suffixed one is used.
//! Every file is written to a temporary name in the same folder and renamed into
//! place, so a reader never sees half a file.

use crate::error::{Error, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Picks the folder a run writes to.
///
/// - `out` given: used as is; if it exists and holds files, it is an error unless `force`.
/// - `out` not given: `results/<name>/`, or `results/<name>-2/`, `-3/`, ... if taken
///   (unless `force`, which reuses `results/<name>/`).
pub fn results_dir(out: Option<&Path>, name: &str, force: bool) -> Result<PathBuf> {
    match out {
        Some(dir) => {
            if dir.exists() && !force && !is_empty_dir(dir) {
                return Err(Error::Usage(format!(
                    "{}: folder exists and is not empty; pass --force to overwrite its results, or choose another --out",
                    dir.display()
                )));
            }
            if dir.exists() && force && !is_empty_dir(dir) && !is_results_dir(dir) {
                // --force replaces the whole folder: never one that is not a results folder.
                return Err(Error::Usage(format!(
                    "{}: folder is not a clustersim results folder (no summary.json, scenario.toml, sweep.csv, compare.csv or plan.csv); \
                     --force replaces a whole results folder and will not delete it; choose another --out",
                    dir.display()
                )));
            }
            Ok(dir.to_path_buf())
        }
        None => {
            let base = Path::new("results").join(name);
            if force && base.exists() && !is_empty_dir(&base) && !is_results_dir(&base) {
                return Err(Error::Usage(format!(
                    "{}: folder is not a clustersim results folder; --force will not replace it; pass --out",
                    base.display()
                )));
            }
            if force || !base.exists() || is_empty_dir(&base) {
                return Ok(base);
            }
            (2..10_000)
                .map(|i| Path::new("results").join(format!("{name}-{i}")))
                .find(|p| !p.exists())
                .ok_or_else(|| Error::Usage(format!("results/{name}: too many result folders; pass --out")))
        }
    }
}

/// A folder clustersim wrote: a run's (summary.json, scenario.toml), a sweep's
/// (sweep.csv), a comparison's (compare.csv) or a plan search's (plan.csv).
fn is_results_dir(p: &Path) -> bool {
    ["summary.json", "scenario.toml", "sweep.csv", "compare.csv", "plan.csv"].iter().any(|f| p.join(f).is_file())
}

fn is_empty_dir(p: &Path) -> bool {
    std::fs::read_dir(p).map(|mut d| d.next().is_none()).unwrap_or(false)
}

/// Creates `dir` and its parents.
pub fn ensure_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))
}

/// Writes `bytes` to `path` atomically (temporary file + rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut w = AtomicFile::create(path)?;
    w.write_all(bytes).map_err(|e| Error::io(path, e))?;
    w.commit()
}

/// A file being written under a temporary name; [`AtomicFile::commit`] renames it into place.
/// Dropped without commit, the temporary file is removed.
pub struct AtomicFile {
    path: PathBuf,
    tmp: PathBuf,
    file: Option<std::io::BufWriter<std::fs::File>>,
}

impl AtomicFile {
    /// Starts writing `path`.
    pub fn create(path: &Path) -> Result<Self> {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
        let file = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        Ok(AtomicFile { path: path.to_path_buf(), tmp, file: Some(std::io::BufWriter::new(file)) })
    }

    /// Flushes and renames into place.
    pub fn commit(mut self) -> Result<()> {
        if let Some(f) = self.file.take() {
            let f = f.into_inner().map_err(|e| Error::io(&self.tmp, e.into_error()))?;
            f.sync_all().map_err(|e| Error::io(&self.tmp, e))?;
        }
        std::fs::rename(&self.tmp, &self.path).map_err(|e| Error::io(&self.path, e))
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match &mut self.file {
            Some(f) => f.write(buf),
            None => Err(std::io::Error::other("file already committed")),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.file {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.file.is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn existing_results_get_a_fresh_suffix_and_out_is_protected() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("r");
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(out.join("summary.json"), "{}").unwrap();
        assert!(results_dir(Some(&out), "x", false).is_err());
        assert_eq!(results_dir(Some(&out), "x", true).unwrap(), out);
    }

    #[test]
    fn force_never_takes_a_folder_that_is_not_a_results_folder() {
        // --force replaces the whole folder, so a folder of other files is refused.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("notes.txt"), "mine").unwrap();
        assert!(matches!(results_dir(Some(dir.path()), "x", true), Err(Error::Usage(_))));
    }

    #[test]
    fn atomic_write_replaces_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.txt");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "two");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file left");
    }
}
