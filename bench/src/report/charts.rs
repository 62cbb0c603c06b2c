//! The charts of a run, drawn with plotters as SVG and PNG: throughput per
//! profile and path, latency percentile spectra, CPU per request stacked by
//! process, and latency against offered rate.

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::analysis::Group;
use crate::matrix::{ClientPath, LoadPoint, Profile, Workload};
use crate::record::CellRecord;

/// A chart could not be drawn or saved.
#[derive(Debug, thiserror::Error)]
#[error("cannot draw chart {path}: {detail}")]
pub struct ChartError {
    path: PathBuf,
    detail: String,
}

/// One chart written as `<stem>.svg` and `<stem>.png`.
#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    /// File stem, e.g. `throughput`.
    pub stem: String,
    /// What it shows, for the page and the report.
    pub title: String,
}

const SIZE: (u32, u32) = (1100, 560);
const FONT: &str = "sans-serif";

fn profile_color(profile: Profile) -> RGBColor {
    match profile {
        Profile::Bare => RGBColor(90, 90, 90),
        Profile::Host => RGBColor(31, 119, 180),
        Profile::Bridge => RGBColor(214, 39, 40),
    }
}

type DrawResult<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// What one chart draws, with the data it needs.
enum Spec<'a> {
    Throughput(Vec<&'a Group>),
    Cpu(Vec<&'a Group>),
    Spectrum {
        cells: &'a [CellRecord],
        path: ClientPath,
        workload: Workload,
        load: LoadPoint,
    },
    Rate(Vec<&'a Group>),
}

impl Spec<'_> {
    fn render<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        title: &str,
    ) -> DrawResult<DB> {
        match self {
            Spec::Throughput(groups) => throughput_chart(root, groups, title),
            Spec::Cpu(groups) => cpu_chart(root, groups, title),
            Spec::Spectrum {
                cells,
                path,
                workload,
                load,
            } => spectrum_chart(root, cells, *path, *workload, *load, title),
            Spec::Rate(groups) => rate_chart(root, groups, title),
        }
    }
}

/// Draws every chart of `groups` / `cells` into `dir`; returns what it drew.
pub fn draw_all(
    dir: &Path,
    cells: &[CellRecord],
    groups: &[Group],
) -> Result<Vec<Chart>, ChartError> {
    let mut specs: Vec<(String, String, Spec)> = Vec::new();
    let max_groups: Vec<&Group> = groups.iter().filter(|g| g.load == LoadPoint::Max).collect();
    if max_groups.iter().any(|g| g.throughput.is_some()) {
        let title = "Maximum throughput per profile, path and workload \
                     (closed loop, requests/s, median of repeats, whiskers = min–max)";
        specs.push((
            "throughput".into(),
            title.into(),
            Spec::Throughput(max_groups.clone()),
        ));
    }
    for workload in workloads_of(groups) {
        let wg: Vec<&Group> = max_groups
            .iter()
            .copied()
            .filter(|g| g.workload == workload)
            .collect();
        if wg.iter().all(|g| g.server_side_us.is_none()) {
            continue;
        }
        let title = format!(
            "CPU per request by process, {} at maximum throughput \
             (µs, /proc and getrusage, median of repeats)",
            workload.name()
        );
        specs.push((format!("cpu-{}", workload.name()), title, Spec::Cpu(wg)));
    }
    for path in paths_of(groups) {
        let Some((workload, load)) = spectrum_choice(groups, path) else {
            continue;
        };
        let title = format!(
            "Latency percentile spectrum, {} {} at {} \
             (µs, corrected for coordinated omission, repeats merged)",
            path.name(),
            workload.name(),
            load.label()
        );
        specs.push((
            format!("latency-{}", path.name()),
            title,
            Spec::Spectrum {
                cells,
                path,
                workload,
                load,
            },
        ));
    }
    for path in paths_of(groups) {
        let open: Vec<&Group> = groups
            .iter()
            .filter(|g| g.path == path && g.offered_rate.is_some() && g.p99_us.is_some())
            .collect();
        if open.is_empty() {
            continue;
        }
        let title = format!(
            "Latency against offered rate, {} (open loop; p50 solid with dots, p99 dashed with rings; µs, median of repeats)",
            path.name()
        );
        specs.push((
            format!("latency-vs-rate-{}", path.name()),
            title,
            Spec::Rate(open),
        ));
    }

    let mut charts = Vec::new();
    for (stem, title, spec) in specs {
        save(dir, &stem, &title, &spec)?;
        charts.push(Chart { stem, title });
    }
    Ok(charts)
}

