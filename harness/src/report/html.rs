//! `report.html`: the run to look at, in one file that needs no network and no script.
//!
//! Charts first, on one shared time axis (seconds since the run start, the same width and
//! margins in every chart, so a moment lines up from top to bottom), with the steps drawn
//! as bands and the clients' epoch bumps as marks: records per second, latency per second,
//! then the unavailability windows per partition (produce, consume), per ZooKeeper server
//! and ensemble, and the reassigned partitions, as a Gantt chart. Then the tables: steps,
//! expectations, anomalies with their first examples, the longest windows, client renewals,
//! ZooKeeper, reassignments, and the scenario as run.
//!
//! Drawn with plotters' SVG backend, inlined: the file is self-contained. Everything comes
//! from the [`Report`] (which `report.json` also holds) and the scenario's text, so
//! `harness report RUN_DIR` can make it again from the logs at any time.

use std::fmt::Write as _;

use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;

use super::Report;
use crate::check::{Window, WindowKind};

/// Width of every chart, px.
const WIDTH: u32 = 1100;
/// Room for the y labels, the same in every chart: the time axes line up.
const Y_LABELS: u32 = 200;
/// Gantt rows drawn at most; the rest are counted under the chart.
const MAX_ROWS: usize = 48;
/// Table rows of windows.
const MAX_WINDOWS_LISTED: usize = 25;

/// Step bands: alternating light colours, so neighbouring steps stay apart.
const BANDS: [RGBColor; 2] = [RGBColor(222, 232, 250), RGBColor(236, 226, 248)];
const SENT: RGBColor = RGBColor(120, 120, 120);
const ACKED: RGBColor = RGBColor(31, 119, 180);
const CONSUMED: RGBColor = RGBColor(44, 160, 44);
const FAILED: RGBColor = RGBColor(214, 39, 40);
const REFUSED: RGBColor = RGBColor(255, 127, 14);
const E2E: RGBColor = RGBColor(148, 103, 189);
const BUMP: RGBColor = RGBColor(255, 127, 14);

/// The page.
pub fn render(report: &Report, scenario_toml: Option<&str>) -> String {
    let mut h = String::with_capacity(256 * 1024);
    let title = format!("{} — {}", report.scenario, report.verdict);
    let _ = write!(
        h,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>{}</title><style>{STYLE}</style></head><body>\n",
        esc(&title)
    );
    header(&mut h, report);
    let axis = TimeAxis::of(report);
    h.push_str("<h2>Over time</h2>\n<p class=\"note\">Seconds since the run start. Bands: the steps (numbered as in the steps table); orange marks: a producer client bumped its epoch or took a new producer id.</p>\n");
    figure(
        &mut h,
        "records per second",
        throughput_chart(report, &axis),
    );
    figure(
        &mut h,
        "latency per second (ms, log scale)",
        latency_chart(report, &axis),
    );
    let rows = gantt_rows(report);
    let hidden = rows.len().saturating_sub(MAX_ROWS);
    figure(
        &mut h,
        "unavailability and reassignments",
        gantt_chart(report, &axis, &rows),
    );
    if hidden > 0 {
        let _ = writeln!(
            h,
            "<p class=\"note\">{hidden} more rows are in report.json.</p>"
        );
    }
    steps(&mut h, report);
    latency_by_step(&mut h, report);
    expectations(&mut h, report);
    anomalies(&mut h, report);
    two_oracles(&mut h, report);
    transactions(&mut h, report);
    copy(&mut h, report);
    two_clusters(&mut h, report);
    windows(&mut h, report);
    renewals(&mut h, report);
    zookeeper(&mut h, report);
    reassignments(&mut h, report);
    if let Some(toml) = scenario_toml {
        let _ = writeln!(
            h,
            "<h2>Settings: the scenario as run</h2>\n<pre>{}</pre>",
            esc(toml)
        );
    }
    h.push_str("</body></html>\n");
    h
}

const STYLE: &str = "body{font-family:sans-serif;margin:24px;color:#222;max-width:1150px}\
table{border-collapse:collapse;margin:8px 0 16px}td,th{border:1px solid #ccc;padding:3px 8px;\
text-align:left;vertical-align:top;font-size:13px}th{background:#f3f3f3}.pass{color:#18794e;\
font-weight:bold}.fail{color:#c62828;font-weight:bold}.verdict{font-size:22px;padding:2px 10px;\
border-radius:4px;color:#fff}.verdict.pass{background:#18794e}.verdict.fail{background:#c62828}\
.note{color:#555;font-size:13px}pre{background:#f6f6f6;padding:8px;overflow-x:auto;font-size:12px}\
figure{margin:0 0 12px}figcaption{font-weight:bold;font-size:14px}";

