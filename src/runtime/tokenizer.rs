//! Text to token ids with the `tokenizers` crate: the Hugging Face folder's own `tokenizer.json`,
//! or, for a GGUF, the one rebuilt from its `tokenizer.ggml.*` keys
//! ([`crate::checkpoint::hf_tokenizer`]), so both tokenize as transformers does.

use std::path::{Path, PathBuf};

use super::RuntimeError;
use crate::checkpoint::{Checkpoint, Format};

/// A loaded tokenizer.
pub struct TextTokenizer {
    inner: tokenizers::Tokenizer,
    /// Where it came from, for messages.
    pub origin: String,
    /// The model's vocabulary size (from its configuration), which every id must stay below.
    vocab: Option<u64>,
}

/// The vocabulary size the checkpoint's configuration gives, if any.
fn vocab_of(ckpt: &Checkpoint) -> Option<u64> {
    ckpt.model_config().and_then(|c| c.vocab_size)
}

/// The folder a checkpoint lives in (the folder itself, or the file's parent).
pub(crate) fn folder_of(path: &Path) -> PathBuf {
    if path.is_dir() { path.to_path_buf() } else { path.parent().map(Path::to_path_buf).unwrap_or_default() }
}

impl TextTokenizer {
    /// The tokenizer of `ckpt`: `tokenizer.json` beside it, else one rebuilt from GGUF keys.
    pub fn of(ckpt: &Checkpoint) -> Result<Self, RuntimeError> {
        let file = folder_of(ckpt.path()).join("tokenizer.json");
        if ckpt.format() != Format::Gguf && file.is_file() {
            let mut inner = tokenizers::Tokenizer::from_file(&file)
                .map_err(|e| RuntimeError::Tokenizer(format!("{}: {e}", file.display())))?;
            // As transformers' `tokenizer(text)`: the file's padding and truncation (MiniLM's pad
            // every text to 128) apply only when asked for.
            inner.with_padding(None);
            inner.with_truncation(None).map_err(|e| RuntimeError::Tokenizer(format!("{}: {e}", file.display())))?;
            return Ok(Self { inner, origin: file.display().to_string(), vocab: vocab_of(ckpt) });
        }
        let origin = format!("{} (tokenizer.ggml.* keys)", ckpt.path().display());
        let rebuilt = crate::checkpoint::hf_tokenizer::from_gguf(ckpt).ok_or_else(|| {
            RuntimeError::Tokenizer(format!(
                "{}: no tokenizer.json beside it and no GGUF tokenizer",
                ckpt.path().display()
            ))
        })?;
        let rebuilt = rebuilt.map_err(|e| RuntimeError::Tokenizer(format!("{origin}: {e}")))?;
        let inner: tokenizers::Tokenizer =
            rebuilt.tokenizer.to_string().parse().map_err(|e| RuntimeError::Tokenizer(format!("{origin}: {e}")))?;
        Ok(Self { inner, origin, vocab: vocab_of(ckpt) })
    }

    /// The ids of `text`, special tokens added as the tokenizer's post-processor says (as
    /// transformers' `tokenizer(text)` does).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, RuntimeError> {
        let enc =
            self.inner.encode(text, true).map_err(|e| RuntimeError::Tokenizer(format!("{}: {e}", self.origin)))?;
        let vocab = self.vocab.unwrap_or(u64::MAX);
        if let Some((i, &id)) = enc.get_ids().iter().enumerate().find(|(_, id)| u64::from(**id) >= vocab) {
            let token = enc.get_tokens().get(i).cloned().unwrap_or_default();
            return Err(RuntimeError::Tokenizer(format!(
                "{}: token {token:?} has id {id}, outside the model's vocabulary of {vocab} (is it this model's tokenizer?)",
                self.origin
            )));
        }
        Ok(enc.get_ids().to_vec())
    }

    /// The text of each token (for labels), as the vocabulary spells it.
    pub fn pieces(&self, ids: &[u32]) -> Vec<String> {
        ids.iter()
            .map(|&id| {
                let piece = self.inner.id_to_token(id).unwrap_or_else(|| format!("<{id}>"));
                // Byte-level BPE spells a space Ġ and a newline Ċ, SentencePiece a space ▁: shown
                // as a middle dot and \n (glyphs every font has).
                piece.replace(['Ġ', '▁'], "·").replace('Ċ', "\\n")
            })
            .collect()
    }
}
