//! What the plan view asks the workbench to do: edits (each queues the previews it needs),
//! automatic allocation, loading and saving plans, export, and comparison with another
//! checkpoint. All file reading and encoding runs on worker threads ([`super::jobs`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use super::jobs::{AutoDone, AutoJob, ExportRequest, Pick};
use super::plan_editor::PlanEditor;
use super::{AutoJobState, Computed, ExportChoice, ExportDialog, WorkbenchApp};
use crate::analysis::Cancel;
use crate::checkpoint::Checkpoint;
use crate::quant::Importance;
use crate::quant::plan::Override;

impl WorkbenchApp {
    /// The importance the plan's previews and methods use: the loaded imatrix, if any.
    pub fn plan_importance(&self) -> Option<Importance> {
        let session = self.session.as_ref()?;
        let arch = session.ckpt.model_config().map(|c| c.architecture.clone()).unwrap_or_default();
        self.imatrix.clone().map(|m| Importance::Imatrix(m, arch))
    }

    /// Runs the open model on the shipped calibration text (`assets/calibration.txt`) in the
    /// background; its importance (with Hessians, for `+gptq`) replaces the loaded imatrix.
    pub fn start_calibration(&mut self) {
        let Some(session) = self.session.as_ref() else { return };
        if self.calibrating.is_some() {
            return;
        }
        let cancel = Cancel::new();
        self.calibrating = Some((cancel.clone(), None));
        let text = include_str!("../../assets/calibration.txt").to_owned();
        self.jobs.calibrate(self.backend.clone(), session.ckpt.clone(), text, "calibration.txt".into(), cancel);
    }

    /// Runs `edit` on the plan editor (with the checkpoint), then queues the previews the new
    /// plan needs. The edit's error, if any, is kept in the editor and returned.
    pub fn plan_edit(
        &mut self,
        edit: impl FnOnce(&mut PlanEditor, &Checkpoint) -> Result<(), String>,
    ) -> Result<(), String> {
        let Some(session) = &mut self.session else { return Err("no checkpoint is open".into()) };
        let ckpt = session.ckpt.clone();
        let result = edit(&mut session.plan, &ckpt);
        self.request_previews();
        result
    }

    /// Queues a preview of every tensor whose current scheme has none, first in line, and
    /// starts the worker if none runs.
    pub fn request_previews(&mut self) {
        let importance = self.plan_importance();
        let Some(session) = &mut self.session else { return };
        let missing = session.plan.missing(&session.ckpt);
        if missing.is_empty() {
            return;
        }
        for (i, r) in &missing {
            session.plan.previews.insert((*i, r.scheme.clone()), Computed::Pending(session.preview_cancel.clone()));
        }
        if session.preview_queue.push_front(missing) {
            self.jobs.previews(
                self.backend.clone(),
                session.ckpt.clone(),
                session.preview_queue.clone(),
                importance,
                session.preview_cancel.clone(),
            );
        }
    }

    /// Forgets every preview (after the importance or the backend changed) and measures again.
    pub fn remeasure_plan(&mut self) {
        if let Some(s) = &mut self.session {
            s.preview_queue.clear();
            s.plan.previews.retain(|_, c| !matches!(c, Computed::Ready(_) | Computed::Failed(_)));
        }
        self.request_previews();
    }

    /// Undoes the last plan edit.
    pub fn plan_undo(&mut self) {
        let _nothing_to_undo = self.plan_edit(|e, c| {
            e.undo(c);
            Ok(())
        });
    }

    /// Redoes the last undone plan edit.
    pub fn plan_redo(&mut self) {
        let _nothing_to_redo = self.plan_edit(|e, c| {
            e.redo(c);
            Ok(())
        });
    }

