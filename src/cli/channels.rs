//! `weightbench channels`: per-channel statistics of one matrix, its outlying channels and a
//! tiled abs-max map.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::compute::Backend;

/// Arguments of `weightbench channels`.
#[derive(Debug, Args)]
pub struct ChannelsArgs {
    /// Checkpoint (file or folder).
    pub path: PathBuf,
    /// The tensor (exact name); higher ranks are seen as [dim0, rest].
    #[arg(long)]
    pub tensor: String,
    /// How many of the most outlying channels to list.
    #[arg(long, default_value_t = 16)]
    pub top: usize,
    /// Tiles per side of the abs-max map, at most.
    #[arg(long, default_value_t = 256)]
    pub grid: usize,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

pub(super) fn run(args: &ChannelsArgs, backend: &dyn Backend, out: &mut dyn Write) -> Result<()> {
    use crate::analysis::channels::channel_report;
    let ckpt = super::open_for_one_pass(&args.path)?;
    let t = ckpt.require(&args.tensor)?;
    let report = channel_report(backend, &ckpt, t, args.top, args.grid, &Default::default())?;
    if args.json {
        return super::write_json(out, &report);
    }
    writeln!(
        out,
        "{} {}: {} rows (output channels) x {} columns (input channels)",
        t.name,
        t.shape_string(),
        report.channels.rows,
        report.channels.cols
    )?;
    for (title, list, median) in [
        ("input channels (columns)", &report.top_input_channels, report.col_abs_max_median),
        ("output channels (rows)", &report.top_output_channels, report.row_abs_max_median),
    ] {
        writeln!(out, "\ntop {title} by abs-max / median ({median:.4e}):")?;
        writeln!(out, "{:>8} {:>12} {:>9} {:>12} {:>10}", "INDEX", "ABS_MAX", "RATIO", "L2", "KURTOSIS")?;
        for c in list {
            writeln!(
                out,
                "{:>8} {:>12.4e} {:>9.2} {:>12.4e} {:>10.2}",
                c.index, c.abs_max, c.ratio_to_median, c.l2, c.kurtosis
            )?;
        }
    }
    writeln!(
        out,
        "\nabs-max map: {} x {} tiles of {} x {} values (in --json)",
        report.channels.grid_rows, report.channels.grid_cols, report.channels.tile_rows, report.channels.tile_cols
    )?;
    writeln!(out, "{}", super::computed_on([&report.computed]))?;
    Ok(())
}
