//! `weightbench salience`: the salience map of one matrix — per tile, the max of |W_ij| times the
//! importance of input channel j — from the column norms or an imported llama.cpp imatrix.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use crate::analysis::Cancel;
use crate::analysis::salience::salience_map;
use crate::checkpoint::imatrix::read_imatrix;
use crate::compute::Backend;

/// Arguments of `weightbench salience`.
#[derive(Debug, Args)]
pub struct SalienceArgs {
    /// Checkpoint (file or folder).
    pub path: PathBuf,
    /// The tensor (exact name); higher ranks are seen as [dim0, rest].
    #[arg(long)]
    pub tensor: String,
    /// A llama.cpp importance matrix (GGUF or legacy .dat) giving each input channel's mean
    /// squared activation; without it, the column L2 norms of the weight are the importance.
    #[arg(long)]
    pub importance: Option<PathBuf>,
    /// Tiles per side of the map, at most.
    #[arg(long, default_value_t = 256)]
    pub grid: usize,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

pub(super) fn run(args: &SalienceArgs, backend: &dyn Backend, out: &mut dyn Write) -> Result<()> {
    let ckpt = super::open_for_one_pass(&args.path)?;
    let t = ckpt.require(&args.tensor)?;
    let imatrix = match &args.importance {
        Some(path) => {
            Some(read_imatrix(path).with_context(|| format!("cannot read the importance matrix {}", path.display()))?)
        }
        None => None,
    };
    let imported = match &imatrix {
        Some(m) => {
            let arch = ckpt.model_config().map(|m| m.architecture.as_str()).unwrap_or("");
            let v = m.for_tensor(&t.name, arch).with_context(|| {
                format!(
                    "the importance matrix {} has no vector for {} ({} columns)",
                    m.source,
                    t.name,
                    t.shape_string()
                )
            })?;
            Some((v, m.source.clone()))
        }
        None => None,
    };
    let map = salience_map(backend, &ckpt, t, imported, args.grid.max(1), &Cancel::new())?;
    if args.json {
        return super::write_json(out, &map);
    }
    let max = map.tiles.iter().copied().fold(0f32, f32::max);
    let (at, _) =
        map.tiles.iter().enumerate().fold((0, f32::MIN), |best, (i, &v)| if v > best.1 { (i, v) } else { best });
    writeln!(
        out,
        "{} {}: salience map of {} x {} tiles of {} x {} values",
        t.name,
        t.shape_string(),
        map.grid_rows,
        map.grid_cols,
        map.tile_rows,
        map.tile_cols
    )?;
    let source = match &map.source {
        crate::analysis::salience::ImportanceSource::ColumnNorms => "column L2 norms of the weight".to_owned(),
        crate::analysis::salience::ImportanceSource::Imported(name) => format!("imported from {name}"),
    };
    writeln!(out, "importance: {source}")?;
    writeln!(
        out,
        "largest tile: {max:.4e} at tile row {}, column {} (rows {}.., columns {}..)",
        at / map.grid_cols.max(1),
        at % map.grid_cols.max(1),
        at / map.grid_cols.max(1) * map.tile_rows,
        at % map.grid_cols.max(1) * map.tile_cols
    )?;
    writeln!(out, "the map itself is in --json")?;
    writeln!(out, "{}", super::computed_on([&map.computed]))?;
    Ok(())
}
