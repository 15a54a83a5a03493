//! The tensor tree: embeddings, then one group per layer, then the head; tensors in block order.

use crate::checkpoint::Checkpoint;

/// A group of the tree.
pub struct Group {
    /// Heading shown in the tree.
    pub label: String,
    /// Tensor indices, in reading order.
    pub tensors: Vec<usize>,
    /// Shared name prefix of a layer's tensors (`encoder.layer.3.`), left out of the labels.
    pub prefix: String,
}

/// Builds the groups of a checkpoint (its tensors are already in reading order).
pub fn groups(ckpt: &Checkpoint) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    let mut current_key = None;
    for (i, t) in ckpt.tensors().iter().enumerate() {
        let (stage, layer, _) = t.reading_order();
        let key = (stage, layer);
        if current_key != Some(key) {
            current_key = Some(key);
            let label = match (stage, t.layer) {
                (_, Some(l)) => format!("layer {l}"),
                (0, None) => "embeddings".to_owned(),
                _ => "head".to_owned(),
            };
            groups.push(Group { label, tensors: Vec::new(), prefix: String::new() });
        }
        if let Some(g) = groups.last_mut() {
            g.tensors.push(i);
        }
    }
    for g in &mut groups {
        if let Some(layer) = ckpt.tensors()[g.tensors[0]].layer {
            g.prefix = layer_prefix(layer, g.tensors.iter().map(|&i| ckpt.tensors()[i].name.as_str()));
        }
    }
    groups
}

/// The part of the names up to and including the layer number (`encoder.layer.3.`), when all
/// names of the group share it.
fn layer_prefix<'a>(layer: u32, mut names: impl Iterator<Item = &'a str>) -> String {
    let Some(first) = names.next() else { return String::new() };
    let number = layer.to_string();
    let parts: Vec<&str> = first.split('.').collect();
    let Some(i) = parts.iter().position(|p| *p == number) else { return String::new() };
    let prefix = format!("{}.", parts[..=i].join("."));
    if names.all(|n| n.starts_with(&prefix)) { prefix } else { String::new() }
}

#[cfg(test)]
mod tests {
    #[test]
    fn prefix_ends_after_the_layer_number() {
        let names = ["encoder.layer.1.attention.self.query.weight", "encoder.layer.1.output.dense.bias"];
        assert_eq!(super::layer_prefix(1, names.into_iter()), "encoder.layer.1.");
        assert_eq!(super::layer_prefix(0, ["blk.0.attn_q.weight"].into_iter()), "blk.0.");
        assert_eq!(super::layer_prefix(2, ["h.2.a", "x.2.b"].into_iter()), "");
    }
}
