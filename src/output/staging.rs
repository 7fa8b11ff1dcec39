//! All-or-nothing results folders.
//!
//! A run writes into a hidden temporary sibling of its results folder
//! (`.NAME.tmp-PID-XXXXXX`) and renames it into place only once every file is
//! written, so a failed, interrupted or aborted run never leaves a half-filled
//! results folder, and `--force` replaces the old folder whole (no stale
//! `trace.json` or `plots/` of another run beside the new summary).
//!
//! Clean-up on the three ways a run can end early:
//! - an error: the [`Staging`] value is dropped and removes its folder;
//! - Ctrl-C / SIGTERM: [`install_interrupt_cleanup`] catches the signal on a
//!   thread of its own, removes every registered staging folder and exits 130;
//! - an abort or SIGKILL (nothing runs): the next run in the same parent folder
//!   removes staging folders whose process is gone ([`remove_stale`]).

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Staging folders of this process that a signal must remove.
static LIVE: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// A results folder being written; [`Staging::commit`] moves it into place.
pub struct Staging {
    dir: Option<tempfile::TempDir>,
    target: PathBuf,
}

impl Staging {
    /// Starts a staging folder for `target` beside it (creating the parent).
    pub fn new(target: &Path) -> Result<Self> {
        let parent = parent_of(target);
        std::fs::create_dir_all(&parent).map_err(|e| Error::io(&parent, e))?;
        remove_stale(&parent, &prefix_of(target));
        let dir = tempfile::Builder::new()
            .prefix(&format!("{}{}-", prefix_of(target), std::process::id()))
            .tempdir_in(&parent)
            .map_err(|e| Error::io(&parent, e))?;
        register(dir.path(), true);
        Ok(Staging { dir: Some(dir), target: target.to_path_buf() })
    }

    /// Where to write the files.
    pub fn path(&self) -> &Path {
        self.dir.as_ref().map_or(self.target.as_path(), |d| d.path())
    }

    /// Renames the staging folder to the target, replacing what was there (an
    /// empty folder, or a whole earlier run under `--force`).
    pub fn commit(mut self) -> Result<()> {
        let Some(dir) = self.dir.take() else { return Ok(()) };
        let staged = dir.path().to_path_buf();
        // Temporary folders are private (0700); a results folder is an ordinary one.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o755));
        }
        if self.target.exists() {
            // Move the old folder aside first: a rename onto a non-empty folder fails,
            // and the old results stay whole until the new ones are in place.
            let old = parent_of(&self.target).join(format!("{}{}-old", prefix_of(&self.target), std::process::id()));
            std::fs::rename(&self.target, &old).map_err(|e| Error::io(&self.target, e))?;
            if let Err(e) = std::fs::rename(&staged, &self.target) {
                let _ = std::fs::rename(&old, &self.target);
                return Err(Error::io(&self.target, e));
            }
            let _ = std::fs::remove_dir_all(&old);
        } else {
            std::fs::rename(&staged, &self.target).map_err(|e| Error::io(&self.target, e))?;
        }
        let _ = dir.keep();
        register(&staged, false);
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if let Some(d) = &self.dir {
            register(d.path(), false);
        }
        // The TempDir itself removes the folder.
    }
}

fn register(p: &Path, live: bool) {
    if let Ok(mut v) = LIVE.lock() {
        if live {
            v.push(p.to_path_buf());
        } else {
            v.retain(|q| q != p);
        }
    }
}

fn parent_of(target: &Path) -> PathBuf {
    match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// `.NAME.tmp-`: the start of every staging folder name for `target`.
fn prefix_of(target: &Path) -> String {
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "results".into());
    format!(".{name}.tmp-")
}

/// Removes staging folders in `parent` named `PREFIX<pid>-...` whose process no
/// longer runs (left by an aborted or killed run).
pub fn remove_stale(parent: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(parent) else { return };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(prefix) else { continue };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else { continue };
        if pid != std::process::id() && !process_alive(pid) {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

fn process_alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        Path::new("/proc").join(pid.to_string()).exists()
    } else {
        // Without /proc, never guess: leave the folder.
        true
    }
}

/// Catches SIGINT and SIGTERM on a dedicated thread so that an interrupted run
/// removes its staging folders and exits 130 (the shell's code for Ctrl-C).
///
/// Must be called before any other thread starts: the signals are blocked in the
/// calling thread, and every thread created afterwards inherits that mask, so only
/// the waiting thread ever receives them.
pub fn install_interrupt_cleanup() {
    #[cfg(unix)]
    // SAFETY: the sigset is initialised by sigemptyset before use; pthread_sigmask
    // and sigwait are given valid pointers to it and to a local int.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        if libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            return;
        }
        let waiter = std::thread::Builder::new().name("signals".into()).spawn(move || {
            let mut sig: libc::c_int = 0;
            if libc::sigwait(&set, &mut sig) == 0 {
                if let Ok(v) = LIVE.lock() {
                    for p in v.iter() {
                        let _ = std::fs::remove_dir_all(p);
                    }
                }
                eprintln!("interrupted: no results written");
                std::process::exit(128 + sig);
            }
        });
        if waiter.is_err() {
            // No thread to take the signals: unblock them so Ctrl-C still works.
            libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_replaces_the_whole_old_folder() {
        let root = tempfile::tempdir().unwrap();
        let target = root.path().join("r");
        std::fs::create_dir_all(target.join("plots")).unwrap();
        std::fs::write(target.join("trace.json"), "old").unwrap();
        let s = Staging::new(&target).unwrap();
        std::fs::write(s.path().join("summary.json"), "new").unwrap();
        assert!(!target.join("summary.json").exists(), "nothing visible before commit");
        s.commit().unwrap();
        let names: Vec<String> =
            std::fs::read_dir(&target).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
        assert_eq!(names, vec!["summary.json".to_string()], "old trace.json and plots/ are gone");
        assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 1, "no staging or old folder left");
    }

    #[test]
    fn a_dropped_staging_folder_leaves_nothing() {
        let root = tempfile::tempdir().unwrap();
        let target = root.path().join("r");
        {
            let s = Staging::new(&target).unwrap();
            std::fs::write(s.path().join("requests.csv"), "partial").unwrap();
        }
        assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 0);
    }

    #[test]
    fn stale_folders_of_dead_processes_are_removed() {
        let root = tempfile::tempdir().unwrap();
        // pid 0 is never a user process and /proc/0 does not exist.
        let stale = root.path().join(".r.tmp-0-abc");
        let alive = root.path().join(format!(".r.tmp-{}-abc", std::process::id()));
        std::fs::create_dir_all(&stale).unwrap();
        std::fs::create_dir_all(&alive).unwrap();
        remove_stale(root.path(), ".r.tmp-");
        assert!(!stale.exists() || !cfg!(target_os = "linux"));
        assert!(alive.exists(), "this process's own folder is kept");
    }
}
