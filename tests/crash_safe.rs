//! Export, convert and report writing under failure, run as a user runs them (the real binary):
//! into a full disk, into a folder it may not write, over its own input, cancelled and killed midway. Each time: an error that
//! says what happened (or the signal), nothing under the output's name, no temporary files left
//! (after SIGKILL, which no process survives to clean up: swept by the next export into that
//! folder), and the input untouched.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::fixtures::{Gguf, Missing, TempDir, demo, q8_0_block, skip};

/// A copy of the demo checkpoint (43 MB of F16) in `dir`, readable by every user.
fn demo_copy(dir: &Path) -> PathBuf {
    let to = dir.join("demo");
    std::fs::create_dir_all(&to).unwrap();
    for entry in std::fs::read_dir(demo()).unwrap() {
        let p = entry.unwrap().path();
        if p.is_file() {
            std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
        }
    }
    to
}

fn export_args(input: &Path, output: &Path) -> Vec<String> {
    ["export", &input.to_string_lossy(), "--scheme", "q8_0", "--format", "safetensors", "-o", &output.to_string_lossy()]
        .iter()
        .map(|s| s.to_string())
        .chain(["--backend".into(), "cpu".into()])
        .collect()
}

fn export(input: &Path, output: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weightbench")).args(export_args(input, output)).output().unwrap()
}

/// The binary with `args`, its stderr piped.
fn spawn(args: &[String]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_weightbench"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Every file under `dir` (recursively), as paths relative to it.
fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for e in entries {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if p.is_dir() {
            out.extend(files_under(&p).into_iter().map(|f| format!("{name}/{f}")));
        } else {
            out.push(name);
        }
    }
    out.sort();
    out
}

/// Every file under `dir` but the input copy (`demo/`): what an export left behind.
fn outputs_in(dir: &Path) -> Vec<String> {
    files_under(dir).into_iter().filter(|f| !f.starts_with("demo/")).collect()
}

/// The bytes of every file of the input, to show it untouched.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    files_under(dir).into_iter().map(|f| (f.clone(), std::fs::read(dir.join(&f)).unwrap())).collect()
}

/// Waits until a staged temporary (`.NAME.*.partial`) appears under `dir`: the export is midway.
fn wait_for_partial(dir: &Path, child: &mut Child) {
    let start = Instant::now();
    while !files_under(dir).iter().any(|f| f.ends_with(".partial")) {
        assert!(child.try_wait().unwrap().is_none(), "the export ended before it was interrupted");
        assert!(start.elapsed() < Duration::from_secs(60), "no staged file appeared");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn an_export_over_its_own_input_is_refused_before_writing() {
    let dir = TempDir::new();
    let input = demo_copy(dir.path());
    let before = snapshot(&input);
    let out = export(&input, &input);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("input"), "{}", stderr(&out));
    assert_eq!(snapshot(&input), before, "the input is untouched and nothing was added to it");
}

/// A 1 MB tmpfs mounted at `dir/small` (unmounted by the caller), or a loud skip without root.
fn small_disk(dir: &Path) -> Option<PathBuf> {
    let mount = dir.join("small");
    std::fs::create_dir_all(&mount).unwrap();
    let mounted = Command::new("mount").args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"]).arg(&mount).status();
    if !mounted.is_ok_and(|s| s.success()) {
        skip(Missing::Root, "cannot mount a 1 MB tmpfs for a full disk");
        return None;
    }
    Some(mount)
}

#[test]
fn a_full_disk_leaves_no_output_and_no_temporary_files() {
    let dir = TempDir::new();
    let input = demo_copy(dir.path());
    let Some(mount) = small_disk(dir.path()) else { return };
    let before = snapshot(&input);
    let out = export(&input, &mount.join("out"));
    let left = files_under(&mount);
    let _ = Command::new("umount").arg(&mount).status();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("No space left on device"), "{}", stderr(&out));
    assert!(left.is_empty(), "left on the full disk: {left:?}");
    assert_eq!(snapshot(&input), before);
}

fn analyze_args(input: &Path, report: &Path) -> Vec<String> {
    ["analyze", "--backend", "cpu", &input.to_string_lossy(), "-o", &report.to_string_lossy()]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// A report (`analyze -o`, 27 MB for the demo) into a full disk: the same clean failure.
#[test]
fn a_report_into_a_full_disk_leaves_no_output_and_no_temporary_files() {
    let dir = TempDir::new();
    let input = demo_copy(dir.path());
    let Some(mount) = small_disk(dir.path()) else { return };
    let report = mount.join("demo.wbr");
    let out = Command::new(env!("CARGO_BIN_EXE_weightbench")).args(analyze_args(&input, &report)).output().unwrap();
    let left = files_under(&mount);
    let _ = Command::new("umount").arg(&mount).status();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("No space left on device") && stderr(&out).contains("demo.wbr"), "{}", stderr(&out));
    assert!(left.is_empty(), "left on the full disk: {left:?}");
}

