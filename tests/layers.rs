//! The house as docs/architecture.md draws it: every layer imports only from layers below it
//! (and the shared `cancel` and `format`), the engine knows nothing of the command line's
//! parser, and the command line nothing of the window. Checked on the source text, so a wrong
//! import fails here before anyone reads it.

use std::path::{Path, PathBuf};

/// Each module and the modules it must never name.
const FORBIDDEN: [(&str, &[&str]); 9] = [
    ("codec", &["checkpoint", "compute", "analysis", "quant", "runtime", "export", "app", "cli"]),
    ("checkpoint", &["compute", "analysis", "quant", "runtime", "export", "app", "cli"]),
    ("compute", &["analysis", "quant", "runtime", "export", "app", "cli"]),
    ("analysis", &["quant", "runtime", "export", "app", "cli"]),
    ("quant", &["analysis", "runtime", "export", "app", "cli"]),
    ("runtime", &["export", "app", "cli"]),
    ("export", &["app", "cli"]),
    ("cli", &["app"]),
    ("app", &["cli"]),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.map(Result::unwrap) {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The files of module `name` (`src/name.rs` and `src/name/**`).
fn module_files(name: &str) -> Vec<PathBuf> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src.join(name), &mut files);
    let single = src.join(format!("{name}.rs"));
    if single.exists() {
        files.push(single);
    }
    files
}

#[test]
fn no_layer_imports_a_layer_above_it() {
    let mut offences = Vec::new();
    for (module, above) in FORBIDDEN {
        let files = module_files(module);
        assert!(!files.is_empty() || module == "quant", "module {module} has no files");
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            for (n, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                for higher in above {
                    if code.contains(&format!("crate::{higher}::")) || code.contains(&format!("crate::{higher};")) {
                        offences.push(format!(
                            "{}:{}: {module} names {higher}: {}",
                            file.display(),
                            n + 1,
                            line.trim()
                        ));
                    }
                }
            }
        }
    }
    assert!(offences.is_empty(), "imports that point up:\n{}", offences.join("\n"));
}

#[test]
fn the_engine_does_not_depend_on_the_command_line_parser() {
    for module in ["codec", "checkpoint", "compute", "analysis", "quant", "runtime", "export"] {
        for file in module_files(module) {
            let text = std::fs::read_to_string(&file).unwrap();
            assert!(!text.contains("clap"), "{} uses clap", file.display());
        }
    }
}

#[test]
fn the_check_itself_sees_an_offence() {
    // The scan above finds what it is looking for: a line of the shape it forbids.
    let line = "use crate::app::WorkbenchApp;";
    assert!(line.contains("crate::app::"));
    assert!(module_files("compute").iter().any(|f| f.ends_with("select.rs")), "the scan reaches nested files");
}
