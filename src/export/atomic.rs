//! Files written whole or not at all, several at once. A [`Transaction`] stages every output
//! file under a unique temporary name in its target's folder (`tempfile`: random names, so two
//! exports — or two threads of one process — never collide); each is flushed, synced and read
//! back by its writer; then [`Transaction::commit`] renames all of them into place together. If
//! anything fails before or during the commit, no output remains: staged files are deleted, and
//! files already renamed are taken back (the ones they replaced restored). Dropped unfinished,
//! a transaction deletes what it staged.
//!
//! What remains: a process killed outright (SIGKILL, power loss) leaves its hidden
//! `.NAME.PID.*.partial` temporaries, never a file under an output name; the next export into
//! that folder removes those of processes no longer running. Killed in the middle of the commit's
//! renames, some outputs may already be in place (and a replaced file kept as `.replaced.*.partial`).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use tempfile::TempPath;

use super::ExportError;

/// A set of output files committed together.
pub struct Transaction {
    inputs: Vec<PathBuf>,
    overwrite: bool,
    staged: Vec<(PathBuf, TempPath)>,
}

/// One file being written into a transaction.
pub struct StagedFile {
    target: PathBuf,
    temp: TempPath,
    writer: BufWriter<File>,
}

impl StagedFile {
    /// The temporary path being written (to read it back before committing).
    pub fn temp_path(&self) -> &Path {
        &self.temp
    }

    /// The path it will have once committed.
    pub fn target(&self) -> &Path {
        &self.target
    }
}

impl Write for StagedFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.writer.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.writer.flush()
    }
}

impl Transaction {
    /// A transaction whose outputs may not replace any of `inputs`, nor existing files unless
    /// `overwrite`.
    pub fn new(inputs: &[&Path], overwrite: bool) -> Self {
        Self { inputs: inputs.iter().map(|p| p.to_path_buf()).collect(), overwrite, staged: Vec::new() }
    }

    /// Starts writing `target` to a temporary file beside it. Refuses now, before any byte is
    /// written, a target that is an input, exists without `overwrite`, or is staged twice.
    pub fn create(&mut self, target: &Path) -> Result<StagedFile, ExportError> {
        let inputs: Vec<&Path> = self.inputs.iter().map(PathBuf::as_path).collect();
        if is_one_of(target, &inputs) {
            return Err(ExportError::WouldOverwriteInput { path: target.to_owned() });
        }
        if target.exists() && !self.overwrite {
            return Err(ExportError::Exists { path: target.to_owned() });
        }
        if target.is_dir() {
            return Err(ExportError::io(target, std::io::Error::other("a folder is in the way of this output file")));
        }
        if self.staged.iter().any(|(t, _)| t == target) {
            return Err(ExportError::Unsupported { message: format!("{} would be written twice", target.display()) });
        }
        let folder = target.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        sweep_orphans(folder, &name);
        let file = tempfile::Builder::new()
            .prefix(&format!(".{name}.{}.", std::process::id()))
            .suffix(".partial")
            .tempfile_in(folder)
            .map_err(|e| ExportError::io(folder, e))?;
        let (file, temp) = file.into_parts();
        Ok(StagedFile { target: target.to_owned(), temp, writer: BufWriter::with_capacity(1 << 20, file) })
    }

    /// Flushes and syncs a written file and adds it to the files to commit; returns its
    /// temporary path, where it can be read back.
    pub fn finish(&mut self, file: StagedFile) -> Result<PathBuf, ExportError> {
        let StagedFile { target, temp, writer } = file;
        let file = writer.into_inner().map_err(|e| ExportError::io(temp.to_path_buf(), e.into_error()))?;
        // Temporary files are made private (0600); an output gets the usual rw-r--r--.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(std::fs::Permissions::from_mode(0o644))
                .map_err(|e| ExportError::io(temp.to_path_buf(), e))?;
        }
        file.sync_all().map_err(|e| ExportError::io(temp.to_path_buf(), e))?;
        let path = temp.to_path_buf();
        self.staged.push((target, temp));
        Ok(path)
    }

    /// Whether `target` is already staged.
    pub fn stages(&self, target: &Path) -> bool {
        self.staged.iter().any(|(t, _)| t == target)
    }

    /// Stages a small text file.
    pub fn write_text(&mut self, target: &Path, text: &str) -> Result<(), ExportError> {
        self.write_bytes(target, text.as_bytes())
    }

    /// Stages a small file of `bytes`.
    pub fn write_bytes(&mut self, target: &Path, bytes: &[u8]) -> Result<(), ExportError> {
        let mut file = self.create(target)?;
        file.write_all(bytes).map_err(|e| ExportError::io(file.temp_path(), e))?;
        self.finish(file)?;
        Ok(())
    }

    /// Renames every staged file into place. On any failure, the files renamed so far are taken
    /// back, the ones they replaced are restored, every temporary is removed, and the error is
    /// returned: either all outputs appear or none does.
    pub fn commit(mut self) -> Result<Vec<PathBuf>, ExportError> {
        let staged = std::mem::take(&mut self.staged);
        // Existing targets (only with `overwrite`) are moved aside first, to be restored on failure.
        let mut backups: Vec<(PathBuf, TempPath)> = Vec::new();
        let mut placed: Vec<PathBuf> = Vec::new();
        let mut pending = staged.into_iter();
        let outcome = (|| -> Result<(), ExportError> {
            for (target, temp) in pending.by_ref() {
                if target.exists() {
                    if !self.overwrite {
                        return Err(ExportError::Exists { path: target });
                    }
                    let folder = target.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
                    let aside = tempfile::Builder::new()
                        .prefix(".replaced.")
                        .suffix(".partial")
                        .tempfile_in(folder)
                        .map_err(|e| ExportError::io(folder, e))?
                        .into_temp_path();
                    std::fs::rename(&target, &aside).map_err(|e| ExportError::io(&target, e))?;
                    backups.push((target.clone(), aside));
                }
                let renamed = if self.overwrite { temp.persist(&target) } else { temp.persist_noclobber(&target) };
                // A failed persist hands the temporary back; dropping it deletes it.
                renamed.map_err(|e| ExportError::io(&target, e.error))?;
                placed.push(target);
            }
            Ok(())
        })();
        match outcome {
            Ok(()) => {
                // The replaced files are no longer needed (dropping their paths deletes them).
                drop(backups);
                Ok(placed)
            }
            Err(e) => {
                // Files not yet renamed are deleted as `pending` drops; take back the rest.
                drop(pending);
                for target in &placed {
                    let _best_effort = std::fs::remove_file(target);
                }
                for (target, aside) in backups {
                    if let Err(keep) = aside.persist(&target) {
                        // Cannot restore: keep the old file under its temporary name rather than lose it.
                        let _kept = keep.path.keep();
                    }
                }
                Err(e)
            }
        }
    }
}

