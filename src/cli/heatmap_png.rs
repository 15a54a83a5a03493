//! A heatmap as a PNG with its colour legend: the tiles scaled to whole pixels, a bar of the
//! colormap beside them and its numbers (drawn with a 3 × 5 pixel digit font, so the picture
//! needs no font files).

use std::path::Path;

use anyhow::{Context, Result};

use crate::analysis::heatmap::HeatmapTiles;
use crate::colormap::{Scale, colour};

/// 3 × 5 glyphs, one row of 3 bits per line, for the characters numbers need.
fn glyph(c: char) -> Option<[u8; 5]> {
    Some(match c {
        '0' => [0b111, 0b101, 0b101, 0b101, 0b111],
        '1' => [0b010, 0b110, 0b010, 0b010, 0b111],
        '2' => [0b111, 0b001, 0b111, 0b100, 0b111],
        '3' => [0b111, 0b001, 0b111, 0b001, 0b111],
        '4' => [0b101, 0b101, 0b111, 0b001, 0b001],
        '5' => [0b111, 0b100, 0b111, 0b001, 0b111],
        '6' => [0b111, 0b100, 0b111, 0b101, 0b111],
        '7' => [0b111, 0b001, 0b010, 0b010, 0b010],
        '8' => [0b111, 0b101, 0b111, 0b101, 0b111],
        '9' => [0b111, 0b101, 0b111, 0b001, 0b111],
        '.' => [0b000, 0b000, 0b000, 0b000, 0b010],
        '-' => [0b000, 0b000, 0b111, 0b000, 0b000],
        '+' => [0b000, 0b010, 0b111, 0b010, 0b000],
        'e' => [0b111, 0b101, 0b111, 0b100, 0b111],
        ' ' => [0; 5],
        _ => return None,
    })
}

/// Draws `text` at (x, y) with pixels `scale` wide.
fn text(img: &mut image::RgbImage, x: u32, y: u32, s: &str, scale: u32, ink: [u8; 3]) {
    for (k, c) in s.chars().enumerate() {
        let Some(g) = glyph(c) else { continue };
        for (row, bits) in g.iter().enumerate() {
            for col in 0..3u32 {
                if bits & (0b100 >> col) == 0 {
                    continue;
                }
                for dy in 0..scale {
                    for dx in 0..scale {
                        let (px, py) = (x + (k as u32 * 4 + col) * scale + dx, y + row as u32 * scale + dy);
                        if px < img.width() && py < img.height() {
                            img.put_pixel(px, py, image::Rgb(ink));
                        }
                    }
                }
            }
        }
    }
}

/// Writes `tiles` as a PNG at `path` (whole or not at all; never over one of `inputs`): each
/// tile `cell` pixels (so the map is at least ~512 wide), a legend bar and five numbers beside it.
pub fn write(tiles: &HeatmapTiles, log: bool, path: &Path, inputs: &[&Path]) -> Result<()> {
    let scale = Scale::fit(&tiles.values, tiles.mode, log);
    let cell = (512 / tiles.grid_cols.max(tiles.grid_rows).max(1)).clamp(1, 32) as u32;
    let (map_w, map_h) = (tiles.grid_cols as u32 * cell, tiles.grid_rows as u32 * cell);
    let (bar_w, label_w, pad) = (24u32, 80u32, 12u32);
    let height = map_h.max(160) + 2 * pad;
    let width = pad + map_w + pad + bar_w + 8 + label_w;
    let mut img = image::RgbImage::from_pixel(width, height, image::Rgb([255, 255, 255]));
    for (k, &v) in tiles.values.iter().enumerate() {
        let (ti, tj) = ((k / tiles.grid_cols) as u32, (k % tiles.grid_cols) as u32);
        let rgb = colour(tiles.mode, scale.position(v));
        for dy in 0..cell {
            for dx in 0..cell {
                img.put_pixel(pad + tj * cell + dx, pad + ti * cell + dy, image::Rgb(rgb));
            }
        }
    }
    let (bar_x, bar_h) = (pad + map_w + pad, height - 2 * pad);
    for y in 0..bar_h {
        let t = 1.0 - y as f32 / (bar_h - 1).max(1) as f32;
        let rgb = colour(tiles.mode, t);
        for x in 0..bar_w {
            img.put_pixel(bar_x + x, pad + y, image::Rgb(rgb));
        }
    }
    for k in 0..5u32 {
        let t = 1.0 - k as f32 / 4.0;
        let y = pad + ((bar_h - 1) as f32 * (1.0 - t)) as u32;
        for x in 0..4 {
            img.put_pixel(bar_x + bar_w + x, y, image::Rgb([0, 0, 0]));
        }
        let label = format!("{:.2e}", scale.value_at(t));
        text(&mut img, bar_x + bar_w + 6, y.saturating_sub(5).max(pad), &label, 2, [0, 0, 0]);
    }
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).context("cannot encode the PNG")?;
    let mut tx = crate::export::atomic::Transaction::new(inputs, true);
    tx.write_bytes(path, &png)?;
    tx.commit().with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::glyph;

    #[test]
    fn every_character_of_a_number_has_a_glyph() {
        for v in [1.5e-3f32, -2.25e4, 0.0, 7.0] {
            let s = format!("{v:.2e}");
            assert!(s.chars().all(|c| glyph(c).is_some()), "{s}");
        }
    }
}
