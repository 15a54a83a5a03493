//! Colours for maps, shared by the window and the pictures the command line writes: a scale
//! (linear or log, or symmetric around zero for signed values) fitted to the values, and the
//! colormap of each heatmap mode — viridis for magnitudes, magma for salience, a diverging
//! red–blue centred on zero for signed values.

use crate::analysis::heatmap::Mode;

/// How values map to 0..=1 along a colormap.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scale {
    /// The value at the bottom of the colormap.
    pub min: f32,
    /// The value at its top.
    pub max: f32,
    /// log10 between them (magnitudes only).
    pub log: bool,
    /// Symmetric around zero (signed modes).
    pub signed: bool,
}

impl Scale {
    /// The scale of `values` (NaN and ±Inf left out) for `mode`; `log` asked for magnitudes.
    pub fn fit(values: &[f32], mode: Mode, log: bool) -> Scale {
        let finite = values.iter().copied().filter(|v| v.is_finite());
        if mode.signed() {
            let m = finite.fold(0f32, |a, v| a.max(v.abs()));
            return Scale { min: -m, max: m, log: false, signed: true };
        }
        let positive: Vec<f32> = finite.filter(|v| *v > 0.0).collect();
        let max = positive.iter().copied().fold(0f32, f32::max);
        let min = positive.iter().copied().fold(f32::INFINITY, f32::min);
        let log = log && min.is_finite() && max > min;
        Scale { min: if log { min } else { 0.0 }, max, log, signed: false }
    }

    /// Where `v` falls, 0..=1 (NaN for a value with no colour).
    pub fn position(&self, v: f32) -> f32 {
        if !v.is_finite() {
            return f32::NAN;
        }
        let t = if self.log {
            if v <= 0.0 {
                return 0.0;
            }
            (v.log10() - self.min.log10()) / (self.max.log10() - self.min.log10())
        } else if self.max > self.min {
            (v - self.min) / (self.max - self.min)
        } else {
            0.5
        };
        t.clamp(0.0, 1.0)
    }

    /// The value at position `t` (0..=1): the inverse of [`Scale::position`], for legends.
    pub fn value_at(&self, t: f32) -> f32 {
        if self.log {
            10f32.powf(self.min.log10() + t * (self.max.log10() - self.min.log10()))
        } else {
            self.min + t * (self.max - self.min)
        }
    }
}

/// The colour of position `t` on `mode`'s colormap (grey for NaN: no finite value).
pub fn colour(mode: Mode, t: f32) -> [u8; 3] {
    if t.is_nan() {
        return [96, 96, 96];
    }
    let t = f64::from(t);
    let c = match mode {
        Mode::Salience => colorous::MAGMA.eval_continuous(t),
        // Red for negative, blue for positive, white at zero.
        Mode::Mean | Mode::Extreme => colorous::RED_BLUE.eval_continuous(t),
        Mode::Absmax | Mode::Rms => colorous::VIRIDIS.eval_continuous(t),
    };
    [c.r, c.g, c.b]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_fit_their_values_and_invert() {
        let s = Scale::fit(&[-3.0, 1.0, f32::NAN, 2.0], Mode::Mean, true);
        assert_eq!((s.min, s.max, s.log), (-3.0, 3.0, false), "signed: symmetric, never log");
        assert_eq!(s.position(0.0), 0.5);
        let s = Scale::fit(&[0.0, 0.01, 10.0], Mode::Absmax, true);
        assert!(s.log && s.min == 0.01 && s.max == 10.0);
        assert!((s.position(s.value_at(0.25)) - 0.25).abs() < 1e-5);
        assert_eq!(colour(Mode::Absmax, f32::NAN), [96, 96, 96]);
        let white = colour(Mode::Extreme, 0.5);
        assert!(white.iter().all(|&c| c > 200), "zero is pale on the diverging map: {white:?}");
    }
}