fn workloads_of(groups: &[Group]) -> Vec<Workload> {
    Workload::ALL
        .into_iter()
        .filter(|w| groups.iter().any(|g| g.workload == *w))
        .collect()
}

fn paths_of(groups: &[Group]) -> Vec<ClientPath> {
    ClientPath::ALL
        .into_iter()
        .filter(|p| groups.iter().any(|g| g.path == *p))
        .collect()
}

/// The workload and load whose spectrum a path shows: keep-alive HTTPS at
/// half of bare's maximum when measured, else the first measured at max.
fn spectrum_choice(groups: &[Group], path: ClientPath) -> Option<(Workload, LoadPoint)> {
    let has = |w: Workload, l: LoadPoint| {
        groups
            .iter()
            .any(|g| g.path == path && g.workload == w && g.load == l && g.ok > 0)
    };
    let half = LoadPoint::Fraction { fraction: 0.5 };
    if has(Workload::HttpsKeepalive, half) {
        return Some((Workload::HttpsKeepalive, half));
    }
    Workload::ALL
        .into_iter()
        .find(|w| has(*w, LoadPoint::Max))
        .map(|w| (w, LoadPoint::Max))
}

/// Draws one chart to `<stem>.svg` and `<stem>.png`.
fn save(dir: &Path, stem: &str, title: &str, spec: &Spec) -> Result<(), ChartError> {
    let svg = dir.join(format!("{stem}.svg"));
    let png = dir.join(format!("{stem}.png"));
    let err = |path: &Path, detail: String| ChartError {
        path: path.to_path_buf(),
        detail,
    };
    {
        let root = SVGBackend::new(&svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&svg, e.to_string()))?;
        spec.render(&root, title)
            .map_err(|e| err(&svg, e.to_string()))?;
        root.present().map_err(|e| err(&svg, e.to_string()))?;
    }
    let root = BitMapBackend::new(&png, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&png, e.to_string()))?;
    spec.render(&root, title)
        .map_err(|e| err(&png, e.to_string()))?;
    root.present().map_err(|e| err(&png, e.to_string()))?;
    Ok(())
}

/// Splits a long title over two lines at the opening parenthesis.
fn caption<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, title: &str) -> DrawResult<DB> {
    let (first, second) = match title.find(" (") {
        Some(i) => (&title[..i], title[i + 1..].to_string()),
        None => (title, String::new()),
    };
    root.draw(&Text::new(
        first.to_string(),
        (20, 8),
        (FONT, 20).into_font(),
    ))?;
    root.draw(&Text::new(
        second,
        (20, 32),
        (FONT, 14).into_font().color(&RGBColor(80, 80, 80)),
    ))?;
    Ok(())
}

/// Category labels under a bar chart, at pixel positions.
fn category_labels<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    labels: &[(i32, i32, String)],
) -> DrawResult<DB> {
    let style = TextStyle::from((FONT, 12).into_font()).pos(Pos::new(HPos::Center, VPos::Top));
    for (x, y, text) in labels {
        for (i, line) in text.split('\n').enumerate() {
            root.draw(&Text::new(
                line.to_string(),
                (*x, *y + 4 + 14 * i as i32),
                style.clone(),
            ))?;
        }
    }
    Ok(())
}

