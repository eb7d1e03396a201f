//! Hand-written SVG line charts: canary against stable over time, one per measurement.
//! No script, no external resource: the report opens anywhere, offline.

use k8s_openapi::jiff::Timestamp;

use super::escape;

/// The canary's colour (the report's legend uses the same).
pub const CANARY_COLOUR: &str = "#d62728";
/// The stable side's colour.
pub const STABLE_COLOUR: &str = "#1f77b4";

const WIDTH: f64 = 560.0;
const HEIGHT: f64 = 220.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 40.0;

pub use canary_core::history::Point;

/// An SVG chart of `points`, titled `title`: seconds since the first point across, the
/// value up; a missing value leaves a gap in its line.
pub fn line_chart(title: &str, points: &[Point]) -> String {
    let times: Vec<f64> = seconds_since_first(points);
    let values: Vec<f64> = points
        .iter()
        .flat_map(|(_, c, s)| [*c, *s])
        .flatten()
        .filter(|v| v.is_finite())
        .collect();
    let (low, high) = value_range(&values);
    // A single point (or rounds in the same instant) sits at the left edge.
    let span_t = Some(times.last().copied().unwrap_or(0.0))
        .filter(|span| *span > 0.0)
        .unwrap_or(1.0);
    let x = |t: f64| LEFT + (t / span_t) * (WIDTH - LEFT - RIGHT);
    let y = |v: f64| TOP + (1.0 - (v - low) / (high - low)) * (HEIGHT - TOP - BOTTOM);
    let mut svg = format!(
        r#"<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{}">"#,
        escape(title)
    );
    svg.push_str(&format!("<title>{}</title>", escape(title)));
    // Frame, grid and axis labels.
    let (x0, x1, y0, y1) = (LEFT, WIDTH - RIGHT, TOP, HEIGHT - BOTTOM);
    svg.push_str(&format!(
        r##"<rect x="{x0}" y="{y0}" width="{}" height="{}" fill="#fafafa" stroke="#999"/>"##,
        x1 - x0,
        y1 - y0
    ));
    for fraction in [0.25, 0.5, 0.75] {
        let gy = y0 + fraction * (y1 - y0);
        svg.push_str(&format!(
            r##"<line x1="{x0}" y1="{gy:.1}" x2="{x1}" y2="{gy:.1}" stroke="#e0e0e0"/>"##
        ));
    }
    svg.push_str(&format!(
        r#"<text x="{}" y="{:.1}" text-anchor="end" class="axis">{}</text>"#,
        x0 - 6.0,
        y0 + 4.0,
        escape(&number(high))
    ));
    svg.push_str(&format!(
        r#"<text x="{}" y="{:.1}" text-anchor="end" class="axis">{}</text>"#,
        x0 - 6.0,
        y1,
        escape(&number(low))
    ));
    let first = points.first().map(|p| clock(&p.0)).unwrap_or_default();
    let last = points.last().map(|p| clock(&p.0)).unwrap_or_default();
    svg.push_str(&format!(
        r#"<text x="{x0}" y="{}" class="axis">{}</text><text x="{x1}" y="{}" text-anchor="end" class="axis">{}</text>"#,
        y1 + 16.0,
        escape(&first),
        y1 + 16.0,
        escape(&format!("{last} (+{})", duration_text(span_t)))
    ));
    for (colour, pick) in [
        (STABLE_COLOUR, 2usize), // stable under canary, so the canary shows where both agree
        (CANARY_COLOUR, 1usize),
    ] {
        let series: Vec<(f64, Option<f64>)> = points
            .iter()
            .zip(&times)
            .map(|(p, t)| (*t, if pick == 1 { p.1 } else { p.2 }))
            .collect();
        for run in runs(&series) {
            let path: Vec<String> = run
                .iter()
                .map(|(t, v)| format!("{:.1},{:.1}", x(*t), y(*v)))
                .collect();
            if path.len() > 1 {
                svg.push_str(&format!(
                    r#"<polyline fill="none" stroke="{colour}" stroke-width="3" points="{}"/>"#,
                    path.join(" ")
                ));
            }
            for (t, v) in run {
                svg.push_str(&format!(
                    r#"<circle cx="{:.1}" cy="{:.1}" r="4" fill="{colour}"><title>{}</title></circle>"#,
                    x(t),
                    y(v),
                    escape(&number(v))
                ));
            }
        }
    }
    svg.push_str(&format!(
        r#"<text x="{}" y="{}" class="legend" fill="{CANARY_COLOUR}">■ canary</text><text x="{}" y="{}" class="legend" fill="{STABLE_COLOUR}">■ stable</text>"#,
        x0 + 150.0,
        HEIGHT - 6.0,
        x0 + 240.0,
        HEIGHT - 6.0
    ));
    svg.push_str("</svg>");
    svg
}

/// Consecutive points with a finite value: the pieces of a line with gaps.
fn runs(series: &[(f64, Option<f64>)]) -> Vec<Vec<(f64, f64)>> {
    let mut runs = vec![];
    let mut current = vec![];
    for (t, value) in series {
        match value.filter(|v| v.is_finite()) {
            Some(v) => current.push((*t, v)),
            None if !current.is_empty() => runs.push(std::mem::take(&mut current)),
            None => {}
        }
    }
    if !current.is_empty() {
        runs.push(current);
    }
    runs
}

fn seconds_since_first(points: &[Point]) -> Vec<f64> {
    let parsed: Vec<Option<Timestamp>> = points.iter().map(|p| p.0.parse().ok()).collect();
    match parsed.first().copied().flatten() {
        Some(start) if parsed.iter().all(Option::is_some) => parsed
            .iter()
            .map(|t| {
                t.map_or(0.0, |t| {
                    (t.as_millisecond() - start.as_millisecond()) as f64 / 1000.0
                })
            })
            .collect(),
        // Times that do not parse (an edited history): evenly spaced, in order.
        _ => (0..points.len()).map(|i| i as f64).collect(),
    }
}

fn value_range(values: &[f64]) -> (f64, f64) {
    let low = values
        .iter()
        .copied()
        .fold(f64::INFINITY, f64::min)
        .min(0.0);
    let high = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let low = if low.is_finite() { low } else { 0.0 };
    let high = if high.is_finite() && high > low {
        high + (high - low) * 0.1
    } else {
        low + 1.0
    };
    (low, high)
}

fn number(value: f64) -> String {
    canary_core::verdict::format_number(value)
}

fn clock(at: &str) -> String {
    at.get(11..19).unwrap_or(at).to_string()
}

fn duration_text(seconds: f64) -> String {
    canary_core::duration::format_duration(std::time::Duration::from_secs_f64(seconds.max(0.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_sides_are_drawn_with_gaps_where_a_value_is_missing() {
        let points = vec![
            ("2026-11-30T10:00:00Z".to_string(), Some(1.0), Some(0.0)),
            ("2026-11-30T10:00:30Z".to_string(), None, Some(0.0)),
            ("2026-11-30T10:01:00Z".to_string(), Some(3.0), Some(0.5)),
        ];
        let svg = line_chart("errors <per> minute", &points);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        // The stable line is one piece, the canary's two single points (no polyline).
        assert_eq!(
            svg.matches(&format!("stroke=\"{STABLE_COLOUR}\"")).count(),
            1
        );
        assert_eq!(
            svg.matches(&format!("stroke=\"{CANARY_COLOUR}\"")).count(),
            0
        );
        assert_eq!(svg.matches("<circle").count(), 5);
        assert!(svg.contains("errors &lt;per&gt; minute"), "{svg}");
        assert!(svg.contains("10:01:00 (+1m)"), "{svg}");
    }
}
