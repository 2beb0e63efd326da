//! The planner's outputs: a table for people, JSON rows for tools, an SVG
//! picture of availability against spare count.

use crate::engine::{PlanResult, Row};
use crate::stats::Estimate;
use std::fmt::Write as _;

/// A fraction in scientific notation with its interval: `2.73e-3 ±8.1e-6`.
fn frac(e: &Estimate) -> String {
    if e.mean == 0.0 && e.ci95 == 0.0 {
        return "0 (none seen)".into();
    }
    format!("{:.2e} ±{:.1e}", e.mean, e.ci95)
}

/// Seconds with their interval; `-` where nothing failed over.
fn secs(v: Option<Estimate>) -> String {
    match v {
        Some(e) if e.mean.is_finite() && e.ci95.is_finite() => {
            format!("{:.0}s ±{:.0}", e.mean, e.ci95)
        }
        Some(e) if e.mean.is_finite() => format!("{:.0}s ±?", e.mean),
        Some(_) => "∞".into(),
        None => "-".into(),
    }
}

/// Availability as "nines": −log10(1 − A).
pub fn nines(a: f64) -> f64 {
    -(1.0 - a).max(1e-12).log10()
}

pub fn table(r: &PlanResult, target: Option<f64>) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} production hosts, {} VMs; {} trials × {} years (seed {}); failover time {:.0}s",
        r.production_hosts, r.vms, r.trials, r.years, r.seed, r.failover_s
    );
    let _ = writeln!(s, "figures are means ± 95% confidence half-widths");
    let analytic = r.rows.iter().any(|x| x.analytic.is_some());
    let _ = write!(
        s,
        "{:>6}  {:>24}  {:>24}  {:>20}  {:>13}  {:>13}  {:>20}",
        "spares",
        "uncovered_host_fraction",
        "failures_without_spare",
        "vm_hours_down/yr",
        "rto_p50",
        "rto_p99",
        "vm_availability"
    );
    if analytic {
        let _ = write!(s, "  {:>14}  {:>14}", "analytic_uncov", "analytic_fails");
    }
    s.push('\n');
    for row in &r.rows {
        let mark = if row.spares == r.step_table_spares {
            "*"
        } else {
            " "
        };
        let _ = write!(
            s,
            "{:>5}{mark}  {:>24}  {:>24}  {:>20}  {:>13}  {:>13}  {:>20}",
            row.spares,
            frac(&row.uncovered_host_fraction),
            frac(&row.failures_without_spare),
            format!(
                "{:.2} ±{:.2}",
                row.vm_hours_down_per_year.mean, row.vm_hours_down_per_year.ci95
            ),
            secs(row.rto_p50_s),
            secs(row.rto_p99_s),
            format!(
                "{:.7} ±{:.1e}",
                row.vm_availability.mean, row.vm_availability.ci95
            ),
        );
        if let Some(a) = row.analytic {
            let _ = write!(
                s,
                "  {:>14.2e}  {:>14.2e}",
                a.uncovered_host_fraction, a.failures_without_spare
            );
        }
        s.push('\n');
    }
    let _ = writeln!(
        s,
        "* the step table (≤10 → 1, 11–50 → 3, >50 → 5) gives {} spare(s) for {} hosts",
        r.step_table_spares, r.production_hosts
    );
    if let Some(t) = target {
        match r.spares_for(t) {
            Some(n) => {
                let _ = writeln!(
                    s,
                    "target availability {t}: met with {n} spare(s) (lower 95% bound); the step table gives {}",
                    r.step_table_spares
                );
            }
            None => {
                let _ = writeln!(
                    s,
                    "target availability {t}: not met with up to {} spares in these trials",
                    r.rows.len() - 1
                );
            }
        }
    }
    s
}

#[derive(serde::Serialize)]
struct Json<'a> {
    #[serde(flatten)]
    result: &'a PlanResult,
    target_availability: Option<f64>,
    spares_for_target: Option<usize>,
}

pub fn json(r: &PlanResult, target: Option<f64>) -> String {
    serde_json::to_string_pretty(&Json {
        result: r,
        target_availability: target,
        spares_for_target: target.and_then(|t| r.spares_for(t)),
    })
    .expect("plain data serialises")
}

