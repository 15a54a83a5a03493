//! Plans: which scheme each tensor gets, written by hand (TOML, or JSON) or by the allocator.
//!
//! ```toml
//! [model]                            # the checkpoint it was made for: elsewhere, a warning
//! tensors = 272
//! bytes = 538090496
//! [[rule]]                           # in order; a later match wins
//! match = "*.weight"                 # glob on tensor names, or "re:REGEX"
//! scheme = "q4_k"
//! [tensor."model.embed_tokens.weight"]   # explicit override, wins over rules
//! scheme = "keep"
//! ```
//!
//! A tensor no rule matches is kept. A rule that gives a tensor a scheme its shape cannot take
//! falls back (never silently): a ggml block type to the type llama.cpp's quantizer would choose,
//! an integer group to the largest power-of-two group of at least 32 that divides the rows (else
//! one scale per channel), a 1-D tensor to `keep` (as llama.cpp keeps norms and biases). An
//! explicit override that cannot take its tensor is an error, as is an unknown scheme or a bad
//! pattern: each error names the plan's line, the tensor, its shape and the scheme.

use std::collections::BTreeMap;
use std::path::Path;

use regex::Regex;
use serde::{Deserialize, Serialize};

use super::scheme::{IntGroup, Scheme, rows_cols};
use crate::codec::DType;

/// Why a plan cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The file could not be read.
    #[error("cannot read plan {path}: {error}")]
    Io {
        /// The plan file.
        path: String,
        /// Why (in the message, not as a source: a chain would print it twice).
        error: std::io::Error,
    },
    /// The text is not a plan.
    #[error("{origin}: {message}")]
    Syntax {
        /// File name (or `--scheme`).
        origin: String,
        /// What is wrong, with its line.
        message: String,
    },
    /// A rule or override cannot apply.
    #[error("{origin}:{line}: {message}")]
    Invalid {
        /// File name.
        origin: String,
        /// 1-based line (0 when unknown, e.g. JSON).
        line: usize,
        /// What is wrong: the tensor, its shape and the scheme.
        message: String,
    },
}

/// The identity of the checkpoint a plan was made for.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelIdentity {
    /// Number of tensors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tensors: Option<u64>,
    /// Stored bytes of all tensors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
}

