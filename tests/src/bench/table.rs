//! The printed table and the closing ratios line.

use std::fmt;

/// One printed line: a contender's median figure in a row.
#[derive(Clone, Debug)]
pub struct Line {
    /// The row (`store`, `e2e`, ...).
    pub row: &'static str,
    /// Who or what was measured.
    pub contender: String,
    /// The median figure with its unit, or `None` when not measured.
    pub figure: Option<String>,
    /// Context: spread, counts, why not measured.
    pub note: String,
}

impl Line {
    /// A measured line.
    pub fn measured(
        row: &'static str,
        contender: impl Into<String>,
        figure: String,
        note: impl Into<String>,
    ) -> Self {
        Line {
            row,
            contender: contender.into(),
            figure: Some(figure),
            note: note.into(),
        }
    }

    /// A line that cannot be measured yet, and why.
    pub fn not_measured(
        row: &'static str,
        contender: impl Into<String>,
        why: impl Into<String>,
    ) -> Self {
        Line {
            row,
            contender: contender.into(),
            figure: None,
            note: why.into(),
        }
    }
}

/// The judged figures, each `None` until measured in this run.
#[derive(Clone, Debug, Default)]
pub struct Ratios {
    /// A: outbox NORMAL / the rusqlite ceiling.
    pub store_vs_ceiling: Option<f64>,
    /// B: outbox FULL / one autocommit INSERT per event, FULL.
    pub store_vs_autocommit: Option<f64>,
    /// C: durable outbox end to end / the non-durable peer.
    pub e2e_vs_peer: Option<f64>,
    /// C2: the same, the peer cutting its batches at our batch limits.
    pub e2e_vs_peer_same_batch: Option<f64>,
    /// D: flash bytes written beyond the payload per event (headers, CRCs,
    /// padding, checkpoints, page markers), ours / sequential-storage.
    pub flash_overhead_vs_seqstorage: Option<f64>,
    /// E: erases per event, ours / sequential-storage.
    pub flash_erases_vs_seqstorage: Option<f64>,
    /// F: machine inputs per second, millions.
    pub core_minputs_per_s: Option<f64>,
    /// G: open on 10 million pending events until the first track, ms.
    pub restart_10m_ms: Option<f64>,
    /// H: peak RSS holding 10 million pending events, MB.
    pub rss_10m_mb: Option<f64>,
    /// I: peak RSS while 100 000 tracked events are held pending, MB.
    pub rss_tracking_100k_mb: Option<f64>,
    /// J: request body bytes per event on the wire, gzip (the default) /
    /// uncompressed.
    pub gzip_wire_bytes_ratio: Option<f64>,
}

fn show(v: Option<f64>) -> String {
    match v {
        None => "n/a".into(),
        Some(x) if x >= 100.0 => format!("{x:.0}"),
        Some(x) if x >= 10.0 => format!("{x:.1}"),
        Some(x) => format!("{x:.2}"),
    }
}

impl fmt::Display for Ratios {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ratios: store_vs_ceiling={}, store_vs_autocommit={}, e2e_vs_peer={}, \
             e2e_vs_peer_same_batch={}, flash_overhead_vs_seqstorage={}, \
             flash_erases_vs_seqstorage={}, core_minputs_per_s={}, restart_10m_ms={}, \
             rss_10m_mb={}, rss_tracking_100k_mb={}, gzip_wire_bytes_ratio={}",
            show(self.store_vs_ceiling),
            show(self.store_vs_autocommit),
            show(self.e2e_vs_peer),
            show(self.e2e_vs_peer_same_batch),
            show(self.flash_overhead_vs_seqstorage),
            show(self.flash_erases_vs_seqstorage),
            show(self.core_minputs_per_s),
            show(self.restart_10m_ms),
            show(self.rss_10m_mb),
            show(self.rss_tracking_100k_mb),
            show(self.gzip_wire_bytes_ratio),
        )
    }
}

/// A number with thin grouping: `1234567.8` → `1 234 568`.
pub fn grouped(x: f64) -> String {
    let n = x.round() as u64;
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

/// The column titles.
pub fn print_header() {
    println!("{:<8} {:<52} {:>18}  note", "row", "contender", "median");
    println!("{}", "-".repeat(110));
}

/// One line as it is measured.
pub fn print_line(l: &Line) {
    let figure = l.figure.as_deref().unwrap_or("not measured");
    println!(
        "{:<8} {:<52} {:>18}  {}",
        l.row, l.contender, figure, l.note
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_line_has_every_name_and_na_for_missing() {
        let r = Ratios {
            store_vs_ceiling: Some(0.8123),
            core_minputs_per_s: Some(25.4),
            ..Ratios::default()
        };
        assert_eq!(
            r.to_string(),
            "ratios: store_vs_ceiling=0.81, store_vs_autocommit=n/a, e2e_vs_peer=n/a, \
             e2e_vs_peer_same_batch=n/a, flash_overhead_vs_seqstorage=n/a, \
             flash_erases_vs_seqstorage=n/a, core_minputs_per_s=25.4, restart_10m_ms=n/a, \
             rss_10m_mb=n/a, rss_tracking_100k_mb=n/a, gzip_wire_bytes_ratio=n/a"
        );
    }

    #[test]
    fn grouping() {
        assert_eq!(grouped(1234567.8), "1 234 568");
        assert_eq!(grouped(12.0), "12");
        assert_eq!(grouped(999.0), "999");
    }
}
