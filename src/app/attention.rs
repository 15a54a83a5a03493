//! The attention view's state: the prompt, the layer and head asked for, the maps of the last
//! run (with the planned model's, when the plan was applied), and the model kept between runs so
//! that changing the layer does not reload the weights.

use std::sync::Arc;

use super::{Computed, WorkbenchApp};
use crate::cancel::Cancel;
use crate::runtime::{AttentionMap, Model, Sink};

/// The prompt shipped with the workbench (`assets/attention-prompt.txt`).
pub const DEFAULT_PROMPT: &str = include_str!("../../assets/attention-prompt.txt");

/// What the map shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Shown {
    /// The original model's probabilities.
    Original,
    /// The planned model's.
    Plan,
    /// Planned − original.
    Difference,
}

/// One run's result.
pub struct AttentionRun {
    /// The layer.
    pub layer: usize,
    /// Layers and heads per layer of the model.
    pub shape: (usize, usize),
    /// The tokens as the vocabulary spells them.
    pub tokens: Vec<String>,
    /// Every head of the layer.
    pub maps: Vec<AttentionMap>,
    /// The planned model's maps, when the plan was applied.
    pub plan_maps: Option<Vec<AttentionMap>>,
    /// The layer's attention sinks.
    pub sinks: Vec<Sink>,
    /// Which backend fake-quantized the plan, and the model's loading time, for the status line.
    pub note: String,
}

/// The view's state.
pub struct AttentionState {
    /// The prompt.
    pub text: String,
    /// The layer asked for.
    pub layer: usize,
    /// The head shown large.
    pub head: usize,
    /// Whether to run the plan beside the original.
    pub with_plan: bool,
    /// What the large map shows.
    pub shown: Shown,
    /// The last run, or the one in progress.
    pub run: Option<Computed<AttentionRun>>,
    /// Loading progress (layers loaded, layers).
    pub progress: Option<(usize, usize)>,
    /// The original model, kept between runs.
    pub model: Option<Arc<Model>>,
    /// Stops the run in progress.
    pub cancel: Option<Cancel>,
    /// Pictures of the last run's maps by (head, what is shown, thumbnail), made once.
    pub textures: std::collections::HashMap<(usize, Shown, bool), egui::TextureHandle>,
    /// How the large map was last drawn (token positions → screen; key x, −query y).
    pub map_transform: Option<egui_plot::PlotTransform>,
}

impl Default for AttentionState {
    fn default() -> Self {
        Self {
            text: DEFAULT_PROMPT.trim().to_owned(),
            layer: 0,
            head: 0,
            with_plan: false,
            shown: Shown::Original,
            run: None,
            progress: None,
            model: None,
            cancel: None,
            map_transform: None,
            textures: std::collections::HashMap::new(),
        }
    }
}

impl WorkbenchApp {
    /// Runs the attention view's prompt on its layer in the background (the plan beside the
    /// original when asked for and the plan changes a tensor).
    pub fn start_attention(&mut self) {
        let Some(session) = self.session.as_mut() else { return };
        let planned = session
            .plan
            .resolved
            .as_ref()
            .is_ok_and(|r| r.iter().any(|r| !matches!(r.parsed, crate::quant::scheme::Scheme::Keep)));
        let a = &mut session.attention;
        let cancel = Cancel::new();
        let plan = (a.with_plan && planned).then(|| session.plan.resolved.clone().unwrap_or_default());
        a.cancel = Some(cancel.clone());
        a.progress = None;
        a.run = Some(Computed::Pending(cancel.clone()));
        let (text, layer, model) = (a.text.clone(), a.layer, a.model.clone());
        self.jobs.attention(self.backend.clone(), session.ckpt.clone(), text, layer, plan, model, cancel);
    }
}
