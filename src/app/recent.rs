//! The recent-files list, kept in `$XDG_CONFIG_HOME/weightbench/recent.json` (or
//! `~/.config/...`). Failing to read or write it only loses the list.

use std::path::{Path, PathBuf};

/// Entries kept.
const KEEP: usize = 12;

fn file() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("weightbench").join("recent.json"))
}

/// The saved list (empty when there is none).
pub fn load() -> Vec<PathBuf> {
    file()
        .and_then(|f| std::fs::read_to_string(f).ok())
        .and_then(|text| serde_json::from_str::<Vec<PathBuf>>(&text).ok())
        .unwrap_or_default()
}

/// Puts `path` first in `list`, saves it when `persist`, and returns it.
pub fn remember(mut list: Vec<PathBuf>, path: &Path, persist: bool) -> Vec<PathBuf> {
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    list.retain(|p| *p != path);
    list.insert(0, path);
    list.truncate(KEEP);
    if persist
        && let Some(f) = file()
        && let Some(dir) = f.parent()
        && std::fs::create_dir_all(dir).is_ok()
        && let Ok(text) = serde_json::to_string_pretty(&list)
    {
        // Losing the recent list is harmless; not worth an error message.
        let _not_critical = std::fs::write(f, text);
    }
    list
}