/// HTML text: `&`, `<`, `>`, `"` and `'` escaped.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn seconds(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

fn header(h: &mut String, r: &Report) {
    let v = r.verdict.to_string();
    let _ = writeln!(
        h,
        "<h1>{} <span class=\"verdict {v}\">{}</span></h1>",
        esc(&r.scenario),
        v.to_uppercase()
    );
    let p = serde_json::to_value(&r.producers).unwrap_or_default();
    let c = serde_json::to_value(&r.consumers).unwrap_or_default();
    let failed: usize = r.expectations.iter().filter(|e| !e.ok).count();
    let _ = writeln!(
        h,
        "<table><tr><th>run</th><td>{}</td></tr><tr><th>started (unix ms)</th><td>{}</td></tr>\
         <tr><th>producers</th><td>{}</td></tr><tr><th>consumers</th><td>{}</td></tr>\
         <tr><th>longest partition window</th><td>{} ms</td></tr>\
         <tr><th>start-up (s since the run start)</th><td>{}</td></tr>\
         <tr><th>expectations</th><td>{} of {} held</td></tr></table>",
        esc(&r.run_id),
        r.run_start_unix_ms,
        esc(&flat(&p)),
        esc(&flat(&c)),
        r.max_unavailable_ms,
        startup(&r.startup_ms),
        r.expectations.len() - failed,
        r.expectations.len()
    );
}

/// The start-up's points, as far as the run reached them.
fn startup(t: &crate::check::StartupTimes) -> String {
    let at = |v: Option<u64>| {
        v.map_or("not reached".to_string(), |ms| {
            format!("{:.1}", seconds(ms))
        })
    };
    format!(
        "cluster up {}, topics ready {}, workers ready {}",
        at(t.cluster_up),
        at(t.topics_ready),
        at(t.workers_ready)
    )
}

/// `key value, key value` of a JSON object's plain fields.
fn flat(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Object(m) => m
            .iter()
            .filter(|(_, v)| !v.is_object() && !v.is_array())
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_string(),
    }
}

/// The x range every chart shares.
struct TimeAxis {
    end_s: f64,
}

impl TimeAxis {
    fn of(r: &Report) -> TimeAxis {
        let mut end = 1000u64;
        if let Some(p) = r.series.points.last() {
            end = end.max(p.start_ms + r.series.bucket_ms);
        }
        for s in &r.steps {
            end = end.max(s.end_ms.unwrap_or(s.start_ms));
        }
        for w in &r.unavailability {
            end = end.max(w.end_ms);
        }
        TimeAxis {
            end_s: seconds(end) * 1.02,
        }
    }
}

fn figure(h: &mut String, caption: &str, svg: Result<String, String>) {
    let _ = write!(h, "<figure><figcaption>{}</figcaption>", esc(caption));
    match svg {
        Ok(svg) => h.push_str(&svg),
        Err(e) => {
            let _ = write!(h, "<p class=\"fail\">chart not drawn: {}</p>", esc(&e));
        }
    }
    h.push_str("</figure>\n");
}

/// plotters' errors, as text for the page.
fn drawn<T, E: std::fmt::Debug>(r: Result<T, E>) -> Result<T, String> {
    r.map_err(|e| format!("{e:?}"))
}