impl ModelIdentity {
    /// The identity of `ckpt`: its tensor count and stored bytes.
    pub fn of(ckpt: &crate::checkpoint::Checkpoint) -> Self {
        ModelIdentity {
            tensors: Some(ckpt.tensors().len() as u64),
            bytes: Some(ckpt.tensors().iter().map(|t| t.bytes).sum()),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    #[serde(rename = "match")]
    pattern: toml::Spanned<String>,
    scheme: toml::Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOverride {
    scheme: toml::Spanned<String>,
    #[serde(default)]
    pinned: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlan {
    #[serde(default)]
    model: Option<ModelIdentity>,
    #[serde(default)]
    rule: Vec<RawRule>,
    #[serde(default)]
    tensor: BTreeMap<String, RawOverride>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonRule {
    #[serde(rename = "match")]
    pattern: String,
    scheme: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonOverride {
    scheme: String,
    #[serde(default)]
    pinned: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonPlan {
    #[serde(default)]
    model: Option<ModelIdentity>,
    #[serde(default)]
    rule: Vec<JsonRule>,
    #[serde(default)]
    tensor: BTreeMap<String, JsonOverride>,
}

/// One rule: a pattern and a scheme, with the line it was written on.
#[derive(Clone, Debug)]
pub struct Rule {
    /// The pattern as written.
    pub pattern: String,
    matcher: Regex,
    /// The scheme.
    pub scheme: Scheme,
    /// 1-based line in the plan (0 when unknown).
    pub line: usize,
}

impl Rule {
    /// A rule made in the workbench (no line).
    pub fn new(pattern: &str, scheme: Scheme) -> Result<Rule, String> {
        Ok(Rule { pattern: pattern.to_owned(), matcher: pattern_regex(pattern)?, scheme, line: 0 })
    }

    /// Whether the rule's pattern matches tensor `name`.
    pub fn matches(&self, name: &str) -> bool {
        self.matcher.is_match(name)
    }
}

/// An explicit per-tensor scheme.
#[derive(Clone, Debug)]
pub struct Override {
    /// The scheme.
    pub scheme: Scheme,
    /// 1-based line in the plan (0 when unknown).
    pub line: usize,
    /// Kept as it is by automatic allocation (`pinned = true`).
    pub pinned: bool,
}

/// `s` as a TOML basic string.
pub fn toml_quoted(s: &str) -> String {
    let mut q = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            c if c.is_control() => q.push_str(&format!("\\u{:04X}", c as u32)),
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

/// A parsed plan.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Where it came from (a file name, or `--scheme S`).
    pub origin: String,
    /// The checkpoint it was made for.
    pub model: Option<ModelIdentity>,
    /// Rules, in order.
    pub rules: Vec<Rule>,
    /// Overrides by tensor name.
    pub overrides: BTreeMap<String, Override>,
}

/// What a plan gives one tensor.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Resolved {
    /// The tensor.
    pub name: String,
    /// The scheme it gets.
    pub scheme: String,
    /// The scheme asked for, when a fallback replaced it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requested: Option<String>,
    /// Why the fallback.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback_reason: Option<String>,
    /// What decided: `rule N (line L)`, `override (line L)`, `no rule`.
    pub by: String,
    #[serde(skip)]
    /// The scheme, parsed.
    pub parsed: Scheme,
}

/// A glob (`*`, `?`, `[...]`; `*` crosses dots) or `re:REGEX`, anchored at both ends.
pub fn pattern_regex(pattern: &str) -> Result<Regex, String> {
    let source = match pattern.strip_prefix("re:") {
        Some(re) => format!("^(?:{re})$"),
        None => {
            let mut re = String::from("^");
            let mut chars = pattern.chars().peekable();
            while let Some(c) = chars.next() {
                match c {
                    '*' => re.push_str(".*"),
                    '?' => re.push('.'),
                    '[' => {
                        let mut class = String::from("[");
                        let mut closed = false;
                        for d in chars.by_ref() {
                            if d == ']' {
                                closed = true;
                                break;
                            }
                            if d == '\\' {
                                class.push('\\');
                            }
                            class.push(d);
                        }
                        if !closed {
                            return Err(format!("unclosed `[` in glob `{pattern}`"));
                        }
                        class.push(']');
                        re.push_str(&class);
                    }
                    other => re.push_str(&regex::escape(&other.to_string())),
                }
            }
            re.push('$');
            re
        }
    };
    Regex::new(&source).map_err(|e| format!("bad pattern `{pattern}`: {e}"))
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].bytes().filter(|&b| b == b'\n').count() + 1
}

impl Plan {
    /// A plan with no rule and no override (every tensor kept).
    pub fn empty(origin: &str) -> Plan {
        Plan { origin: origin.to_owned(), model: None, rules: Vec::new(), overrides: BTreeMap::new() }
    }

    /// The plan as TOML that [`Plan::parse_toml`] reads back to the same plan.
    pub fn to_toml(&self) -> String {
        let mut s =
            String::from("# weightbench plan: rules in order (a later match wins), then per-tensor overrides\n");
        if let Some(m) = &self.model {
            s.push_str("[model]\n");
            if let Some(t) = m.tensors {
                s.push_str(&format!("tensors = {t}\n"));
            }
            if let Some(b) = m.bytes {
                s.push_str(&format!("bytes = {b}\n"));
            }
            s.push('\n');
        }
        for r in &self.rules {
            s.push_str(&format!(
                "[[rule]]\nmatch = {}\nscheme = {}\n\n",
                toml_quoted(&r.pattern),
                toml_quoted(&r.scheme.to_string())
            ));
        }
        for (name, o) in &self.overrides {
            s.push_str(&format!("[tensor.{}]\nscheme = {}\n", toml_quoted(name), toml_quoted(&o.scheme.to_string())));
            if o.pinned {
                s.push_str("pinned = true\n");
            }
            s.push('\n');
        }
        s
    }

    /// The plan of `--scheme S`: every tensor gets S (with the fallbacks of a rule).
    pub fn single(scheme: &str) -> Result<Plan, PlanError> {
        let origin = format!("--scheme {scheme}");
        let parsed: Scheme = scheme.parse().map_err(|message| PlanError::Syntax { origin: origin.clone(), message })?;
        let matcher = pattern_regex("*").map_err(|message| PlanError::Syntax { origin: origin.clone(), message })?;
        Ok(Plan {
            origin,
            model: None,
            rules: vec![Rule { pattern: "*".into(), matcher, scheme: parsed, line: 0 }],
            overrides: BTreeMap::new(),
        })
    }

    /// Reads a plan file (`.json` as JSON, anything else as TOML).
    pub fn load(path: &Path) -> Result<Plan, PlanError> {
        let text =
            std::fs::read_to_string(path).map_err(|error| PlanError::Io { path: path.display().to_string(), error })?;
        let origin = path.display().to_string();
        if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json")) {
            Plan::parse_json(&text, &origin)
        } else {
            Plan::parse_toml(&text, &origin)
        }
    }

    /// Parses a TOML plan.
    pub fn parse_toml(text: &str, origin: &str) -> Result<Plan, PlanError> {
        let raw: RawPlan = toml::from_str(text)
            .map_err(|e| PlanError::Syntax { origin: origin.to_owned(), message: e.to_string() })?;
        let invalid = |line: usize, message: String| PlanError::Invalid { origin: origin.to_owned(), line, message };
        let mut rules = Vec::new();
        for r in raw.rule {
            let line = line_of(text, r.pattern.span().start);
            let matcher = pattern_regex(r.pattern.get_ref()).map_err(|m| invalid(line, m))?;
            let sline = line_of(text, r.scheme.span().start);
            let scheme: Scheme = r.scheme.get_ref().parse().map_err(|m| invalid(sline, m))?;
            rules.push(Rule { pattern: r.pattern.into_inner(), matcher, scheme, line });
        }
        let mut overrides = BTreeMap::new();
        for (name, o) in raw.tensor {
            let line = line_of(text, o.scheme.span().start);
            let scheme: Scheme =
                o.scheme.get_ref().parse().map_err(|m| invalid(line, format!("tensor {name}: {m}")))?;
            overrides.insert(name, Override { scheme, line, pinned: o.pinned });
        }
        Ok(Plan { origin: origin.to_owned(), model: raw.model, rules, overrides })
    }

    /// Parses a JSON plan (same fields; errors name the rule's index, JSON having no lines
    /// after parsing).
    pub fn parse_json(text: &str, origin: &str) -> Result<Plan, PlanError> {
        let raw: JsonPlan = serde_json::from_str(text)
            .map_err(|e| PlanError::Syntax { origin: origin.to_owned(), message: e.to_string() })?;
        let invalid = |message: String| PlanError::Invalid { origin: origin.to_owned(), line: 0, message };
        let mut rules = Vec::new();
        for (k, r) in raw.rule.into_iter().enumerate() {
            let matcher = pattern_regex(&r.pattern).map_err(|m| invalid(format!("rule {}: {m}", k + 1)))?;
            let scheme: Scheme = r.scheme.parse().map_err(|m| invalid(format!("rule {}: {m}", k + 1)))?;
            rules.push(Rule { pattern: r.pattern, matcher, scheme, line: 0 });
        }
        let mut overrides = BTreeMap::new();
        for (name, o) in raw.tensor {
            let scheme: Scheme = o.scheme.parse().map_err(|m| invalid(format!("tensor {name}: {m}")))?;
            overrides.insert(name, Override { scheme, line: 0, pinned: o.pinned });
        }
        Ok(Plan { origin: origin.to_owned(), model: raw.model, rules, overrides })
    }

    /// [`Plan::resolve`] on every tensor of `ckpt`.
    pub fn resolve_all(&self, ckpt: &crate::checkpoint::Checkpoint) -> Result<(Vec<Resolved>, Vec<String>), PlanError> {
        self.resolve(&described(ckpt.tensors()), &ModelIdentity::of(ckpt))
    }

    /// The scheme of every tensor (`(name, shape)`, in checkpoint order), and warnings: rules
    /// that match nothing, overrides of tensors that do not exist, a model identity that differs.
    pub fn resolve(
        &self,
        tensors: &[Described],
        identity: &ModelIdentity,
    ) -> Result<(Vec<Resolved>, Vec<String>), PlanError> {
        let mut warnings = Vec::new();
        if let Some(m) = &self.model
            && (m.tensors.is_some_and(|t| Some(t) != identity.tensors)
                || m.bytes.is_some_and(|b| Some(b) != identity.bytes))
        {
            warnings.push(format!(
                "{}: made for a checkpoint of {} tensors and {} bytes; this one has {} tensors and {} bytes",
                self.origin,
                m.tensors.map_or("?".into(), |t| t.to_string()),
                m.bytes.map_or("?".into(), |b| b.to_string()),
                identity.tensors.unwrap_or(0),
                identity.bytes.unwrap_or(0),
            ));
        }
        let mut used = vec![false; self.rules.len()];
        let mut out = Vec::with_capacity(tensors.len());
        for (name, shape, dtype) in tensors {
            let at = |line: usize| if line > 0 { format!(" (line {line})") } else { String::new() };
            if let Some(o) = self.overrides.get(name) {
                if dtype.is_integer() && o.scheme != Scheme::Keep {
                    return Err(PlanError::Invalid {
                        origin: self.origin.clone(),
                        line: o.line,
                        message: format!(
                            "tensor {name} holds {dtype} integers (ids or masks, not weights): it can only be kept, not `{}`",
                            o.scheme
                        ),
                    });
                }
                o.scheme.check(shape).map_err(|m| PlanError::Invalid {
                    origin: self.origin.clone(),
                    line: o.line,
                    message: format!("tensor {name} {shape:?}: {m}"),
                })?;
                out.push(Resolved {
                    name: name.clone(),
                    scheme: o.scheme.to_string(),
                    requested: None,
                    fallback_reason: None,
                    by: format!("override{}", at(o.line)),
                    parsed: o.scheme.clone(),
                });
                continue;
            }
            let hit = self.rules.iter().enumerate().rev().find(|(_, r)| r.matcher.is_match(name));
            let Some((k, rule)) = hit else {
                out.push(Resolved {
                    name: name.clone(),
                    scheme: "keep".into(),
                    requested: None,
                    fallback_reason: None,
                    by: "no rule".into(),
                    parsed: Scheme::Keep,
                });
                continue;
            };
            used[k] = true;
            if dtype.is_integer() && rule.scheme != Scheme::Keep {
                out.push(Resolved {
                    name: name.clone(),
                    scheme: "keep".into(),
                    requested: Some(rule.scheme.to_string()),
                    fallback_reason: Some(format!("{dtype} tensor: kept, its integers are ids or masks, not weights")),
                    by: format!("rule {}{}", k + 1, at(rule.line)),
                    parsed: Scheme::Keep,
                });
                continue;
            }
            let (scheme, reason) = fallback(&rule.scheme, shape).map_err(|m| PlanError::Invalid {
                origin: self.origin.clone(),
                line: rule.line,
                message: format!("rule `{}` gives tensor {name} {shape:?} `{}`: {m}", rule.pattern, rule.scheme),
            })?;
            out.push(Resolved {
                name: name.clone(),
                scheme: scheme.to_string(),
                requested: reason.as_ref().map(|_| rule.scheme.to_string()),
                fallback_reason: reason,
                by: format!("rule {}{}", k + 1, at(rule.line)),
                parsed: scheme,
            });
        }
        for (rule, used) in self.rules.iter().zip(used) {
            if !used {
                let at = if rule.line > 0 { format!(":{}", rule.line) } else { String::new() };
                warnings.push(format!("{}{at}: rule `{}` matches no tensor", self.origin, rule.pattern));
            }
        }
        for name in self.overrides.keys() {
            if !tensors.iter().any(|(n, _, _)| n == name) {
                warnings
                    .push(format!("{}: override of tensor {name}, which this checkpoint does not have", self.origin));
            }
        }
        Ok((out, warnings))
    }
}

/// What resolution needs of a tensor: its name, shape and stored type (integer tensors, such as
/// position ids, are kept whatever a rule says).
pub type Described = (String, Vec<u64>, DType);

/// The [`Described`] form of `tensors`.
pub fn described<'a>(tensors: impl IntoIterator<Item = &'a crate::checkpoint::TensorInfo>) -> Vec<Described> {
    tensors.into_iter().map(|t| (t.name.clone(), t.shape.clone(), t.dtype)).collect()
}

/// The scheme a rule's `scheme` becomes for a tensor of `shape`, with the reason when it is not
/// the one asked for; an error when no fallback exists.
pub fn fallback(scheme: &Scheme, shape: &[u64]) -> Result<(Scheme, Option<String>), String> {
    if scheme.check(shape).is_ok() {
        return Ok((scheme.clone(), None));
    }
    let Some((_, cols)) = rows_cols(shape) else {
        return Ok((Scheme::Keep, Some("1-D tensor: kept, as llama.cpp keeps norms and biases".into())));
    };
    if let Scheme::With { method, base } = scheme {
        let (b, why) = fallback(base, shape)?;
        let why = why.unwrap_or_default();
        return Ok(match method.check_base(&b) {
            Ok(()) if b != Scheme::Keep => (Scheme::With { method: *method, base: Box::new(b) }, Some(why)),
            _ => {
                let dropped = format!("{why}; {b} takes no +{}, so plain {b}", method.suffix());
                (b, Some(dropped))
            }
        });
    }
    if let Some((s, why)) = scheme.ggml_fallback(shape) {
        return Ok((s, Some(why)));
    }
    if let Scheme::Int { bits, group: IntGroup::Size(n), asym } = *scheme {
        let mut g = n / 2;
        while g >= 32 {
            if cols.is_multiple_of(g as u64) {
                let s = Scheme::Int { bits, group: IntGroup::Size(g), asym };
                return Ok((s, Some(format!("groups of {n} do not divide rows of {cols}: groups of {g}"))));
            }
            g /= 2;
        }
        let s = Scheme::Int { bits, group: IntGroup::Channel, asym };
        return Ok((s, Some(format!("no group of 32..{n} divides rows of {cols}: one scale per channel"))));
    }
    Err(scheme.check(shape).err().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_written_as_toml_reads_back_the_same() {
        let text = "[model]\ntensors = 3\nbytes = 99\n[[rule]]\nmatch = \"*.weight\"\nscheme = \"q4_k\"\n\
                    [[rule]]\nmatch = \"re:.*\\\\.(q|k)_proj\\\\..*\"\nscheme = \"int4_g128+awq@0.25\"\n\
                    [tensor.\"a \\\"quoted\\\" name\"]\nscheme = \"keep\"\npinned = true\n\
                    [tensor.\"b\"]\nscheme = \"lowrank_r8\"\n";
        let plan = Plan::parse_toml(text, "p.toml").unwrap();
        let again = Plan::parse_toml(&plan.to_toml(), "again.toml").unwrap();
        assert_eq!(again.model, plan.model);
        let rules = |p: &Plan| p.rules.iter().map(|r| (r.pattern.clone(), r.scheme.to_string())).collect::<Vec<_>>();
        assert_eq!(rules(&again), rules(&plan));
        let overrides =
            |p: &Plan| p.overrides.iter().map(|(n, o)| (n.clone(), o.scheme.to_string(), o.pinned)).collect::<Vec<_>>();
        assert_eq!(overrides(&again), overrides(&plan));
        assert!(again.overrides["a \"quoted\" name"].pinned && !again.overrides["b"].pinned);
        let rule = Rule::new("*.q_proj.*", Scheme::Keep).unwrap();
        assert!(rule.matches("layers.0.q_proj.weight") && !rule.matches("layers.0.k_proj.weight"));
    }

    fn tensors() -> Vec<Described> {
        vec![
            ("model.embed_tokens.weight".into(), vec![49152, 576], DType::BF16),
            ("model.layers.0.mlp.down_proj.weight".into(), vec![576, 1536], DType::BF16),
            ("model.layers.0.mlp.up_proj.weight".into(), vec![1536, 576], DType::BF16),
            ("model.layers.0.input_layernorm.weight".into(), vec![576], DType::BF16),
        ]
    }

    #[test]
    fn integer_tensors_are_kept_by_rules_and_refused_by_overrides() {
        let ids: Vec<Described> = vec![("embeddings.position_ids".into(), vec![1, 512], DType::I64)];
        let (r, _) = Plan::single("q8_0").unwrap().resolve(&ids, &ModelIdentity::default()).unwrap();
        assert_eq!((r[0].scheme.as_str(), r[0].requested.as_deref()), ("keep", Some("q8_0")));
        assert!(r[0].fallback_reason.as_deref().is_some_and(|w| w.contains("I64")), "{:?}", r[0].fallback_reason);
        let text = "[tensor.\"embeddings.position_ids\"]\nscheme = \"int8_ch\"\n";
        let err = Plan::parse_toml(text, "p.toml").unwrap().resolve(&ids, &ModelIdentity::default()).unwrap_err();
        assert!(err.to_string().contains("position_ids") && err.to_string().contains("I64"), "{err}");
        let keep = "[tensor.\"embeddings.position_ids\"]\nscheme = \"keep\"\n";
        assert!(Plan::parse_toml(keep, "p.toml").unwrap().resolve(&ids, &ModelIdentity::default()).is_ok());
    }

    #[test]
    fn later_rules_win_overrides_win_and_fallbacks_say_why() {
        let text = r#"
[model]
tensors = 4
[[rule]]
match = "*.weight"
scheme = "q4_k"
[[rule]]
match = "re:.*(mlp\\.down_proj|ffn_down).*"
scheme = "q6_k"
[tensor."model.embed_tokens.weight"]
scheme = "keep"
"#;
        let plan = Plan::parse_toml(text, "p.toml").unwrap();
        let (r, warnings) = plan.resolve(&tensors(), &ModelIdentity { tensors: Some(4), bytes: None }).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        let by_name: BTreeMap<_, _> = r.iter().map(|x| (x.name.as_str(), x)).collect();
        assert_eq!(by_name["model.embed_tokens.weight"].scheme, "keep");
        assert_eq!(by_name["model.layers.0.mlp.down_proj.weight"].scheme, "q6_k");
        assert_eq!(by_name["model.layers.0.mlp.down_proj.weight"].by, "rule 2 (line 8)");
        let up = by_name["model.layers.0.mlp.up_proj.weight"];
        assert_eq!((up.scheme.as_str(), up.requested.as_deref()), ("q5_0", Some("q4_k")));
        assert_eq!(by_name["model.layers.0.input_layernorm.weight"].scheme, "keep");
    }

    #[test]
    fn errors_name_the_line_the_tensor_and_the_scheme() {
        let err = Plan::parse_toml("[[rule]]\nmatch = \"*\"\nscheme = \"q4_q\"\n", "p.toml").unwrap_err().to_string();
        assert!(err.starts_with("p.toml:3:") && err.contains("q4_q"), "{err}");
        let err =
            Plan::parse_toml("[[rule]]\nmatch = \"re:(\"\nscheme = \"q8_0\"\n", "p.toml").unwrap_err().to_string();
        assert!(err.starts_with("p.toml:2:"), "{err}");
        let plan =
            Plan::parse_toml("[tensor.\"model.layers.0.mlp.up_proj.weight\"]\nscheme = \"q4_k\"\n", "p.toml").unwrap();
        let err = plan.resolve(&tensors(), &ModelIdentity::default()).unwrap_err().to_string();
        assert!(err.starts_with("p.toml:2:") && err.contains("[1536, 576]") && err.contains("q4_k"), "{err}");
        let plan =
            Plan::parse_toml("[tensor.\"model.layers.0.input_layernorm.weight\"]\nscheme = \"lowrank_r8\"\n", "p")
                .unwrap();
        assert!(plan.resolve(&tensors(), &ModelIdentity::default()).unwrap_err().to_string().contains("1-D"));
    }

    #[test]
    fn unmatched_rules_and_other_models_warn() {
        let plan =
            Plan::parse_toml("[model]\ntensors = 9\n[[rule]]\nmatch = \"*.bias\"\nscheme = \"q8_0\"\n", "p").unwrap();
        let (_, w) = plan.resolve(&tensors(), &ModelIdentity { tensors: Some(4), bytes: None }).unwrap();
        assert_eq!(w.len(), 2, "{w:?}");
        let json = r#"{"rule": [{"match": "*", "scheme": "int4_g128"}]}"#;
        let (r, _) = Plan::parse_json(json, "p.json").unwrap().resolve(&tensors(), &ModelIdentity::default()).unwrap();
        assert_eq!(r[1].scheme, "int4_g128");
        assert_eq!((r[2].scheme.as_str(), r[2].requested.as_deref()), ("int4_g64", Some("int4_g128")));
    }
}
