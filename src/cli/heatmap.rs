//! `weightbench heatmap`: any map the window shows, headless — a region of a matrix cut into
//! tiles, each summarised in one of five modes, as JSON or as a PNG with its colour legend.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::analysis::Cancel;
use crate::analysis::heatmap::{Mode, heatmap, parse_range};
use crate::compute::{Backend, TensorRef, ValueSource};

/// Arguments of `weightbench heatmap`.
#[derive(Debug, Args)]
pub struct HeatmapArgs {
    /// Checkpoint (file or folder).
    pub path: PathBuf,
    /// The tensor (exact name); higher ranks are seen as [dim0, rest].
    #[arg(long)]
    pub tensor: String,
    /// What each tile shows.
    #[arg(long, value_enum, default_value = "absmax")]
    pub mode: ModeArg,
    /// Rows of the region, A..B (end exclusive; either side may be left out).
    #[arg(long, default_value = "..")]
    pub rows: String,
    /// Columns of the region, C..D.
    #[arg(long, default_value = "..")]
    pub cols: String,
    /// Tiles down × across, at most (`256x256`; one number for both).
    #[arg(long, default_value = "256x256")]
    pub grid: String,
    /// For salience: a llama.cpp importance matrix (else the column L2 norms).
    #[arg(long)]
    pub importance: Option<PathBuf>,
    /// Write a PNG of the map with its colour legend.
    #[arg(long)]
    pub png: Option<PathBuf>,
    /// Log colour scale in the PNG (magnitude modes).
    #[arg(long)]
    pub log: bool,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// What each tile shows (`--mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ModeArg {
    /// max |x|.
    Absmax,
    /// The mean (signed).
    Mean,
    /// The value of largest |x|, sign kept.
    Extreme,
    /// sqrt(mean x²).
    Rms,
    /// max |x| · |importance of the column|.
    Salience,
}

impl From<ModeArg> for Mode {
    fn from(m: ModeArg) -> Mode {
        match m {
            ModeArg::Absmax => Mode::Absmax,
            ModeArg::Mean => Mode::Mean,
            ModeArg::Extreme => Mode::Extreme,
            ModeArg::Rms => Mode::Rms,
            ModeArg::Salience => Mode::Salience,
        }
    }
}

fn parse_grid(text: &str) -> Result<(usize, usize)> {
    let parse = |s: &str| s.trim().parse::<usize>().with_context(|| format!("--grid {text}: `{s}` is not a count"));
    let (a, b) = match text.split_once(['x', 'X', '×']) {
        Some((a, b)) => (parse(a)?, parse(b)?),
        None => (parse(text)?, parse(text)?),
    };
    if a == 0 || b == 0 || a > 8192 || b > 8192 {
        bail!("--grid {text}: 1 to 8192 tiles a side");
    }
    Ok((a, b))
}

pub(super) fn run(args: &HeatmapArgs, backend: &dyn Backend, out: &mut dyn Write) -> Result<()> {
    let ckpt = super::open(&args.path)?;
    let t = ckpt.require(&args.tensor)?;
    let src = TensorRef::new(&ckpt, t);
    if !src.is_matrix() {
        bail!("tensor {} {} is not a matrix: a heatmap needs two dimensions", t.name, t.shape_string());
    }
    let (n_rows, n_cols) = src.matrix_shape();
    let rows = parse_range(&args.rows, n_rows).map_err(anyhow::Error::msg).context("--rows")?;
    let cols = parse_range(&args.cols, n_cols).map_err(anyhow::Error::msg).context("--cols")?;
    let grid = parse_grid(&args.grid)?;
    let cancel = Cancel::new();
    let mode = Mode::from(args.mode);
    let importance: Option<Vec<f32>> = match (mode, &args.importance) {
        (Mode::Salience, Some(path)) => {
            let m = crate::checkpoint::imatrix::read_imatrix(path)
                .with_context(|| format!("cannot read the importance matrix {}", path.display()))?;
            let arch = ckpt.model_config().map(|m| m.architecture.clone()).unwrap_or_default();
            Some(
                m.for_tensor(&t.name, &arch)
                    .with_context(|| format!("the importance matrix {} has no vector for {}", m.source, t.name))?
                    .to_vec(),
            )
        }
        (Mode::Salience, None) => {
            let ch = backend.channels(&src, 1, &cancel)?;
            Some(ch.value.col_l2.iter().map(|&v| v as f32).collect())
        }
        _ => None,
    };
    let tiles = heatmap(backend, &ckpt, t, rows, cols, grid, mode, importance.as_deref(), &cancel)?;
    if let Some(png) = &args.png {
        let inputs: Vec<&std::path::Path> = ckpt.files().iter().map(|f| f.path()).collect();
        super::heatmap_png::write(&tiles, args.log, png, &inputs)?;
    }
    if args.json {
        return super::write_json(out, &tiles);
    }
    writeln!(
        out,
        "{} {}: {} of rows {:?}, columns {:?} in {} x {} tiles of {} x {} values",
        t.name,
        t.shape_string(),
        mode.label(),
        tiles.rows,
        tiles.cols,
        tiles.grid_rows,
        tiles.grid_cols,
        tiles.tile_rows,
        tiles.tile_cols
    )?;
    let (at, v) = tiles
        .values
        .iter()
        .enumerate()
        .filter(|(_, v)| v.is_finite())
        .fold((0, 0f32), |best, (i, &v)| if v.abs() > best.1.abs() { (i, v) } else { best });
    let (r, c) = tiles.tile_span(at);
    writeln!(out, "largest |value|: {v:.6e} in rows {r:?}, columns {c:?}")?;
    if tiles.non_finite > 0 {
        writeln!(out, "{} values are NaN or ±Inf (left out)", tiles.non_finite)?;
    }
    if let Some(png) = &args.png {
        writeln!(out, "wrote {}", png.display())?;
    }
    writeln!(out, "the tiles themselves are in --json")?;
    writeln!(out, "{}", super::computed_on([&tiles.computed]))?;
    Ok(())
}
