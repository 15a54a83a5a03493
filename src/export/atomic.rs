//! Files written whole or not at all: a temporary file beside the target, renamed into place
//! only after the caller has checked it. Dropped unfinished, it deletes itself.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::ExportError;

/// A file being written to a temporary path next to its final one.
pub struct AtomicFile {
    target: PathBuf,
    temp: PathBuf,
    writer: Option<BufWriter<File>>,
}

impl AtomicFile {
    /// Starts writing `target`. Refuses if `target` is one of `inputs` (compared after resolving
    /// links), or exists and `overwrite` is false.
    pub fn create(target: &Path, inputs: &[&Path], overwrite: bool) -> Result<Self, ExportError> {
        if is_one_of(target, inputs) {
            return Err(ExportError::WouldOverwriteInput { path: target.to_owned() });
        }
        if target.exists() && !overwrite {
            return Err(ExportError::Exists { path: target.to_owned() });
        }
        let folder = target.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let temp = folder.join(format!(".{name}.partial-{}", std::process::id()));
        let file = File::create(&temp).map_err(|e| ExportError::io(&temp, e))?;
        Ok(Self { target: target.to_owned(), temp, writer: Some(BufWriter::with_capacity(1 << 20, file)) })
    }

    /// The temporary path being written.
    pub fn temp_path(&self) -> &Path {
        &self.temp
    }

    /// The buffered writer.
    pub fn writer(&mut self) -> Result<&mut BufWriter<File>, ExportError> {
        let temp = self.temp.clone();
        self.writer.as_mut().ok_or_else(|| ExportError::io(temp, std::io::Error::other("file already closed")))
    }

    /// Flushes and syncs the temporary file so it can be read back.
    pub fn finish_writing(&mut self) -> Result<(), ExportError> {
        if let Some(writer) = self.writer.take() {
            let file = writer.into_inner().map_err(|e| ExportError::io(&self.temp, e.into_error()))?;
            file.sync_all().map_err(|e| ExportError::io(&self.temp, e))?;
        }
        Ok(())
    }

    /// Renames the checked temporary file into place.
    pub fn commit(mut self) -> Result<PathBuf, ExportError> {
        self.finish_writing()?;
        std::fs::rename(&self.temp, &self.target).map_err(|e| ExportError::io(&self.target, e))?;
        self.temp = PathBuf::new();
        Ok(self.target.clone())
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match &mut self.writer {
            Some(w) => w.write(buf),
            None => Err(std::io::Error::other("file already closed")),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.writer {
            Some(w) => w.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.temp.as_os_str().is_empty() {
            self.writer = None;
            // Best effort: the error path that dropped us is the one worth reporting.
            let _removed = std::fs::remove_file(&self.temp);
        }
    }
}

/// Whether `path` names the same file as one of `inputs`.
fn is_one_of(path: &Path, inputs: &[&Path]) -> bool {
    let resolved = std::fs::canonicalize(path).ok();
    inputs.iter().any(|input| *input == path || (resolved.is_some() && std::fs::canonicalize(input).ok() == resolved))
}

/// Writes a small text file atomically (no read-back beyond the rename).
pub fn write_text(target: &Path, text: &str, inputs: &[&Path], overwrite: bool) -> Result<PathBuf, ExportError> {
    let mut file = AtomicFile::create(target, inputs, overwrite)?;
    file.write_all(text.as_bytes()).map_err(|e| ExportError::io(target, e))?;
    file.commit()
}