/// Step bands (numbered at the top) and epoch-bump marks over `(0..end) × (y0..y1)`, in
/// any chart of the shared time axis, whatever its y coordinates (linear, log, rows).
fn bands<DB: DrawingBackend, Y: Ranged>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<plotters::coord::types::RangedCoordf64, Y>>,
    r: &Report,
    y0: Y::ValueType,
    y1: Y::ValueType,
) -> Result<(), String>
where
    Y::ValueType: Clone + 'static,
{
    drawn(chart.draw_series(r.steps.iter().map(|s| {
        let end = s.end_ms.unwrap_or(s.start_ms).max(s.start_ms + 200);
        Rectangle::new(
            [
                (seconds(s.start_ms), y0.clone()),
                (seconds(end), y1.clone()),
            ],
            BANDS[s.index % 2].filled(),
        )
    })))?;
    // numbers of steps that start close together (a config step and the restart it
    // prepares, at the same second) go one line lower instead of over each other
    let (width_px, _) = chart.plotting_area().dim_in_pixel();
    let x = chart.x_range();
    let px_per_s = f64::from(width_px) / (x.end - x.start).max(1e-9);
    let labels: Vec<(f64, String)> = r
        .steps
        .iter()
        .map(|s| {
            let at = seconds(s.start_ms);
            (at, format!("{}", s.index + 1))
        })
        .collect();
    let rows = label_rows(labels.iter().map(|(at, text)| {
        let left = (at - x.start) * px_per_s;
        (
            left,
            left + LABEL_CHAR_PX * text.len() as f64 + LABEL_GAP_PX,
        )
    }));
    drawn(
        chart.draw_series(labels.into_iter().zip(rows).map(|((at, text), row)| {
            EmptyElement::at((at, y1.clone()))
                + Text::new(
                    text,
                    (0, LABEL_LINE_PX * row as i32),
                    ("sans-serif", 11).into_font().color(&BLACK.mix(0.6)),
                )
        })),
    )?;
    drawn(chart.draw_series(r.client_renewals.iter().map(|c| {
        PathElement::new(
            vec![
                (seconds(c.at_ms), y0.clone()),
                (seconds(c.at_ms), y1.clone()),
            ],
            BUMP.stroke_width(1),
        )
    })))?;
    Ok(())
}

/// A step number's width per digit, the space kept after it, and a line's height, in
/// pixels (11-pixel sans-serif).
const LABEL_CHAR_PX: f64 = 7.0;
const LABEL_GAP_PX: f64 = 3.0;
const LABEL_LINE_PX: i32 = 12;

/// The line (0 = the top) of each label, given as its `(left, right)` pixels in drawing
/// order: the first line where it overlaps no label drawn before it.
fn label_rows(labels: impl Iterator<Item = (f64, f64)>) -> Vec<usize> {
    // per line, where its last label ends
    let mut ends: Vec<f64> = Vec::new();
    labels
        .map(|(left, right)| {
            let row = match ends.iter().position(|end| *end <= left) {
                Some(row) => row,
                None => {
                    ends.push(f64::NEG_INFINITY);
                    ends.len() - 1
                }
            };
            ends[row] = right;
            row
        })
        .collect()
}

/// The height of a chart with lines (axes included), and of the legend's row under it, in
/// pixels.
const LINE_CHART_PX: u32 = 260;
const LEGEND_ROW_PX: u32 = 22;

/// The series' legend as one row under the plotting area, from its left edge. Why not in
/// it: plotters' box sits over the plot (top right: the last steps' numbers and the
/// lines there were hidden under it, seen on every run's report).
fn legend_row<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    entries: &[(&str, ShapeStyle)],
) -> Result<(), String> {
    // the plotting area starts after the chart's margin and its y labels
    let mut x = (CHART_MARGIN + Y_LABELS) as i32;
    for (name, style) in entries {
        drawn(area.draw(&PathElement::new(vec![(x, 9), (x + 18, 9)], *style)))?;
        drawn(area.draw(&Text::new(
            name.to_string(),
            (x + 24, 3),
            ("sans-serif", 12).into_font().color(&BLACK.mix(0.8)),
        )))?;
        x += 24 + (LABEL_CHAR_PX * name.len() as f64) as i32 + 20;
    }
    Ok(())
}

/// Every chart's margin, in pixels.
const CHART_MARGIN: u32 = 10;

/// A chart builder with the margins every chart shares: the time axes line up.
fn on_the_time_axis<'a, 'b, DB: DrawingBackend>(
    root: &'a DrawingArea<DB, plotters::coord::Shift>,
) -> ChartBuilder<'a, 'b, DB> {
    let mut b = ChartBuilder::on(root);
    b.margin(CHART_MARGIN)
        .x_label_area_size(30)
        .y_label_area_size(Y_LABELS);
    b
}