    /// Starts an automatic allocation from the dialog's settings (pinned tensors excluded).
    pub fn start_auto(&mut self) -> Result<(), String> {
        let dialog = self.auto_dialog.clone().unwrap_or_default();
        let mut names: Vec<String> = dialog.candidates.iter().filter(|(_, on)| *on).map(|(c, _)| c.clone()).collect();
        names.extend(dialog.extra.split(',').map(str::trim).filter(|c| !c.is_empty()).map(str::to_owned));
        let candidates = names
            .iter()
            .map(|c| c.parse::<crate::quant::Scheme>().map_err(|e| format!("candidate `{c}`: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        if candidates.is_empty() {
            return Err("choose at least one candidate scheme".into());
        }
        let importance = self.plan_importance();
        let Some(session) = &mut self.session else { return Err("no checkpoint is open".into()) };
        if session.auto_job.as_ref().is_some_and(|j| j.ended.is_none()) {
            return Err("an allocation is already running".into());
        }
        let pinned: std::collections::BTreeSet<String> =
            session.plan.plan.overrides.iter().filter(|(_, o)| o.pinned).map(|(n, _)| n.clone()).collect();
        // The dialog's target is the whole model's, as the budget bar's: what the vectors,
        // the integer (ids, masks), the pinned and the unreadable tensors take as planned comes
        // off it first.
        let ckpt = &session.ckpt;
        let fixed: u64 = ckpt
            .tensors()
            .iter()
            .enumerate()
            .filter(|(_, t)| {
                t.shape.len() < 2
                    || t.dtype.is_integer()
                    || t.dtype.why_not_analysed().is_some()
                    || pinned.contains(&t.name)
            })
            .map(|(i, t)| session.plan.bytes_of(t, i).0)
            .sum();
        let total = (dialog.target_bpw * ckpt.total_params() as f64 / 8.0) as u64;
        let Some(budget_bytes) = total.checked_sub(fixed).filter(|&b| b > 0) else {
            return Err(format!(
                "a target of {:.3} bpw ({total} bytes) leaves nothing for the matrices: the vectors and pinned tensors \
                 already take {fixed} bytes as planned",
                dialog.target_bpw
            ));
        };
        session.plan.target_bpw = dialog.target_bpw;
        let cancel = Cancel::new();
        session.auto_job = Some(AutoJobState {
            cancel: cancel.clone(),
            done: 0,
            total: 0,
            what: "starting".into(),
            started: Instant::now(),
            ended: None,
        });
        let job = AutoJob {
            candidates,
            pinned,
            importance,
            objective: dialog.objective,
            budget_bytes,
            cache_dir: self.measure_cache.clone(),
        };
        self.jobs.auto(self.backend.clone(), session.ckpt.clone(), job, cancel);
        Ok(())
    }

    /// Cancels the running allocation.
    pub fn cancel_auto(&mut self) {
        if let Some(job) = self.session.as_ref().and_then(|s| s.auto_job.as_ref()) {
            job.cancel.cancel();
        }
    }

    /// Takes an allocation's answer: every measured row into the previews, the chosen schemes
    /// into the plan as one undoable step (pins kept), the frontier into the editor.
    pub(super) fn finish_auto(&mut self, result: Result<Arc<AutoDone>, String>) {
        let Some(session) = &mut self.session else { return };
        let ended = match result {
            Ok(done) => {
                for (i, row) in &done.rows {
                    session.plan.previews.insert((*i, row.scheme.clone()), Computed::Ready(Arc::new(row.clone())));
                }
                let mut plan = session.plan.plan.clone();
                for (i, scheme) in &done.chosen {
                    let (Some(t), Ok(parsed)) = (session.ckpt.tensors().get(*i), scheme.parse()) else { continue };
                    plan.overrides.insert(t.name.clone(), Override { scheme: parsed, line: 0, pinned: false });
                }
                session.plan.auto = Some(Arc::new(done.result.clone()));
                match session.plan.replace(&session.ckpt, plan) {
                    Ok(()) => Ok(done.summary.clone()),
                    Err(e) => Err(format!("the allocation does not fit the plan: {e}")),
                }
            }
            Err(e) => Err(e),
        };
        self.message = Some(match &ended {
            Ok(s) => format!("allocated: {s}"),
            Err(e) if e == "cancelled" => "allocation cancelled; what was measured is cached".into(),
            Err(e) => format!("no allocation: {e}"),
        });
        if let Some(job) = self.session.as_mut().and_then(|s| s.auto_job.as_mut()) {
            job.ended = Some(ended);
        }
        self.request_previews();
    }

    /// Writes the plan as TOML to `path` (whole or not at all).
    pub fn save_plan(&mut self, path: &Path) {
        let Some(session) = &mut self.session else { return };
        let mut plan = session.plan.plan.clone();
        plan.model = Some(crate::quant::plan::ModelIdentity::of(&session.ckpt));
        self.message = Some(match crate::export::atomic::write_text(path, &plan.to_toml(), &[], true) {
            Ok(_) => format!("plan saved to {}", path.display()),
            Err(e) => format!("cannot save the plan: {e}"),
        });
    }

    /// Opens the export dialog with a default output beside the checkpoint.
    pub fn open_export_dialog(&mut self) {
        let Some(session) = &self.session else { return };
        let path = session.ckpt.path();
        let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "model".into());
        let parent = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let format = ExportChoice::Safetensors;
        self.export_dialog = Some(ExportDialog {
            format,
            output: parent.join(format.default_name(&stem)).display().to_string(),
            overwrite: false,
            factors: false,
        });
    }

    /// Exports as the dialog says: models through the export job (progress, cancel), plans for
    /// other tools written at once.
    pub fn export_from_dialog(&mut self) -> Result<(), String> {
        let Some(d) = self.export_dialog.clone() else { return Err("no export dialog".into()) };
        let output = PathBuf::from(d.output.trim());
        if d.output.trim().is_empty() {
            return Err("choose where to export to".into());
        }
        let importance = self.plan_importance();
        let Some(session) = &self.session else { return Err("no checkpoint is open".into()) };
        let resolved = session.plan.resolved.clone()?;
        let format = match d.format {
            ExportChoice::Gguf => crate::export::model::ExportFormat::Gguf,
            ExportChoice::Ct => crate::export::model::ExportFormat::Ct,
            ExportChoice::Safetensors => crate::export::model::ExportFormat::Safetensors,
            ExportChoice::LlamaPlan | ExportChoice::GptqPlan => {
                let t = if d.format == ExportChoice::LlamaPlan {
                    crate::export::plans::llama_cpp(&session.ckpt, &resolved)
                } else {
                    crate::export::plans::gptqmodel(&session.ckpt, &resolved)
                };
                let inputs: Vec<&Path> = session.ckpt.files().iter().map(|f| f.path()).collect();
                crate::export::atomic::write_text(&output, &t.text, &inputs, d.overwrite).map_err(|e| e.to_string())?;
                self.message = Some(format!(
                    "wrote {}{}{}",
                    output.display(),
                    t.command.map(|c| format!("; run: {c}")).unwrap_or_default(),
                    if t.cannot_express.is_empty() {
                        String::new()
                    } else {
                        format!("; cannot express {} tensors' schemes", t.cannot_express.len())
                    }
                ));
                self.export_dialog = None;
                return Ok(());
            }
        };
        let request = ExportRequest {
            plan: session.plan.plan.clone(),
            importance,
            format,
            output,
            options: crate::export::model::ExportOptions {
                overwrite: d.overwrite,
                max_shard_size: None,
                factors: d.factors && d.format == ExportChoice::Safetensors,
            },
        };
        self.start_export(request);
        Ok(())
    }

    /// Asks for the error map of tensor `i` under its current scheme, unless it has one.
    pub fn request_error_map(&mut self, i: usize) {
        let importance = self.plan_importance();
        let Some(session) = &mut self.session else { return };
        let Some(r) = session.plan.resolved_of(i).cloned() else { return };
        let key = (i, r.scheme.clone());
        if session.plan.error_maps.contains_key(&key) {
            return;
        }
        let cancel = session.preview_cancel.clone();
        session.plan.error_maps.insert(key, Computed::Pending(cancel.clone()));
        self.jobs.error_map(self.backend.clone(), session.ckpt.clone(), i, r, importance, cancel);
    }

    /// Asks for row `row` of tensor `i` encoded alone under its current scheme.
    pub fn request_row_levels(&mut self, i: usize, row: usize) {
        let importance = self.plan_importance();
        let Some(session) = &mut self.session else { return };
        let Some(r) = session.plan.resolved_of(i).cloned() else { return };
        let key = (i, r.scheme.clone(), row);
        if session.plan.row_levels.as_ref().is_some_and(|(k, _)| *k == key) {
            return;
        }
        let cancel = session.preview_cancel.clone();
        session.plan.row_levels = Some((key, Computed::Pending(cancel.clone())));
        self.jobs.row_levels(self.backend.clone(), session.ckpt.clone(), i, r, importance, row, cancel);
    }

    /// Selects tensor `i` for the plan view's detail (the view stays).
    pub fn select_for_plan(&mut self, i: usize) {
        self.select(i);
    }

    /// Selects the rows the plan view shows: names matching its pattern (glob or `re:`) in the
    /// role family it is filtered to.
    pub fn plan_select_matching(&mut self) {
        let pattern = self.plan_filter.trim().to_owned();
        let family = self.plan_role;
        let Some(s) = &mut self.session else { return };
        match crate::quant::plan::pattern_regex(if pattern.is_empty() { "*" } else { &pattern }) {
            Ok(re) => {
                s.plan.selection = s
                    .ckpt
                    .tensors()
                    .iter()
                    .enumerate()
                    .filter(|(_, t)| re.is_match(&t.name))
                    .filter(|(_, t)| family.is_none_or(|f| super::panels::plan::family(t.role) == f))
                    .map(|(i, _)| i)
                    .collect();
                s.plan.error = None;
            }
            Err(e) => s.plan.error = Some(e),
        }
    }

    /// Asks for a checkpoint to compare the open one with.
    pub fn pick_compare(&self) {
        self.jobs.pick(Pick::Compare, None);
    }

    /// Compares the open checkpoint with `other` in the background.
    pub fn start_diff(&mut self, other: PathBuf) {
        let Some(session) = &mut self.session else { return };
        let cancel = Cancel::new();
        session.diff = Some((Computed::Pending(cancel.clone()), (0, 0)));
        self.jobs.diff(self.backend.clone(), session.ckpt.clone(), other, cancel);
    }

    /// Asks where to save the plan, or loads one.
    pub fn pick_plan(&self, save: bool) {
        if save {
            let stem = self
                .session
                .as_ref()
                .and_then(|s| s.ckpt.path().file_stem().map(|n| n.to_string_lossy().into_owned()))
                .unwrap_or_else(|| "model".into());
            self.jobs.pick(Pick::PlanSave, Some(format!("{stem}.plan.toml")));
        } else {
            self.jobs.pick(Pick::PlanLoad, None);
        }
    }

    /// Asks where to export to (the dialog's output field takes the answer).
    pub fn pick_export_target(&self) {
        let name = self
            .export_dialog
            .as_ref()
            .and_then(|d| Path::new(&d.output).file_name().map(|n| n.to_string_lossy().into_owned()));
        self.jobs.pick(Pick::ExportTarget, name);
    }
}