/// A report into a folder it may not write, and interrupted while it analyses (the report is
/// staged only once everything is computed; its staged write is the export's transaction, which
/// the export's tests interrupt): a clear error, or nothing at all, and never a partial file.
#[test]
fn a_report_refused_cancelled_or_killed_leaves_nothing() {
    let dir = TempDir::new();
    let input = demo_copy(dir.path());
    let locked = locked_folder(&dir, &[&input]);
    if let Some(out) = run_as_nobody(&analyze_args(&input, &locked.join("r.wbr"))) {
        assert_refused_to_write(&out, &locked);
    }
    let report = dir.join("r.wbr");
    for signal in ["-INT", "-KILL"] {
        let mut child = spawn(&analyze_args(&input, &report));
        wait_for_cpu_time(&mut child, 0.4);
        assert!(Command::new("kill").args([signal, &child.id().to_string()]).status().unwrap().success());
        let out = child.wait_with_output().unwrap();
        if signal == "-INT" {
            assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
            assert!(
                stderr(&out).contains("cancelled") && stderr(&out).contains("nothing was written"),
                "{}",
                stderr(&out)
            );
        }
        let left = outputs_in(dir.path());
        assert!(left.iter().all(|f| f.starts_with("locked")), "{signal}: left behind: {left:?}");
    }
}

/// Waits until `child` has run `seconds` of CPU time (user and system, from /proc): midway
/// through work that takes several times that.
fn wait_for_cpu_time(child: &mut Child, seconds: f64) {
    let start = Instant::now();
    let ticks = |pid: u32| -> Option<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let after = stat.rsplit_once(')')?.1;
        let fields: Vec<&str> = after.split_whitespace().collect();
        Some((fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?) / 100.0)
    };
    while ticks(child.id()).unwrap_or(0.0) < seconds {
        assert!(child.try_wait().unwrap().is_none(), "the command ended before it was interrupted");
        assert!(start.elapsed() < Duration::from_secs(60), "the command did not start working");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_folder_it_may_not_write_is_a_clear_error() {
    let dir = TempDir::new();
    let input = demo_copy(dir.path());
    let locked = locked_folder(&dir, &[&input]);
    let Some(out) = run_as_nobody(&export_args(&input, &locked.join("out"))) else { return };
    assert_refused_to_write(&out, &locked);
}

/// `dir/locked`, which `nobody` may read but not write, with `readable` (folders or files)
/// readable by all.
fn locked_folder(dir: &TempDir, readable: &[&Path]) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let locked = dir.join("locked");
    std::fs::create_dir_all(&locked).unwrap();
    for p in [dir.path(), &locked].into_iter().chain(readable.iter().copied()) {
        let mode = if p.is_dir() { 0o755 } else { 0o644 };
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    locked
}

/// The binary run with `args` as `nobody` (root writes anywhere), or `None` after a loud skip
/// where the test cannot switch users.
fn run_as_nobody(args: &[String]) -> Option<Output> {
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", env!("CARGO_BIN_EXE_weightbench")])
        .args(args)
        .output();
    let out = out.ok().filter(|o| !String::from_utf8_lossy(&o.stderr).contains("setpriv:"));
    if out.is_none() {
        skip(Missing::Root, "cannot run the binary as another user (setpriv needs root)");
    }
    out
}

/// A write into `locked` refused: exit status 1, the OS's reason and the folder named, nothing there.
fn assert_refused_to_write(out: &Output, locked: &Path) {
    assert_eq!(out.status.code(), Some(1), "{}", stderr(out));
    assert!(stderr(out).contains("Permission denied") && stderr(out).contains("locked"), "{}", stderr(out));
    assert!(files_under(locked).is_empty());
}

#[test]
fn ctrl_c_midway_leaves_no_output_and_no_temporary_files() {
    let dir = TempDir::new();
    let input = demo_copy(dir.path());
    let before = snapshot(&input);
    ctrl_c_midway(dir.path(), &export_args(&input, &dir.join("out")), &|| outputs_in(dir.path()));
    assert_eq!(snapshot(&input), before);
}

#[test]
fn kill_9_midway_leaves_no_output_and_the_next_export_sweeps_its_temporaries() {
    let dir = TempDir::new();
    let input = demo_copy(dir.path());
    let before = snapshot(&input);
    let target = dir.join("out");
    kill_9_midway_then_again(dir.path(), &export_args(&input, &target), &|| outputs_in(dir.path()), &target);
    assert_eq!(snapshot(&input), before);
}

/// Ctrl-C (SIGINT) to a run of `args` once its staged file appears under `dir`: it ends with
/// exit status 1 and "cancelled", and `outputs` (what it wrote) is empty.
fn ctrl_c_midway(dir: &Path, args: &[String], outputs: &dyn Fn() -> Vec<String>) {
    let mut child = spawn(args);
    wait_for_partial(dir, &mut child);
    assert!(Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("cancelled"), "{}", stderr(&out));
    assert!(outputs().is_empty(), "left behind after Ctrl-C: {:?}", outputs());
}

/// SIGKILL to a run of `args` once its staged file appears under `dir`: only hidden temporaries
/// may remain and nothing under `target/model.safetensors`; the same command run again sweeps
/// the dead process's temporaries and succeeds.
fn kill_9_midway_then_again(dir: &Path, args: &[String], outputs: &dyn Fn() -> Vec<String>, target: &Path) {
    let mut child = spawn(args);
    wait_for_partial(dir, &mut child);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(outputs().iter().all(|f| f.ends_with(".partial")), "only hidden temporaries may remain: {:?}", outputs());
    assert!(!target.join("model.safetensors").exists(), "no output under its name");
    let out = Command::new(env!("CARGO_BIN_EXE_weightbench")).args(args).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!outputs().iter().any(|f| f.ends_with(".partial")), "temporaries left: {:?}", outputs());
    let name = format!("{}/model.safetensors", target.file_name().unwrap().to_string_lossy());
    assert!(outputs().contains(&name), "{:?}", outputs());
}