fn throughput_chart(r: &Report, axis: &TimeAxis) -> Result<String, String> {
    let s = &r.series;
    let per_s = 1000.0 / s.bucket_ms.max(1) as f64;
    let top = s
        .points
        .iter()
        .map(|p| {
            p.sent
                .max(p.acked)
                .max(p.consumed)
                .max(p.failed + p.refused)
        })
        .max()
        .unwrap_or(0) as f64
        * per_s;
    let top = (top * 1.1).max(10.0);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, LINE_CHART_PX + LEGEND_ROW_PX))
            .into_drawing_area();
        drawn(root.fill(&WHITE))?;
        let (plot, key) = root.split_vertically(LINE_CHART_PX);
        let mut chart =
            drawn(on_the_time_axis(&plot).build_cartesian_2d(0f64..axis.end_s, 0f64..top))?;
        drawn(
            chart
                .configure_mesh()
                .disable_x_mesh()
                .x_desc("s since the run start")
                .label_style(("sans-serif", 12))
                .axis_desc_style(("sans-serif", 12))
                .y_desc("records/s")
                .draw(),
        )?;
        bands(&mut chart, r, 0.0, top)?;
        let mid = s.bucket_ms as f64 / 2000.0;
        let line = |f: fn(&crate::check::series::SeriesPoint) -> u64| {
            s.points
                .iter()
                .map(move |p| (seconds(p.start_ms) + mid, f(p) as f64 * per_s))
                .collect::<Vec<_>>()
        };
        type Line = (&'static str, RGBColor, Vec<(f64, f64)>);
        let series: [Line; 5] = [
            ("sent", SENT, line(|p| p.sent)),
            ("acked", ACKED, line(|p| p.acked)),
            ("consumed", CONSUMED, line(|p| p.consumed)),
            ("failed", FAILED, line(|p| p.failed)),
            ("refused", REFUSED, line(|p| p.refused)),
        ];
        let mut key_entries = Vec::new();
        for (name, colour, points) in series {
            drawn(chart.draw_series(LineSeries::new(points, colour.stroke_width(2))))?;
            key_entries.push((name, colour.stroke_width(2)));
        }
        legend_row(&key, &key_entries)?;
        drawn(root.present())?;
    }
    Ok(svg)
}

fn latency_chart(r: &Report, axis: &TimeAxis) -> Result<String, String> {
    let s = &r.series;
    let top = s
        .points
        .iter()
        .map(|p| p.ack.max.max(p.e2e.max))
        .fold(1.0f64, f64::max)
        * 1.5;
    let floor = 0.1;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, LINE_CHART_PX + LEGEND_ROW_PX))
            .into_drawing_area();
        drawn(root.fill(&WHITE))?;
        let (plot, key) = root.split_vertically(LINE_CHART_PX);
        let mut chart = drawn(
            on_the_time_axis(&plot).build_cartesian_2d(0f64..axis.end_s, (floor..top).log_scale()),
        )?;
        drawn(
            chart
                .configure_mesh()
                .disable_x_mesh()
                .x_desc("s since the run start")
                .label_style(("sans-serif", 12))
                .axis_desc_style(("sans-serif", 12))
                .y_desc("ms")
                .draw(),
        )?;
        bands(&mut chart, r, floor, top)?;
        let mid = s.bucket_ms as f64 / 2000.0;
        type Pick = fn(&crate::check::series::SeriesPoint) -> (u64, f64);
        let lines: [(&str, ShapeStyle, Pick); 5] = [
            ("ack p50", ACKED.stroke_width(2), |p| {
                (p.ack.count, p.ack.p50)
            }),
            ("ack p99", ACKED.mix(0.6).stroke_width(1), |p| {
                (p.ack.count, p.ack.p99)
            }),
            ("ack max", ACKED.mix(0.35).stroke_width(1), |p| {
                (p.ack.count, p.ack.max)
            }),
            ("end-to-end p50", E2E.stroke_width(2), |p| {
                (p.e2e.count, p.e2e.p50)
            }),
            ("end-to-end p99", E2E.mix(0.6).stroke_width(1), |p| {
                (p.e2e.count, p.e2e.p99)
            }),
        ];
        let key_entries: Vec<(&str, ShapeStyle)> = lines
            .iter()
            .map(|(name, style, _)| (*name, *style))
            .collect();
        for (_, style, pick) in lines {
            let points: Vec<(f64, f64)> = s
                .points
                .iter()
                .filter_map(|p| {
                    let (n, v) = pick(p);
                    (n > 0).then(|| (seconds(p.start_ms) + mid, v.max(floor)))
                })
                .collect();
            drawn(chart.draw_series(LineSeries::new(points, style)))?;
        }
        legend_row(&key, &key_entries)?;
        drawn(root.present())?;
    }
    Ok(svg)
}

/// One Gantt row: a label and its bars (start, end, colour).
struct Row {
    label: String,
    bars: Vec<(u64, u64, RGBColor)>,
}

fn window_colour(kind: &WindowKind) -> RGBColor {
    match kind {
        WindowKind::Produce => FAILED,
        WindowKind::Consume => ACKED,
        WindowKind::Rebalance => RGBColor(150, 150, 150),
        WindowKind::ZooKeeper => E2E,
        WindowKind::Ensemble => RGBColor(90, 40, 130),
        WindowKind::Split(..) => BLACK,
    }
}

