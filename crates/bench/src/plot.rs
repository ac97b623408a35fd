//! The latency plot: one group of bars per scenario measured in nanoseconds, shmsem beside
//! POSIX and SysV, on a logarithmic axis (SysV is ten times slower than the others, and a
//! linear axis would hide everything else). Plain SVG, no dependency.

use std::fmt::Write as _;

use super::report::{Outcome, Unit};

const WIDTH: f64 = 760.0;
const LEFT: f64 = 120.0;
const RIGHT: f64 = 30.0;
const TOP: f64 = 56.0;
const BAR: f64 = 11.0;
const GROUP_GAP: f64 = 14.0;
const SERIES: [(&str, &str); 3] = [
    ("shmsem", "#2b7bba"),
    ("POSIX", "#f0a030"),
    ("SysV SEM_UNDO", "#999999"),
];

/// The plot of every nanosecond scenario in `outcomes`, titled with `machine`.
pub fn svg(machine: &str, outcomes: &[Outcome]) -> String {
    let rows: Vec<(&str, [Option<f64>; 3])> = outcomes
        .iter()
        .filter(|o| o.unit == Unit::Ns && o.error.is_none())
        .map(|o| {
            (
                o.id,
                [
                    o.median_of("shmsem"),
                    o.median_of("posix"),
                    o.median_of("sysv"),
                ],
            )
        })
        .collect();
    let values = rows.iter().flat_map(|(_, v)| v.iter().flatten().copied());
    let (lo, hi) = values.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    // Whole decades around the data.
    let lo = 10f64.powf(lo.max(1.0).log10().floor());
    let hi = 10f64.powf(hi.max(lo * 10.0).log10().ceil());
    let plot_w = WIDTH - LEFT - RIGHT;
    let x = |v: f64| LEFT + plot_w * (v.max(lo).log10() - lo.log10()) / (hi.log10() - lo.log10());
    let group_h = 3.0 * BAR + GROUP_GAP;
    let height = TOP + rows.len() as f64 * group_h + 44.0;

    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{LEFT}" y="20" font-size="14" font-weight="bold">Latency per operation, ns (log scale; lower is better)</text>"#
    );
    let _ = writeln!(
        s,
        r##"<text x="{LEFT}" y="38" fill="#555">{}</text>"##,
        escape(machine)
    );
    // Decade grid lines.
    let mut decade = lo;
    while decade <= hi * 1.0001 {
        let gx = x(decade);
        let _ = writeln!(
            s,
            r##"<line x1="{gx:.1}" y1="{TOP}" x2="{gx:.1}" y2="{:.1}" stroke="#ddd"/><text x="{gx:.1}" y="{:.1}" text-anchor="middle" fill="#555">{}</text>"##,
            height - 40.0,
            height - 26.0,
            decade
        );
        decade *= 10.0;
    }
    for (i, (id, vals)) in rows.iter().enumerate() {
        let y0 = TOP + i as f64 * group_h;
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{id}</text>"#,
            LEFT - 8.0,
            y0 + 1.5 * BAR + 4.0
        );
        for (j, (v, (_, color))) in vals.iter().zip(SERIES).enumerate() {
            let Some(v) = v else { continue };
            let y = y0 + j as f64 * BAR;
            let w = (x(*v) - LEFT).max(1.0);
            let _ = writeln!(
                s,
                r#"<rect class="bar" x="{LEFT}" y="{y:.1}" width="{w:.1}" height="{:.1}" fill="{color}"/><text x="{:.1}" y="{:.1}" font-size="10">{}</text>"#,
                BAR - 1.0,
                LEFT + w + 4.0,
                y + BAR - 2.0,
                if *v < 100.0 {
                    format!("{v:.1}")
                } else {
                    format!("{v:.0}")
                }
            );
        }
    }
    // Legend.
    let ly = height - 12.0;
    for (j, (name, color)) in SERIES.iter().enumerate() {
        let lx = LEFT + j as f64 * 150.0;
        let _ = writeln!(
            s,
            r#"<rect x="{lx}" y="{:.1}" width="12" height="10" fill="{color}"/><text x="{:.1}" y="{ly:.1}">{name}</text>"#,
            ly - 9.0,
            lx + 16.0
        );
    }
    s.push_str("</svg>\n");
    s
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plots_every_nanosecond_scenario_with_its_peers() {
        let outcome = |id, unit, figures: [f64; 3]| {
            let mut o = Outcome::new(id, unit);
            o.median = ["shmsem", "posix", "sysv"]
                .into_iter()
                .zip(figures)
                .filter(|(_, x)| x.is_finite())
                .collect();
            o
        };
        let outcomes = vec![
            outcome("uncontended", Unit::Ns, [30.0, 20.0, 500.0]),
            outcome("pingpong", Unit::Ns, [5000.0, 4000.0, 4500.0]),
            outcome("reclaim", Unit::Ms, [40.0, f64::NAN, 0.3]),
        ];
        let svg = svg("Linux <test>", &outcomes);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains(">uncontended<") && svg.contains(">pingpong<"));
        assert!(
            !svg.contains(">reclaim<"),
            "milliseconds are not on this plot"
        );
        assert_eq!(
            svg.matches("<rect class=\"bar\"").count(),
            6,
            "three bars per scenario"
        );
        assert!(svg.contains("Linux &lt;test&gt;"));
        // Longer latency, longer bar: uncontended's bars are 30, 20 and 500 ns.
        let widths: Vec<f64> = svg
            .split("<rect class=\"bar\"")
            .skip(1)
            .map(|r| {
                let w = r.split("width=\"").nth(1).unwrap();
                w[..w.find('"').unwrap()].parse().unwrap()
            })
            .collect();
        assert!(widths[2] > widths[0] && widths[0] > widths[1], "{widths:?}");
    }
}
