//! The ratios as an SVG bar chart, each figure against its goal, for the
//! README: one glance says which goals are met.
//!
//! Figures have different units and directions (a ratio that should be
//! high, milliseconds that should be low), so each bar is the figure's
//! distance to its goal on one axis: `figure / goal` for a floor,
//! `goal / figure` for a ceiling, so 1 is the goal line for every bar and
//! longer is better. The axis is logarithmic (0.1 to 100), since a figure
//! can be a hundred times better than its goal. Each bar is labelled with
//! the figure and the goal as printed in the ratios line. Drawn with
//! `plotters`' SVG backend only (no fonts: the SVG names a font family and
//! the viewer renders the text).

use std::path::Path;

use plotters::prelude::*;

use super::table::Ratios;

/// Which side of the goal is good.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Goal {
    /// The figure must be at least this.
    AtLeast(f64),
    /// The figure must be at most this.
    AtMost(f64),
}

impl Goal {
    /// How many times better than the goal `x` is (1: exactly the goal).
    pub fn score(self, x: f64) -> f64 {
        match self {
            Goal::AtLeast(g) => x / g,
            Goal::AtMost(g) => g / x.max(1e-12),
        }
    }

    fn text(self) -> String {
        match self {
            Goal::AtLeast(g) => format!(">= {g}"),
            Goal::AtMost(g) => format!("<= {g}"),
        }
    }
}

/// Every judged figure: its key in the ratios line, its value, its goal.
pub fn judged(r: &Ratios) -> Vec<(&'static str, Option<f64>, Goal)> {
    vec![
        ("store_vs_ceiling", r.store_vs_ceiling, Goal::AtLeast(0.8)),
        (
            "store_vs_autocommit",
            r.store_vs_autocommit,
            Goal::AtLeast(50.0),
        ),
        ("e2e_vs_peer", r.e2e_vs_peer, Goal::AtLeast(1.0)),
        (
            "e2e_vs_peer_same_batch",
            r.e2e_vs_peer_same_batch,
            Goal::AtLeast(1.0),
        ),
        (
            "flash_overhead_vs_seqstorage",
            r.flash_overhead_vs_seqstorage,
            Goal::AtMost(0.5),
        ),
        (
            "flash_erases_vs_seqstorage",
            r.flash_erases_vs_seqstorage,
            Goal::AtMost(1.0),
        ),
        (
            "core_minputs_per_s",
            r.core_minputs_per_s,
            Goal::AtLeast(20.0),
        ),
        ("restart_10m_ms", r.restart_10m_ms, Goal::AtMost(200.0)),
        ("rss_10m_mb", r.rss_10m_mb, Goal::AtMost(64.0)),
        (
            "rss_tracking_100k_mb",
            r.rss_tracking_100k_mb,
            Goal::AtMost(16.0),
        ),
    ]
}

const LOW: f64 = 0.1;
const HIGH: f64 = 100.0;

/// Write the chart of `r` to `path` (figures not measured get no bar).
pub fn write_svg(r: &Ratios, path: &Path) -> Result<(), String> {
    let rows = judged(r);
    let height = 60 + 34 * rows.len() as u32;
    let root = SVGBackend::new(path, (900, height)).into_drawing_area();
    let err = |e: &dyn std::fmt::Display| format!("chart {}: {e}", path.display());
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "outbox bench: each figure against its goal (1 = goal, longer is better)",
            ("sans-serif", 16),
        )
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(0)
        .build_cartesian_2d((LOW..HIGH).log_scale(), 0f64..rows.len() as f64)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .disable_y_axis()
        .x_desc("times the goal (log scale)")
        .x_label_formatter(&|x| format!("{x}"))
        .draw()
        .map_err(|e| err(&e))?;
    let n = rows.len() as f64;
    for (i, (key, value, goal)) in rows.iter().enumerate() {
        let top = n - i as f64 - 0.15;
        let bottom = n - i as f64 - 0.85;
        let label = match value {
            Some(v) => format!("{key} = {} (goal {})", shown(*v), goal.text()),
            None => format!("{key}: not measured (goal {})", goal.text()),
        };
        if let Some(v) = value {
            let score = goal.score(*v).clamp(LOW, HIGH);
            let color = if score >= 1.0 {
                RGBColor(60, 160, 80)
            } else {
                RGBColor(210, 80, 60)
            };
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(LOW, bottom), (score, top)],
                    color.mix(0.8).filled(),
                )))
                .map_err(|e| err(&e))?;
        }
        chart
            .draw_series(std::iter::once(Text::new(
                label,
                (0.12, (top + bottom) / 2.0 + 0.2),
                ("sans-serif", 13).into_font(),
            )))
            .map_err(|e| err(&e))?;
    }
    chart
        .draw_series(std::iter::once(PathElement::new(
            vec![(1.0, 0.0), (1.0, n)],
            BLACK.stroke_width(2),
        )))
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

/// A figure as the ratios line prints it.
fn shown(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_put_the_goal_at_one_and_better_above() {
        assert_eq!(Goal::AtLeast(0.8).score(0.8), 1.0);
        assert!(Goal::AtLeast(0.8).score(0.4) < 1.0);
        assert_eq!(Goal::AtMost(200.0).score(2.0), 100.0);
        assert!(Goal::AtMost(16.0).score(32.0) < 1.0);
    }

    #[test]
    fn the_chart_names_every_judged_key_and_its_figure() {
        let r = Ratios {
            store_vs_ceiling: Some(0.58),
            restart_10m_ms: Some(2.0),
            ..Ratios::default()
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ratios.svg");
        write_svg(&r, &path).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(
            svg.contains("store_vs_ceiling = 0.58 (goal &gt;= 0.8)"),
            "{svg}"
        );
        assert!(svg.contains("restart_10m_ms = 2.00 (goal &lt;= 200)"));
        assert!(svg.contains("rss_tracking_100k_mb: not measured"));
        // Every judged key of the ratios line is on the chart.
        let line = r.to_string();
        for (key, _, _) in judged(&r) {
            assert!(line.contains(&format!("{key}=")), "{key} not in {line}");
            assert!(svg.contains(key), "{key} not on the chart");
        }
    }
}