/// Availability (in nines) against spare count, with 95 % bars, the target
/// and the step table's choice marked.
pub fn svg(r: &PlanResult, target: Option<f64>) -> String {
    let (w, h, left, right, top, bottom) = (740.0, 420.0, 100.0, 20.0, 40.0, 60.0);
    let rows: &[Row] = &r.rows;
    let ys: Vec<(f64, f64, f64)> = rows
        .iter()
        .map(|x| {
            let a = &x.vm_availability;
            (
                nines(a.mean),
                nines(a.low().max(0.0)),
                nines(a.high().min(1.0)),
            )
        })
        .collect();
    let mut ymax = ys.iter().map(|y| y.2).fold(1.0f64, f64::max);
    if let Some(t) = target {
        ymax = ymax.max(nines(t));
    }
    let ymax = ymax.min(12.0).ceil() + 0.5;
    let xs = rows.len().max(2) as f64 - 1.0;
    let px = |i: f64| left + i / xs * (w - left - right);
    let py = |v: f64| top + (1.0 - v.min(ymax) / ymax) * (h - top - bottom);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="14">VM availability against spare count — {} hosts, {} trials × {} years</text>"#,
        w / 2.0,
        r.production_hosts,
        r.trials,
        r.years
    );
    // Axes and grid.
    for k in 0..=(ymax.floor() as i32) {
        let y = py(f64::from(k));
        let _ = writeln!(
            s,
            r##"<line x1="{left}" y1="{y}" x2="{}" y2="{y}" stroke="#ddd"/>"##,
            w - right
        );
        let label = if k == 0 {
            "0".to_string()
        } else {
            format!(
                "{:.*}%",
                (k as usize).saturating_sub(2),
                100.0 * (1.0 - 10f64.powi(-k))
            )
        };
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="end">{label}</text>"#,
            left - 6.0,
            y + 4.0
        );
    }
    for (i, row) in rows.iter().enumerate() {
        let x = px(i as f64);
        let _ = writeln!(
            s,
            r#"<text x="{x}" y="{}" text-anchor="middle">{}</text>"#,
            h - bottom + 18.0,
            row.spares
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">spare hosts</text>"#,
        (left + w - right) / 2.0,
        h - 18.0
    );
    let _ = writeln!(
        s,
        r#"<text x="16" y="{}" transform="rotate(-90 16 {})" text-anchor="middle">VM availability (log scale of nines)</text>"#,
        h / 2.0,
        h / 2.0
    );
    let _ = writeln!(
        s,
        r##"<line x1="{left}" y1="{top}" x2="{left}" y2="{}" stroke="#333"/>"##,
        h - bottom
    );
    let _ = writeln!(
        s,
        r##"<line x1="{left}" y1="{}" x2="{}" y2="{}" stroke="#333"/>"##,
        h - bottom,
        w - right,
        h - bottom
    );
    if let Some(t) = target {
        let y = py(nines(t));
        let _ = writeln!(
            s,
            r##"<line x1="{left}" y1="{y}" x2="{}" y2="{y}" stroke="#c00" stroke-dasharray="6 4"/>"##,
            w - right
        );
        let _ = writeln!(
            s,
            r##"<text x="{}" y="{}" text-anchor="end" fill="#c00">target {t}</text>"##,
            w - right - 4.0,
            y - 6.0
        );
    }
    // Step-table choice.
    if let Some(i) = rows.iter().position(|x| x.spares == r.step_table_spares) {
        let x = px(i as f64);
        let _ = writeln!(
            s,
            r##"<line x1="{x}" y1="{top}" x2="{x}" y2="{}" stroke="#888" stroke-dasharray="2 3"/>"##,
            h - bottom
        );
        let _ = writeln!(
            s,
            r##"<text x="{}" y="{}" fill="#555">step table</text>"##,
            x + 4.0,
            top + 12.0
        );
    }
    // Bars and line.
    let mut path = String::new();
    for (i, (m, lo, hi)) in ys.iter().enumerate() {
        let x = px(i as f64);
        let _ = writeln!(
            s,
            r##"<line x1="{x}" y1="{}" x2="{x}" y2="{}" stroke="#36c" stroke-width="2"/>"##,
            py(*lo),
            py(*hi)
        );
        let _ = write!(
            path,
            "{}{x:.1},{:.1} ",
            if i == 0 { "M" } else { "L" },
            py(*m)
        );
        let _ = writeln!(
            s,
            r##"<circle cx="{x}" cy="{}" r="3.5" fill="#36c"/>"##,
            py(*m)
        );
    }
    let _ = writeln!(
        s,
        r##"<path d="{path}" fill="none" stroke="#36c" stroke-width="1.5"/>"##
    );
    s.push_str("</svg>\n");
    s
}