fn throughput_chart<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    groups: &[&Group],
    title: &str,
) -> DrawResult<DB> {
    caption(root, title)?;
    let mut cats: Vec<(ClientPath, Workload)> = Vec::new();
    for g in groups {
        if !cats.contains(&(g.path, g.workload)) {
            cats.push((g.path, g.workload));
        }
    }
    let top = groups
        .iter()
        .filter_map(|g| g.throughput.map(|t| t.max))
        .fold(1.0, f64::max)
        * 1.3;
    let area = root.margin(60, 64, 10, 10);
    let mut chart = ChartBuilder::on(&area)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..cats.len() as f64, 0f64..top)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_desc("requests/s")
        .y_label_formatter(&|y| format!("{y:.0}"))
        .label_style((FONT, 12))
        .draw()?;
    let width = 0.8 / Profile::ALL.len() as f64;
    for (pi, profile) in Profile::ALL.into_iter().enumerate() {
        let color = profile_color(profile);
        let bars: Vec<(f64, crate::stats::Spread)> = groups
            .iter()
            .filter(|g| g.profile == profile)
            .filter_map(|g| {
                let ci = cats.iter().position(|c| *c == (g.path, g.workload))?;
                Some((ci as f64 + 0.1 + width * pi as f64, g.throughput?))
            })
            .collect();
        chart
            .draw_series(bars.iter().map(|(x, s)| {
                Rectangle::new([(*x, 0.0), (*x + width * 0.9, s.median)], color.filled())
            }))?
            .label(profile.name())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
        chart.draw_series(bars.iter().map(|(x, s)| {
            let mid = *x + width * 0.45;
            PathElement::new(vec![(mid, s.min), (mid, s.max)], BLACK.stroke_width(1))
        }))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font((FONT, 13))
        .draw()?;
    let labels: Vec<(i32, i32, String)> = cats
        .iter()
        .enumerate()
        .map(|(i, (p, w))| {
            let (x, y) = chart.backend_coord(&(i as f64 + 0.5, 0.0));
            // A line a word, so neighbouring labels do not overlap.
            (
                x,
                y,
                format!("{}\n{}", p.name(), w.name().replace('-', "\n")),
            )
        })
        .collect();
    category_labels(root, &labels)
}

/// One stacked part of a CPU bar: its label, colour and value.
type CpuPart = (&'static str, RGBColor, fn(&Group) -> f64);

fn cpu_chart<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    groups: &[&Group],
    title: &str,
) -> DrawResult<DB> {
    caption(root, title)?;
    let parts: [CpuPart; 4] = [
        ("server", RGBColor(31, 119, 180), |g| {
            g.server_us.map_or(0.0, |s| s.median)
        }),
        ("docker-proxy", RGBColor(214, 39, 40), |g| {
            g.docker_proxy_us.map_or(0.0, |s| s.median)
        }),
        ("softirq (server core)", RGBColor(255, 160, 60), |g| {
            g.softirq_us.map_or(0.0, |s| s.median)
        }),
        ("loadgen (other core)", RGBColor(170, 170, 170), |g| {
            g.loadgen_us.map_or(0.0, |s| s.median)
        }),
    ];
    let total = |g: &Group| parts.iter().map(|(_, _, f)| f(g)).sum::<f64>();
    let top = groups.iter().map(|g| total(g)).fold(1.0, f64::max) * 1.35;
    let area = root.margin(60, 50, 10, 10);
    let mut chart = ChartBuilder::on(&area)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..groups.len() as f64, 0f64..top)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_desc("CPU µs per request")
        .draw()?;
    for (pi, (name, color, f)) in parts.iter().enumerate() {
        let color = *color;
        let rects: Vec<Rectangle<(f64, f64)>> = groups
            .iter()
            .enumerate()
            .map(|(i, g)| {
                let below: f64 = parts[..pi].iter().map(|(_, _, f)| f(g)).sum();
                let x = i as f64 + 0.15;
                Rectangle::new([(x, below), (x + 0.7, below + f(g))], color.filled())
            })
            .collect();
        chart
            .draw_series(rects)?
            .label(*name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font((FONT, 13))
        .draw()?;
    let labels: Vec<(i32, i32, String)> = groups
        .iter()
        .enumerate()
        .map(|(i, g)| {
            let (x, y) = chart.backend_coord(&(i as f64 + 0.5, 0.0));
            (x, y, format!("{}\n{}", g.path.name(), g.profile.name()))
        })
        .collect();
    category_labels(root, &labels)
}

/// The merged corrected histogram of the successful cells of one group.
fn merged_histogram(
    cells: &[CellRecord],
    profile: Profile,
    path: ClientPath,
    workload: Workload,
    load: LoadPoint,
) -> Option<hdrhistogram::Histogram<u64>> {
    let mut merged = loadgen::report::new_histogram();
    let mut any = false;
    for c in cells {
        let k = &c.key;
        if k.profile != profile || k.path != path || k.workload != workload || k.load != load {
            continue;
        }
        let Some(report) = c.ok_report() else {
            continue;
        };
        if let Ok(h) = loadgen::report::decode_histogram("corrected", &report.histograms.corrected)
        {
            any |= merged.add(&h).is_ok() && !h.is_empty();
        }
    }
    any.then_some(merged)
}

fn spectrum_chart<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    cells: &[CellRecord],
    path: ClientPath,
    workload: Workload,
    load: LoadPoint,
    title: &str,
) -> DrawResult<DB> {
    caption(root, title)?;
    // x is 1 / (1 - q): 10 = p90, 100 = p99, ... as HdrHistogram plots do.
    let quantiles: Vec<f64> = (0..=400)
        .map(|i| 1.0 - 10f64.powf(-(i as f64) / 100.0))
        .collect();
    let mut lines = Vec::new();
    let (mut lo, mut hi) = (f64::MAX, 1.0f64);
    for profile in Profile::ALL {
        let Some(h) = merged_histogram(cells, profile, path, workload, load) else {
            continue;
        };
        let points: Vec<(f64, f64)> = quantiles
            .iter()
            .filter(|q| **q <= 1.0 - 1.0 / h.len() as f64 || **q == 0.0)
            .map(|q| (1.0 / (1.0 - q), h.value_at_quantile(*q).max(1) as f64))
            .collect();
        for (_, y) in &points {
            lo = lo.min(*y);
            hi = hi.max(*y);
        }
        lines.push((profile, points));
    }
    let area = root.margin(60, 20, 10, 10);
    let mut chart = ChartBuilder::on(&area)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(
            (1f64..10_000f64).log_scale(),
            (lo.max(1.0) * 0.8..hi * 1.25).log_scale(),
        )?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency µs (log)")
        .x_label_formatter(&|x| {
            let digits = (x.log10().round() as usize).saturating_sub(2);
            format!("p{:.*}", digits, 100.0 * (1.0 - 1.0 / x))
        })
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()?;
    for (profile, points) in lines {
        let color = profile_color(profile);
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))?
            .label(profile.name())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font((FONT, 13))
        .draw()?;
    Ok(())
}