/// The rows: every subject and kind with a window, then every reassigned partition.
fn gantt_rows(r: &Report) -> Vec<Row> {
    let mut rows: Vec<Row> = Vec::new();
    let mut by_label: std::collections::BTreeMap<String, Vec<&Window>> = Default::default();
    for w in &r.unavailability {
        by_label
            .entry(format!("{} {}", w.partition, w.kind))
            .or_default()
            .push(w);
    }
    for (label, ws) in by_label {
        rows.push(Row {
            label,
            bars: ws
                .iter()
                .map(|w| {
                    (
                        w.start_ms,
                        w.end_ms.max(w.start_ms + 50),
                        window_colour(&w.kind),
                    )
                })
                .collect(),
        });
    }
    for section in &r.reassignments {
        for p in &section.partitions {
            rows.push(Row {
                label: format!("{} moved", p.partition),
                bars: vec![(
                    section.start_ms,
                    section.start_ms + p.took_ms.max(50),
                    RGBColor(188, 189, 34),
                )],
            });
        }
    }
    rows
}

fn gantt_chart(r: &Report, axis: &TimeAxis, rows: &[Row]) -> Result<String, String> {
    let shown = &rows[..rows.len().min(MAX_ROWS)];
    let n = shown.len().max(1) as i32;
    let height = 90 + 20 * n as u32;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        drawn(root.fill(&WHITE))?;
        let mut chart = drawn(
            on_the_time_axis(&root).build_cartesian_2d(0f64..axis.end_s, (0..n).into_segmented()),
        )?;
        let label = |v: &SegmentValue<i32>| match v {
            SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => shown
                .get(*i as usize)
                .map(|row| row.label.clone())
                .unwrap_or_default(),
            SegmentValue::Last => String::new(),
        };
        drawn(
            chart
                .configure_mesh()
                .disable_x_mesh()
                .y_labels(n as usize)
                .y_label_formatter(&label)
                .x_desc("s since the run start")
                .label_style(("sans-serif", 12))
                .axis_desc_style(("sans-serif", 12))
                .draw(),
        )?;
        bands(
            &mut chart,
            r,
            SegmentValue::Exact(0),
            SegmentValue::Exact(n),
        )?;
        if rows.is_empty() {
            drawn(chart.draw_series(std::iter::once(Text::new(
                "no window and no reassignment in this run",
                (axis.end_s * 0.02, SegmentValue::CenterOf(0)),
                ("sans-serif", 13).into_font(),
            ))))?;
        }
        for (i, row) in shown.iter().enumerate() {
            let i = i as i32;
            drawn(chart.draw_series(row.bars.iter().map(|(a, b, colour)| {
                Rectangle::new(
                    [
                        (seconds(*a), SegmentValue::Exact(i)),
                        (seconds(*b), SegmentValue::Exact(i + 1)),
                    ],
                    colour.mix(0.85).filled(),
                )
            })))?;
        }
        drawn(root.present())?;
    }
    Ok(svg)
}

fn steps(h: &mut String, r: &Report) {
    h.push_str("<h2>Steps</h2>\n<table><tr><th>#</th><th>step</th><th>action</th><th>node</th><th>start s</th><th>took s</th><th>outcome</th></tr>\n");
    for s in &r.steps {
        let took = s
            .end_ms
            .map(|e| format!("{:.1}", seconds(e.saturating_sub(s.start_ms))))
            .unwrap_or_else(|| "unfinished".into());
        let outcome = match (s.ok, &s.error) {
            (Some(true), _) => "<span class=\"pass\">ok</span>".to_string(),
            (Some(false), e) => format!(
                "<span class=\"fail\">failed</span> {}",
                esc(e.as_deref().unwrap_or(""))
            ),
            (None, _) => "<span class=\"fail\">never ended</span>".to_string(),
        };
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.1}</td><td>{took}</td><td>{outcome}</td></tr>",
            s.index + 1,
            esc(&s.name),
            esc(&s.action),
            esc(s.node.as_deref().unwrap_or("")),
            seconds(s.start_ms)
        );
    }
    h.push_str("</table>\n");
}