/// Removes the temporaries a killed export left for `name` in `folder`: `.NAME.PID.*.partial`
/// files whose process no longer runs (no `/proc/PID`; elsewhere than Linux nothing is swept).
/// SIGKILL, which no process survives to clean up, is the one way they are left behind.
fn sweep_orphans(folder: &Path, name: &str) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let prefix = format!(".{name}.");
    let Ok(entries) = std::fs::read_dir(folder) else { return };
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = file.strip_prefix(&prefix).filter(|_| file.ends_with(".partial")) else { continue };
        let Some(pid) = rest.split('.').next().and_then(|p| p.parse::<u32>().ok()) else { continue };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _best_effort = std::fs::remove_file(entry.path());
        }
    }
}

/// Whether `path` names the same file as one of `inputs`.
pub(crate) fn is_one_of(path: &Path, inputs: &[&Path]) -> bool {
    let resolved = std::fs::canonicalize(path).ok();
    inputs.iter().any(|input| *input == path || (resolved.is_some() && std::fs::canonicalize(input).ok() == resolved))
}

/// Writes one small text file atomically (a transaction of one file).
pub fn write_text(target: &Path, text: &str, inputs: &[&Path], overwrite: bool) -> Result<PathBuf, ExportError> {
    let mut t = Transaction::new(inputs, overwrite);
    t.write_text(target, text)?;
    Ok(t.commit()?.remove(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        v
    }

    #[test]
    fn all_files_appear_together_or_none() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.txt"), dir.path().join("b.txt"));
        let mut t = Transaction::new(&[], false);
        t.write_text(&a, "one").unwrap();
        t.write_text(&b, "two").unwrap();
        assert!(!a.exists() && !b.exists(), "nothing appears before the commit");
        assert_eq!(names(dir.path()).len(), 2, "two hidden temporaries");
        assert_eq!(t.commit().unwrap(), [a.clone(), b.clone()]);
        assert_eq!(names(dir.path()), ["a.txt", "b.txt"]);

        // Dropped uncommitted: nothing remains.
        let c = dir.path().join("c.txt");
        let mut t = Transaction::new(&[], false);
        t.write_text(&c, "three").unwrap();
        drop(t);
        assert_eq!(names(dir.path()), ["a.txt", "b.txt"]);

        // Temporary names are unique within one process.
        let mut t = Transaction::new(&[], true);
        let f1 = t.create(&dir.path().join("x")).unwrap();
        let f2 = t.create(&dir.path().join("y")).unwrap();
        assert_ne!(f1.temp_path(), f2.temp_path());
    }

    #[test]
    fn a_failed_rename_takes_back_the_others_and_restores_what_they_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.txt"), dir.path().join("b.txt"));
        std::fs::write(&a, "old a").unwrap();
        let mut t = Transaction::new(&[], true);
        t.write_text(&a, "new a").unwrap();
        t.write_text(&b, "new b").unwrap();
        // A folder appears where b goes after staging: its rename fails during the commit.
        std::fs::create_dir(&b).unwrap();
        std::fs::write(b.join("inside"), "x").unwrap();
        assert!(t.commit().is_err());
        assert_eq!(std::fs::read_to_string(&a).unwrap(), "old a", "the replaced file is back");
        assert_eq!(names(dir.path()), ["a.txt", "b.txt"], "no temporaries remain");
        assert!(b.is_dir());
    }

    #[test]
    fn inputs_and_existing_files_are_refused_before_writing() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.bin");
        std::fs::write(&input, "x").unwrap();
        let mut t = Transaction::new(&[&input], true);
        assert!(matches!(t.create(&input), Err(ExportError::WouldOverwriteInput { .. })));
        let mut t = Transaction::new(&[], false);
        assert!(matches!(t.create(&input), Err(ExportError::Exists { .. })));
        assert_eq!(names(dir.path()), ["in.bin"]);
    }
}