/// A Q8_0 GGUF in `dir/gguf/model.gguf` (16 tensors of 2048 × 1024: 36 MB, 134 MB once
/// converted to F32), so that a convert runs long enough to be interrupted.
fn gguf_copy(dir: &Path) -> PathBuf {
    let folder = dir.join("gguf");
    std::fs::create_dir_all(&folder).unwrap();
    let mut g = Gguf::new("llama");
    for i in 0..16u64 {
        let mut data = Vec::new();
        for b in 0..2048 * 1024 / 32 {
            let codes: [i8; 32] = std::array::from_fn(|k| ((b * 7 + k as u64 * 13 + i) % 255) as i8);
            data.extend(q8_0_block(0.01 + i as f32 * 1e-3, &codes));
        }
        g.tensor(&format!("blk.{i}.ffn_up.weight"), &[2048, 1024], 8, data);
    }
    let path = folder.join("model.gguf");
    g.write(&path);
    path
}

fn convert_args(input: &Path, output: &Path) -> Vec<String> {
    ["convert", &input.to_string_lossy(), "--keep-names", "-o", &output.to_string_lossy()]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

fn convert(input: &Path, output: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weightbench")).args(convert_args(input, output)).output().unwrap()
}

#[test]
fn a_convert_into_its_own_input_is_refused_before_writing() {
    let dir = TempDir::new();
    let input = gguf_copy(dir.path());
    let folder = input.parent().unwrap();
    let before = snapshot(folder);
    // Into the GGUF's own path, and into a folder where the output would take the input's name.
    let out = convert(&input, &input);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("overwrite an input file") && stderr(&out).contains("model.gguf"),
        "{}",
        stderr(&out)
    );
    assert_eq!(snapshot(folder), before, "the input is untouched and nothing was added to it");
    let renamed = folder.join("model.safetensors");
    std::fs::rename(&input, &renamed).unwrap();
    let before = snapshot(folder);
    let out = Command::new(env!("CARGO_BIN_EXE_weightbench"))
        .args(convert_args(&renamed, folder))
        .arg("--overwrite")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("input"), "{}", stderr(&out));
    assert_eq!(snapshot(folder), before, "the input is untouched and nothing was added to it");
}

#[test]
fn a_convert_into_a_full_disk_leaves_no_output_and_no_temporary_files() {
    let dir = TempDir::new();
    let input = gguf_copy(dir.path());
    let Some(mount) = small_disk(dir.path()) else { return };
    let out = convert(&input, &mount.join("hf"));
    let left = files_under(&mount);
    let _ = Command::new("umount").arg(&mount).status();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("No space left on device"), "{}", stderr(&out));
    assert!(left.is_empty(), "left on the full disk: {left:?}");
}

#[test]
fn a_convert_into_a_folder_it_may_not_write_is_a_clear_error() {
    let dir = TempDir::new();
    let input = gguf_copy(dir.path());
    let locked = locked_folder(&dir, &[input.parent().unwrap(), &input]);
    let Some(out) = run_as_nobody(&convert_args(&input, &locked.join("hf"))) else { return };
    assert_refused_to_write(&out, &locked);
}

#[test]
fn a_convert_cancelled_or_killed_midway_leaves_no_output_and_the_next_sweeps_its_temporaries() {
    let dir = TempDir::new();
    let input = gguf_copy(dir.path());
    let before = snapshot(input.parent().unwrap());
    let target = dir.join("hf");
    let args = convert_args(&input, &target);
    let outputs = || files_under(dir.path()).into_iter().filter(|f| !f.starts_with("gguf/")).collect::<Vec<_>>();
    ctrl_c_midway(dir.path(), &args, &outputs);
    kill_9_midway_then_again(dir.path(), &args, &outputs, &target);
    assert_eq!(snapshot(input.parent().unwrap()), before, "the input is untouched");
}