fn latency_by_step(h: &mut String, r: &Report) {
    if r.latency_by_step.is_empty() {
        return;
    }
    h.push_str("<h2>Latency by step</h2>\n<p class=\"note\">Of the records sent during each step or phase, ms.</p>\n<table><tr><th>step or phase</th><th>acked</th><th>ack p50</th><th>ack p99</th><th>ack max</th><th>read</th><th>end-to-end p50</th><th>end-to-end p99</th><th>end-to-end max</th></tr>\n");
    let mut rows = vec![("(the whole run)".to_string(), &r.latency_ms)];
    rows.extend(r.latency_by_step.iter().map(|(k, v)| (k.clone(), v)));
    for (label, l) in rows {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&label),
            l.ack.count,
            l.ack.p50,
            l.ack.p99,
            l.ack.max,
            l.e2e.count,
            l.e2e.p50,
            l.e2e.p99,
            l.e2e.max
        );
    }
    h.push_str("</table>\n");
}

fn expectations(h: &mut String, r: &Report) {
    h.push_str("<h2>Expectations</h2>\n<table><tr><th>what</th><th>expected</th><th>actual</th><th></th></tr>\n");
    for e in &r.expectations {
        let (class, word) = if e.ok {
            ("pass", "held")
        } else {
            ("fail", "FAILED")
        };
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"{class}\">{word}</td></tr>",
            esc(&e.name),
            esc(&e.expected),
            esc(&e.actual)
        );
    }
    h.push_str("</table>\n");
}

fn anomalies(h: &mut String, r: &Report) {
    h.push_str("<h2>Anomalies</h2>\n");
    let counts = serde_json::to_value(&r.anomalies).unwrap_or_default();
    let mut found: Vec<(String, u64)> = counts
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_u64().filter(|n| *n > 0).map(|n| (k.clone(), n)))
                .collect()
        })
        .unwrap_or_default();
    found.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    if found.is_empty() {
        h.push_str("<p class=\"pass\">None.</p>\n");
    } else {
        h.push_str("<table><tr><th>kind</th><th>count</th></tr>\n");
        for (k, n) in &found {
            let _ = writeln!(h, "<tr><td>{}</td><td>{n}</td></tr>", esc(k));
        }
        h.push_str("</table>\n");
    }
    for (kind, examples) in &r.examples {
        if examples.is_empty() {
            continue;
        }
        let _ = writeln!(
            h,
            "<h3>First examples: {}</h3>\n<table><tr><th>partition</th><th>offset</th><th>producer</th><th>seq</th><th>step</th><th>what was seen</th></tr>",
            esc(kind)
        );
        for e in examples {
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&e.partition),
                e.offset.map(|o| o.to_string()).unwrap_or_default(),
                e.producer,
                e.seq,
                esc(&e.step),
                esc(&e.detail)
            );
        }
        h.push_str("</table>\n");
    }
}

/// The harness's counts beside the second oracle's (when it ran), row by row.
fn two_oracles(h: &mut String, r: &Report) {
    let Some(o) = &r.oracle else { return };
    let _ = writeln!(
        h,
        "<h2>Two oracles</h2>\n<p class=\"note\">The harness's workers and checker beside Kafka's own verifier ({}: VerifiableProducer and VerifiableConsumer on topic {}, placed and configured as {}), judged as kafkatest judges it: acked values missing from a final read of the topic are lost.</p>",
        esc(&o.kind),
        esc(&o.topic),
        esc(&o.mirrors)
    );
    h.push_str("<table><tr><th></th><th>harness</th><th>second oracle</th></tr>\n");
    let rows: [(&str, String, String); 5] = [
        ("acked", r.producers.acked.to_string(), o.acked.to_string()),
        (
            "send errors",
            r.producers.failed.to_string(),
            o.send_errors.to_string(),
        ),
        ("lost", r.anomalies.lost.to_string(), o.lost.to_string()),
        (
            "duplicates",
            r.anomalies.duplicate.to_string(),
            o.duplicates.to_string(),
        ),
        (
            "final read",
            format!("{} records", r.final_read.records),
            format!(
                "{} records{}",
                o.final_consumed,
                if o.final_read_complete {
                    String::new()
                } else {
                    format!(
                        " (did not reach the end: {})",
                        o.final_read_short.join(", ")
                    )
                }
            ),
        ),
    ];
    for (what, a, b) in &rows {
        let _ = writeln!(
            h,
            "<tr><td>{what}</td><td>{}</td><td>{}</td></tr>",
            esc(a),
            esc(b)
        );
    }
    h.push_str("</table>\n");
    let verdict = if o.kafkatest_ok { "pass" } else { "fail" };
    let _ = writeln!(
        h,
        "<p>kafkatest's verdict: <span class=\"{verdict}\">{verdict}</span> — {}. Its consumer beside the workers received {} records; acked values it never received: {}.</p>",
        esc(&o.kafkatest_message),
        o.live_consumed,
        o.live_missing
    );
    for e in &o.lost_examples {
        let _ = writeln!(h, "<p class=\"note\">lost: {}</p>", esc(e));
    }
    for n in &o.notes {
        let _ = writeln!(h, "<p class=\"note\">{}</p>", esc(n));
    }
}

