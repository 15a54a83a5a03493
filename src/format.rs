//! Human-readable numbers, shared by the command line and the GUI.

/// Bytes as `512 B`, `1.5 KiB`, `45.4 MiB`, `1.21 GiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{n} B") } else { format!("{value:.1} {}", UNITS[unit]).replace(".0 ", " ") }
}

/// A count as `950`, `22.7K`, `135.5M`, `70.6B`.
pub fn count(n: u64) -> String {
    let v = n as f64;
    match n {
        0..1_000 => n.to_string(),
        1_000..1_000_000 => format!("{:.1}K", v / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1}M", v / 1e6),
        _ => format!("{:.2}B", v / 1e9),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn human_numbers() {
        assert_eq!(super::bytes(512), "512 B");
        assert_eq!(super::bytes(1536), "1.5 KiB");
        assert_eq!(super::bytes(45_450_496), "43.3 MiB");
        assert_eq!(super::bytes(1 << 20), "1 MiB");
        assert_eq!(super::count(999), "999");
        assert_eq!(super::count(22_713_216), "22.7M");
        assert_eq!(super::count(70_553_706_496), "70.55B");
    }
}
