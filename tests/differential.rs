//! Our safetensors reader against the `safetensors` crate, the format's reference parser, as a
//! second opinion: on the hostile corpus and on thousands of generated files (valid ones and ones
//! broken in every way the generator knows), a file must be accepted by both or refused by both,
//! except for the deliberate differences named in [`Difference`].

use weightbench::checkpoint::Checkpoint;

use crate::fixtures::{Rng, TempDir};

/// Where we knowingly part from `safetensors::SafeTensors::deserialize`.
#[derive(Debug, PartialEq, Eq)]
enum Difference {
    /// `__metadata__` values that are not strings: we drop them (writers differ), it refuses.
    NonStringMetadata,
    /// The same key twice in the header: we refuse it (which one is meant?), it keeps the last.
    DuplicateKey,
}

/// One generated file and the differences it was built with.
fn generate(rng: &mut Rng) -> (Vec<u8>, Vec<Difference>) {
    const DTYPES: &[(&str, u64)] = &[
        ("F32", 4),
        ("F16", 2),
        ("BF16", 2),
        ("I8", 1),
        ("U8", 1),
        ("F64", 8),
        ("I64", 8),
        ("I32", 4),
        ("BOOL", 1),
        ("F8_E4M3", 1),
        ("F8_E5M2", 1),
    ];
    let mut differences = Vec::new();
    let mut entries: Vec<String> = Vec::new();
    let mut offset = 0u64;
    let tensors = rng.below(4);
    let mut names: Vec<String> = Vec::new();
    for i in 0..tensors {
        let mut name = format!("t{i}");
        if rng.chance(5) && !names.is_empty() {
            name = names[0].clone();
            differences.push(Difference::DuplicateKey);
        }
        names.push(name.clone());
        let (mut dtype, size) = DTYPES[rng.below(DTYPES.len() as u64) as usize];
        if rng.chance(4) {
            dtype = ["F33", "f32", "", "Q4_0"][rng.below(4) as usize];
        }
        let rank = rng.below(4);
        let mut shape: Vec<u64> = (0..rank).map(|_| rng.below(5)).collect();
        let numel: u64 = shape.iter().product();
        let mut bytes = numel * size;
        if rng.chance(4) {
            shape.push(1 << 40); // disagrees with the bytes, or overflows with the others
        }
        let mut start = offset;
        if rng.chance(4) {
            start += 1 + rng.below(3); // a gap: bytes that belong to no tensor
        }
        if rng.chance(4) && start > 0 {
            start -= 1; // an overlap with the previous tensor
        }
        if rng.chance(3) {
            bytes += 1; // the range disagrees with the shape
        }
        let mut end = start + bytes;
        if rng.chance(2) && end > 0 {
            end = start.saturating_sub(1); // reversed
        }
        let offsets = if rng.chance(3) { format!("[{start}]") } else { format!("[{start},{end}]") };
        let shape_text = format!("{shape:?}").replace(' ', "");
        entries.push(format!(r#""{name}":{{"dtype":"{dtype}","shape":{shape_text},"data_offsets":{offsets}}}"#));
        offset = offset.max(end);
    }
    if rng.chance(20) {
        let value = if rng.chance(30) {
            differences.push(Difference::NonStringMetadata);
            r#"{"format":"pt","n":3}"#
        } else {
            r#"{"format":"pt"}"#
        };
        let at = rng.below(entries.len() as u64 + 1) as usize;
        entries.insert(at, format!(r#""__metadata__":{value}"#));
    }
    let mut header = format!("{{{}}}", entries.join(","));
    if rng.chance(10) {
        header.push_str(&" ".repeat(rng.below(8) as usize)); // padding, as writers align with spaces
    }
    let mut data_len = offset;
    if rng.chance(5) {
        data_len += 1 + rng.below(4); // trailing bytes
    }
    if rng.chance(5) {
        data_len = data_len.saturating_sub(1); // truncated
    }
    let mut file = (header.len() as u64).to_le_bytes().to_vec();
    if rng.chance(2) {
        file = (header.len() as u64 + 1 + rng.below(100)).to_le_bytes().to_vec(); // the length lies
    }
    file.extend_from_slice(header.as_bytes());
    file.resize(file.len() + data_len as usize, 0);
    (file, differences)
}

fn ours(dir: &TempDir, bytes: &[u8]) -> Result<(), String> {
    let path = dir.join("model.safetensors");
    std::fs::write(&path, bytes).unwrap();
    Checkpoint::open(&path).map(|_| ()).map_err(|e| e.to_string())
}

fn theirs(bytes: &[u8]) -> Result<(), String> {
    safetensors::SafeTensors::deserialize(bytes).map(|_| ()).map_err(|e| e.to_string())
}

/// Both readers on `bytes`: `None` when they agree or differ for a named reason, otherwise the
/// disagreement described.
fn compare(dir: &TempDir, what: &str, bytes: &[u8], differences: &[Difference]) -> Option<String> {
    let (a, b) = (ours(dir, bytes), theirs(bytes));
    if a.is_ok() == b.is_ok() {
        return None;
    }
    let explained = match (&a, &b) {
        (Ok(()), Err(_)) => differences.contains(&Difference::NonStringMetadata),
        (Err(_), Ok(())) => differences.contains(&Difference::DuplicateKey),
        _ => false,
    };
    (!explained).then(|| format!("{what}: ours {a:?}, safetensors {b:?}, header {:?}", String::from_utf8_lossy(bytes)))
}

/// Every safetensors file of the hostile corpus: refused by both readers, but for the named
/// differences.
#[test]
fn the_hostile_corpus_is_refused_by_both_readers() {
    let dir = TempDir::new();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/hostile");
    let mut seen = 0;
    let mut disagreements = Vec::new();
    for entry in std::fs::read_dir(&root).unwrap() {
        let path = entry.unwrap().path().join("model.safetensors");
        if !path.is_file() || !path.parent().unwrap().file_name().unwrap().to_string_lossy().starts_with("st-") {
            continue;
        }
        seen += 1;
        let bytes = std::fs::read(&path).unwrap();
        // The corpus' NaN case is a valid file (its fault is for GPTQ, not the reader).
        let valid = path.to_string_lossy().contains("st-nan-and-inf-values");
        assert_eq!(ours(&dir, &bytes).is_ok(), valid, "{}", path.display());
        if let Some(d) = compare(&dir, &path.display().to_string(), &bytes, &[]) {
            disagreements.push(d);
        }
    }
    assert!(seen >= 25, "{seen} safetensors cases");
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
}

/// Thousands of generated files, valid and broken: both readers agree but for the named
/// differences, and both kinds of answer are well represented.
#[test]
fn generated_files_get_the_same_answer_from_both_readers() {
    let dir = TempDir::new();
    let mut rng = Rng(0x5afe_7e25);
    let (mut accepted, mut refused) = (0, 0);
    let mut disagreements = Vec::new();
    for i in 0..4000 {
        let (bytes, differences) = generate(&mut rng);
        match ours(&dir, &bytes) {
            Ok(()) => accepted += 1,
            Err(_) => refused += 1,
        }
        if let Some(d) = compare(&dir, &format!("file {i}"), &bytes, &differences) {
            disagreements.push(d);
        }
    }
    assert!(accepted >= 400 && refused >= 400, "accepted {accepted}, refused {refused}");
    assert!(
        disagreements.is_empty(),
        "{} disagreements:\n{}",
        disagreements.len(),
        disagreements.iter().take(12).cloned().collect::<Vec<_>>().join("\n")
    );
}
