//! SentencePiece vocabularies (llama.cpp's `llama` tokenizer model: Gemma, Llama 2, Mistral v1)
//! between GGUF and Hugging Face's `tokenizer.json`.
//!
//! llama.cpp tokenizes such a vocabulary by merging, again and again, the adjacent pair of
//! symbols whose concatenation is the vocabulary token of highest score (the leftmost on a tie).
//! A `tokenizer.json` says the same with a BPE model (byte fallback on) whose merge list is
//! ranked by that score: here the merges are made from the scores (every split of a normal token
//! into two vocabulary tokens, best token first, as transformers' `generate_merges` does), and
//! the way back gives each token the score of its first merge's rank, which orders the merges
//! as before. The scores' values change on a round trip; their order, and so the token ids of any
//! text, do not.

use std::collections::HashMap;

use serde_json::{Value, json};

/// llama.cpp's token types (`llama_token_type`).
pub mod token_type {
    /// An ordinary piece.
    pub const NORMAL: i32 = 1;
    /// `<unk>`.
    pub const UNKNOWN: i32 = 2;
    /// `<bos>`, `<eos>`, `<start_of_turn>`, `<unusedN>`, ...
    pub const CONTROL: i32 = 3;
    /// A piece matched whole in the raw text before tokenizing (`\n\n`, `<think>`, ...).
    pub const USER_DEFINED: i32 = 4;
    /// `<0x00>` .. `<0xFF>`, for bytes no piece covers.
    pub const BYTE: i32 = 6;
}

/// The merges that llama.cpp's scores imply: for each normal token, best first (ties by id),
/// every split into two vocabulary tokens (ordered by the pieces' ids).
pub fn merges_from_scores(tokens: &[&str], scores: &[f32], types: &[i32]) -> Vec<(String, String)> {
    let ids: HashMap<&str, usize> = tokens.iter().enumerate().map(|(i, t)| (*t, i)).collect();
    let mut order: Vec<usize> = (0..tokens.len())
        .filter(|&i| types.get(i).copied().unwrap_or(token_type::NORMAL) == token_type::NORMAL)
        .collect();
    let score = |i: usize| scores.get(i).copied().unwrap_or(0.0);
    order.sort_by(|&a, &b| score(b).total_cmp(&score(a)).then(a.cmp(&b)));
    let mut merges = Vec::new();
    let mut local = Vec::new();
    for i in order {
        let token = tokens[i];
        local.clear();
        for (at, _) in token.char_indices().skip(1) {
            let (l, r) = token.split_at(at);
            if let (Some(&li), Some(&ri)) = (ids.get(l), ids.get(r)) {
                local.push((li, ri));
            }
        }
        local.sort_unstable();
        merges.extend(local.iter().map(|&(l, r)| (tokens[l].to_owned(), tokens[r].to_owned())));
    }
    merges
}

/// Scores that order `merges` as ranked: a token made by merge `k` (its first) scores `-k`;
/// tokens no merge makes score below every merged one (their score decides nothing in
/// llama.cpp's tokenizer: only merged pieces are compared).
pub fn scores_from_merges(tokens: &[String], merges: &[(String, String)]) -> Vec<f32> {
    let ids: HashMap<&str, usize> = tokens.iter().enumerate().map(|(i, t)| (t.as_str(), i)).collect();
    let mut rank: Vec<Option<usize>> = vec![None; tokens.len()];
    let mut joined = String::new();
    for (k, (l, r)) in merges.iter().enumerate() {
        joined.clear();
        joined.push_str(l);
        joined.push_str(r);
        if let Some(&i) = ids.get(joined.as_str()) {
            rank[i].get_or_insert(k);
        }
    }
    let floor = merges.len();
    rank.iter().enumerate().map(|(i, r)| -(r.unwrap_or(floor + i) as f32)).collect()
}

/// The `tokenizer.json` pieces of a SentencePiece vocabulary: normalizer, pre-tokenizer,
/// decoder and model. `add_space_prefix` is llama.cpp's flag (Llama 2 prepends `▁`, Gemma does
/// not).
pub fn tokenizer_parts(
    vocab: serde_json::Map<String, Value>,
    merges: &[(String, String)],
    unk: Option<&str>,
    add_space_prefix: bool,
) -> Value {
    let replace = json!({"type": "Replace", "pattern": {"String": " "}, "content": "\u{2581}"});
    let normalizer = if add_space_prefix {
        json!({"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "\u{2581}"}, replace]})
    } else {
        replace
    };
    let mut decoders = vec![
        json!({"type": "Replace", "pattern": {"String": "\u{2581}"}, "content": " "}),
        json!({"type": "ByteFallback"}),
        json!({"type": "Fuse"}),
    ];
    if add_space_prefix {
        decoders.push(json!({"type": "Strip", "content": " ", "start": 1, "stop": 0}));
    }
    json!({
        "normalizer": normalizer,
        "pre_tokenizer": null,
        "decoder": {"type": "Sequence", "decoders": decoders},
        "model": {"type": "BPE", "dropout": null, "unk_token": unk, "continuing_subword_prefix": null,
                  "end_of_word_suffix": null, "fuse_unk": true, "byte_fallback": true, "ignore_merges": false,
                  "vocab": vocab, "merges": merges.iter().map(|(l, r)| json!([l, r])).collect::<Vec<_>>()},
    })
}

/// Whether a `tokenizer.json` normalizer prepends `▁` (llama.cpp's `add_space_prefix`).
pub fn prepends_space(normalizer: &Value) -> bool {
    match normalizer["type"].as_str() {
        Some("Prepend") => true,
        Some("Sequence") => normalizer["normalizers"].as_array().into_iter().flatten().any(prepends_space),
        _ => false,
    }
}

/// Whether `token` is a byte-fallback piece (`<0x41>`).
pub fn is_byte_token(token: &str) -> bool {
    token.len() == 6
        && token.starts_with("<0x")
        && token.ends_with('>')
        && token[3..5].bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_follow_scores_and_scores_follow_merges_back() {
        let tokens = ["<unk>", "a", "b", "c", "ab", "bc", "abc", "<0x41>"];
        let scores = [0.0, -10.0, -11.0, -12.0, -2.0, -1.0, -3.0, 0.0];
        let types = [2, 1, 1, 1, 1, 1, 1, 6];
        let merges = merges_from_scores(&tokens, &scores, &types);
        let pairs: Vec<(&str, &str)> = merges.iter().map(|(l, r)| (l.as_str(), r.as_str())).collect();
        // "bc" (−1) before "ab" (−2) before "abc" (−3, two splits in piece-id order).
        assert_eq!(pairs, [("b", "c"), ("a", "b"), ("a", "bc"), ("ab", "c")]);
        let owned: Vec<String> = tokens.iter().map(|t| (*t).to_owned()).collect();
        let back = scores_from_merges(&owned, &merges);
        assert_eq!(&back[4..7], &[-1.0, -0.0, -2.0]);
        assert!(back[1] < back[6] && back[7] < back[6], "unmerged tokens rank below every merged one: {back:?}");
        assert_eq!(merges_from_scores(&tokens, &back, &types), merges, "the round trip keeps the merge order");
    }

    #[test]
    fn byte_tokens_and_space_prefix_are_recognised() {
        assert!(is_byte_token("<0x0A>") && !is_byte_token("<0xZZ>") && !is_byte_token("<0x0A"));
        let llama2 = json!({"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "▁"},
                                                                {"type": "Replace"}]});
        assert!(prepends_space(&llama2) && !prepends_space(&json!({"type": "Replace"})));
    }
}