fn windows(h: &mut String, r: &Report) {
    let mut ws: Vec<&Window> = r.unavailability.iter().collect();
    ws.sort_by_key(|w| std::cmp::Reverse(w.duration_ms));
    let _ = writeln!(
        h,
        "<h2>Unavailability windows</h2>\n<p class=\"note\">{} in all; the {} longest:</p>",
        ws.len(),
        ws.len().min(MAX_WINDOWS_LISTED)
    );
    h.push_str("<table><tr><th>what</th><th>kind</th><th>start s</th><th>ms</th><th>step</th><th>open</th></tr>\n");
    for w in ws.iter().take(MAX_WINDOWS_LISTED) {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{:.1}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&w.partition.to_string()),
            esc(&w.kind.to_string()),
            seconds(w.start_ms),
            w.duration_ms,
            esc(&w.step),
            if w.open { "yes" } else { "" }
        );
    }
    h.push_str("</table>\n");
}

/// Transactional workloads: how the transactions ended, and the two anomalies only they
/// have.
fn transactions(h: &mut String, r: &Report) {
    let Some(t) = &r.transactions else { return };
    let a = &r.anomalies;
    let _ = writeln!(
        h,
        "<h2>Transactions</h2>\n<table><tr><th>committed</th><th>aborted on purpose</th>\
         <th>aborted after an error</th><th>unknown outcome</th><th>records aborted</th>\
         <th>records without an end</th><th>aborted reads</th><th>non-atomic reads</th>\
         <th>longest (ms)</th><th>write cycles (G0, allowed)</th></tr>\n<tr><td>{}</td>\
         <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
         <td>{} in {}</td><td>{} {}</td></tr>\n</table>",
        t.committed,
        t.aborted,
        t.aborted_after_error,
        t.unknown,
        r.producers.aborted,
        t.records_without_end,
        a.aborted_read,
        a.non_atomic_read,
        t.longest_ms,
        esc(&t.longest_step),
        t.write_cycles,
        esc(&t.write_cycle_example)
    );
}

/// The exactly-once pipeline: its input copied once, never or more, and its transactions.
fn copy(h: &mut String, r: &Report) {
    let Some(c) = &r.copy else { return };
    let _ = writeln!(
        h,
        "<h2>Exactly-once pipeline: {} → {}</h2>\n<table><tr><th>input records</th>\
         <th>copied once</th><th>missing</th><th>duplicates</th><th>not in input</th>\
         <th>committed</th><th>aborted</th><th>unknown</th><th>caught up</th></tr>\n\
         <tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
         <td>{}</td><td>{}</td></tr>\n</table>",
        esc(&c.from),
        esc(&c.to),
        c.input_records,
        c.copied_once,
        c.missing,
        c.duplicates,
        c.not_in_input,
        c.transactions.committed,
        c.transactions.aborted,
        c.transactions.unknown,
        esc(&c.catch_up_note)
    );
    for (what, list) in [
        ("never copied", &c.missing_examples),
        ("copied again", &c.duplicate_examples),
        ("not in the input", &c.not_in_input_examples),
    ] {
        if !list.is_empty() {
            let _ = writeln!(
                h,
                "<p>First records {what}:</p><ul>{}</ul>",
                list.iter()
                    .map(|e| format!("<li>{}</li>", esc(e)))
                    .collect::<String>()
            );
        }
    }
}