fn rate_chart<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    groups: &[&Group],
    title: &str,
) -> DrawResult<DB> {
    caption(root, title)?;
    let xmax = groups
        .iter()
        .filter_map(|g| g.offered_rate.map(|r| r.median))
        .fold(1.0, f64::max)
        * 1.1;
    let ymax = groups
        .iter()
        .filter_map(|g| g.p99_us.map(|r| r.median))
        .fold(1.0, f64::max)
        * 1.5;
    let ymin = groups
        .iter()
        .filter_map(|g| g.p50_us.map(|r| r.median))
        .fold(f64::MAX, f64::min);
    let area = root.margin(60, 20, 10, 10);
    let mut chart = ChartBuilder::on(&area)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..xmax, (ymin.clamp(1.0, ymax) * 0.7..ymax).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("offered rate, requests/s")
        .y_desc("latency µs (log)")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()?;
    let mut workloads: Vec<Workload> = groups.iter().map(|g| g.workload).collect();
    workloads.dedup();
    for profile in Profile::ALL {
        let color = profile_color(profile);
        for &workload in &workloads {
            let mut pts: Vec<(f64, f64, f64)> = groups
                .iter()
                .filter(|g| g.profile == profile && g.workload == workload)
                .filter_map(|g| Some((g.offered_rate?.median, g.p50_us?.median, g.p99_us?.median)))
                .collect();
            if pts.is_empty() {
                continue;
            }
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            let label = format!("{} {}", profile.name(), workload.name());
            chart
                .draw_series(LineSeries::new(
                    pts.iter().map(|p| (p.0, p.1)),
                    color.stroke_width(2),
                ))?
                .label(label)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
                });
            chart.draw_series(DashedLineSeries::new(
                pts.iter().map(|p| (p.0, p.2)),
                6,
                4,
                color.stroke_width(2),
            ))?;
            chart.draw_series(
                pts.iter()
                    .map(|p| Circle::new((p.0, p.1), 3, color.filled())),
            )?;
            // p99 as hollow rings, visible even with a single load point.
            chart.draw_series(
                pts.iter()
                    .map(|p| Circle::new((p.0, p.2), 4, color.stroke_width(2))),
            )?;
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font((FONT, 13))
        .draw()?;
    Ok(())
}