/// MirrorMaker's two clusters side by side (when it ran): what each acked, what each one's
/// final read held, its metadata, and what the copy and a switch-over did between them.
fn two_clusters(h: &mut String, r: &Report) {
    let Some(m) = &r.mirror else { return };
    let sw = r.switch_over.clone().unwrap_or_default();
    let metadata = |c: Option<&crate::zk::metadata::MetadataCheck>| match c {
        None => "not checked".to_string(),
        Some(c) if c.intact() => format!("intact ({} topics)", c.topics),
        Some(c) => c
            .error
            .clone()
            .unwrap_or_else(|| format!("{} difference(s)", c.differences.len())),
    };
    let _ = writeln!(
        h,
        "<h2>Two clusters: MirrorMaker 2 ({})</h2>\n<table><tr><th></th><th>acked there</th>\
         <th>its final read</th><th>lost there</th><th>metadata</th></tr>\n\
         <tr><td>source</td><td>{}</td><td>{} records</td><td>{}</td><td>{}</td></tr>\n\
         <tr><td>target</td><td>{}</td><td>{} records of ours</td><td>{}</td><td>{}</td></tr>\n</table>",
        if m.exactly_once {
            "exactly-once"
        } else {
            "at-least-once"
        },
        r.producers.acked.saturating_sub(sw.acked_on_target),
        r.final_read.records,
        r.anomalies.lost.saturating_sub(sw.lost_on_target),
        esc(&metadata(r.kafka_metadata.as_ref())),
        sw.acked_on_target,
        m.target_records,
        sw.lost_on_target,
        esc(&metadata(m.target_metadata.as_ref())),
    );
    let _ = writeln!(
        h,
        "<p>The copy: {} acked on the source up to the cut, {} on the target, {} missing, {} extra copies; at most {} records behind, {} stall(s).</p>",
        m.expected,
        m.copied,
        m.missing,
        m.duplicates,
        m.lag.max_behind,
        m.lag.stalls.len()
    );
    if r.switch_over.is_some() {
        let _ = writeln!(
            h,
            "<p>The switch-over: {} consumer and {} producer client(s) moved to the target; the group read {} record(s) there again (the offsets MirrorMaker translated lag its last commit on the source).</p>",
            sw.consumers_moved, sw.producers_moved, sw.reread_on_target
        );
    }
}

fn renewals(h: &mut String, r: &Report) {
    if r.client_renewals.is_empty() {
        return;
    }
    h.push_str("<h2>Producer clients' epoch bumps and new ids</h2>\n<table><tr><th>producer</th><th>kind</th><th>at s</th><th>in flight</th><th>step</th><th>why</th></tr>\n");
    for c in &r.client_renewals {
        let kind = serde_json::to_value(c.kind).unwrap_or_default();
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{:.1}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            c.producer,
            esc(kind.as_str().unwrap_or("")),
            seconds(c.at_ms),
            c.in_flight,
            esc(&c.step),
            esc(&c.reason)
        );
    }
    h.push_str("</table>\n");
}

fn zookeeper(h: &mut String, r: &Report) {
    if r.zookeeper.is_empty() {
        return;
    }
    h.push_str("<h2>ZooKeeper smoke test</h2>\n<table><tr><th>server</th><th>operations</th><th>failures</th><th>p50 ms</th><th>p99 ms</th></tr>\n");
    for (node, s) in &r.zookeeper {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(node),
            s.operations,
            s.failures,
            s.p50_ms,
            s.p99_ms
        );
    }
    h.push_str("</table>\n");
}

fn reassignments(h: &mut String, r: &Report) {
    if r.reassignments.is_empty() {
        return;
    }
    h.push_str("<h2>Reassignments</h2>\n<table><tr><th>step</th><th>topic</th><th>start s</th><th>took s</th><th>bytes moved</th><th>partitions</th><th>longest window ms</th></tr>\n");
    for s in &r.reassignments {
        let longest = s
            .partitions
            .iter()
            .map(|p| p.max_window_ms)
            .max()
            .unwrap_or(0);
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{:.1}</td><td>{:.1}</td><td>{}</td><td>{}</td><td>{longest}</td></tr>",
            esc(&s.step),
            esc(s.topic.as_deref().unwrap_or("")),
            seconds(s.start_ms),
            seconds(s.end_ms.saturating_sub(s.start_ms)),
            s.bytes,
            s.partitions.len()
        );
    }
    h.push_str("</table>\n");
}

#[cfg(test)]
mod tests {
    use super::{esc, label_rows};

    #[test]
    fn step_numbers_that_would_overlap_go_a_line_lower() {
        // (left, right) in pixels: 1 and 2 start together, 3 overlaps 2's end, 4 is clear
        // of all, 5 fits on the top line again after 4, 6 at 5's very end (touching is fine)
        let rows = label_rows(
            [
                (0.0, 10.0),
                (0.0, 10.0),
                (5.0, 15.0),
                (40.0, 50.0),
                (50.0, 60.0),
                (60.0, 70.0),
            ]
            .into_iter(),
        );
        assert_eq!(rows, [0, 1, 2, 0, 0, 0]);
        // a line freed by the time the next label starts is used again, the top one first
        assert_eq!(
            label_rows([(0.0, 10.0), (2.0, 30.0), (12.0, 20.0)].into_iter()),
            [0, 1, 0]
        );
        assert!(label_rows(std::iter::empty()).is_empty());
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            esc("<a href=\"x\">&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;"
        );
    }
}
