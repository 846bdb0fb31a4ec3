//! The report's charts, drawn by plotters as SVG (text is left to the browser's fonts): monthly series with
//! forecast bands and target lines, and horizontal bars per category with a target mark.

use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;

use crate::ReportError;

/// Colours of the series, distinguishable in print and for the common colour-vision deficiencies
/// (Okabe and Ito's palette).
pub const PALETTE: [RGBColor; 6] = [
    RGBColor(0, 114, 178),
    RGBColor(230, 159, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(86, 180, 233),
    RGBColor(213, 94, 0),
];
/// Colour of actual figures.
pub const INK: RGBColor = RGBColor(40, 40, 40);
/// Colour of targets and reference lines.
pub const TARGET: RGBColor = RGBColor(200, 30, 30);

/// A monthly line; `None` leaves a gap.
#[derive(Debug, Clone)]
pub struct Line {
    /// Legend text.
    pub name: String,
    /// Stroke colour.
    pub color: RGBColor,
    /// One value per month of the chart.
    pub values: Vec<Option<f64>>,
    /// Dashed (forecasts, targets) or solid.
    pub dashed: bool,
}

/// A shaded interval between two monthly lines (drawn where both are known).
#[derive(Debug, Clone)]
pub struct Band {
    /// Legend text.
    pub name: String,
    /// Fill colour (drawn translucent).
    pub color: RGBColor,
    /// Opacity of the fill.
    pub opacity: f64,
    /// Lower bound per month.
    pub lower: Vec<Option<f64>>,
    /// Upper bound per month.
    pub upper: Vec<Option<f64>>,
}

/// A chart of monthly series.
#[derive(Debug, Clone)]
pub struct TimeChart {
    /// Caption.
    pub title: String,
    /// Unit of the y axis.
    pub y_label: String,
    /// The months on the x axis, `YYYY-MM`.
    pub months: Vec<String>,
    /// Shaded intervals, drawn first.
    pub bands: Vec<Band>,
    /// Lines, drawn over the bands.
    pub lines: Vec<Line>,
    /// Width and height in pixels (the SVG scales to its container).
    pub size: (u32, u32),
}

impl TimeChart {
    /// Number of data points drawn.
    pub fn points(&self) -> usize {
        self.lines.iter().map(|l| l.values.iter().flatten().count()).sum()
    }
}

/// One series of bars, a value per category.
#[derive(Debug, Clone)]
pub struct Bars {
    /// Legend text.
    pub name: String,
    /// Fill colour.
    pub color: RGBColor,
    /// One value per category.
    pub values: Vec<Option<f64>>,
}

/// Horizontal bars per category, with a target mark per category where there is one.
#[derive(Debug, Clone)]
pub struct BarChart {
    /// Caption.
    pub title: String,
    /// Unit of the x axis.
    pub x_label: String,
    /// Category names, top to bottom.
    pub categories: Vec<String>,
    /// Bar series, side by side within a category.
    pub bars: Vec<Bars>,
    /// Target per category (`None`: no target).
    pub targets: Vec<Option<f64>>,
    /// Legend text of the target marks.
    pub target_name: String,
    /// Width in pixels (the height follows from the categories).
    pub width: u32,
}

impl BarChart {
    /// Number of bars drawn.
    pub fn points(&self) -> usize {
        self.bars.iter().map(|b| b.values.iter().flatten().count()).sum()
    }
}

fn chart_error(title: &str) -> impl Fn(&dyn std::fmt::Display) -> ReportError + '_ {
    move |e| ReportError::Chart(format!("drawing \"{title}\": {e}"))
}

/// Runs of consecutive known values as (index, value) points.
fn runs(values: &[Option<f64>]) -> Vec<Vec<(f64, f64)>> {
    let mut out: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut current = Vec::new();
    for (i, value) in values.iter().enumerate() {
        match value {
            Some(v) if v.is_finite() => current.push((i as f64, *v)),
            _ if !current.is_empty() => out.push(std::mem::take(&mut current)),
            _ => {}
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// A y range that holds every value with some headroom, from 0 when all values are positive.
fn y_range<'a>(values: impl Iterator<Item = &'a Option<f64>>) -> (f64, f64) {
    let known: Vec<f64> = values.flatten().copied().filter(|v| v.is_finite()).collect();
    let max = known.iter().copied().fold(f64::MIN, f64::max);
    let min = known.iter().copied().fold(f64::MAX, f64::min);
    if known.is_empty() {
        return (0.0, 1.0);
    }
    let low = if min >= 0.0 { 0.0 } else { min * 1.1 };
    let high = if max > low { max + (max - low) * 0.08 } else { low + 1.0 };
    (low, high)
}

/// Draws a [`TimeChart`] as an SVG document.
pub fn time_chart(spec: &TimeChart) -> Result<String, ReportError> {
    let error = chart_error(&spec.title);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, spec.size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| error(&e))?;
        let values = spec
            .lines
            .iter()
            .flat_map(|l| l.values.iter())
            .chain(spec.bands.iter().flat_map(|b| b.lower.iter().chain(b.upper.iter())));
        let (low, high) = y_range(values);
        let last = spec.months.len().saturating_sub(1).max(1) as f64;
        let small = spec.size.0 < 600;
        let mut chart = ChartBuilder::on(&root)
            .caption(&spec.title, ("sans-serif", if small { 15 } else { 19 }))
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(if small { 48 } else { 64 })
            .build_cartesian_2d(0f64..last, low..high)
            .map_err(|e| error(&e))?;
        let months = &spec.months;
        let month_label = |x: &f64| {
            let i = x.round();
            if (x - i).abs() > 1e-6 || i < 0.0 {
                return String::new();
            }
            months.get(i as usize).cloned().unwrap_or_default()
        };
        chart
            .configure_mesh()
            .x_labels(if small { 4 } else { 12 })
            .x_label_formatter(&month_label)
            .y_labels(6)
            .y_label_formatter(&|y| format_number(*y))
            .y_desc(spec.y_label.as_str())
            .light_line_style(RGBColor(235, 235, 235))
            .bold_line_style(RGBColor(215, 215, 215))
            .label_style(("sans-serif", if small { 11 } else { 13 }))
            .draw()
            .map_err(|e| error(&e))?;
        for band in &spec.bands {
            let known: Vec<(f64, f64, f64)> = band
                .lower
                .iter()
                .zip(&band.upper)
                .enumerate()
                .filter_map(|(i, (l, u))| Some((i as f64, (*l)?, (*u)?)))
                .collect();
            if known.is_empty() {
                continue;
            }
            let outline: Vec<(f64, f64)> =
                known.iter().map(|(x, _, u)| (*x, *u)).chain(known.iter().rev().map(|(x, l, _)| (*x, *l))).collect();
            let fill = band.color.mix(band.opacity).filled();
            chart
                .draw_series(std::iter::once(Polygon::new(outline, fill)))
                .map_err(|e| error(&e))?
                .label(band.name.as_str())
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 16, y + 5)], fill));
        }
        for line in &spec.lines {
            let style = line.color.stroke_width(if small { 2 } else { 3 });
            let mut labelled = false;
            for run in runs(&line.values) {
                let series = if line.dashed {
                    chart.draw_series(DashedLineSeries::new(run, 7, 5, style)).map_err(|e| error(&e))?
                } else if run.len() == 1 {
                    chart
                        .draw_series(PointSeries::of_element(run, 3, style.filled(), &|c, s, st| {
                            EmptyElement::at(c) + Circle::new((0, 0), s, st)
                        }))
                        .map_err(|e| error(&e))?
                } else {
                    chart.draw_series(LineSeries::new(run, style)).map_err(|e| error(&e))?
                };
                if !labelled {
                    series
                        .label(line.name.as_str())
                        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], style));
                    labelled = true;
                }
            }
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperMiddle)
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(190, 190, 190))
            .label_font(("sans-serif", if small { 11 } else { 13 }))
            .draw()
            .map_err(|e| error(&e))?;
        root.present().map_err(|e| error(&e))?;
    }
    Ok(svg)
}

/// Draws a [`BarChart`] as an SVG document.
pub fn bar_chart(spec: &BarChart) -> Result<String, ReportError> {
    let error = chart_error(&spec.title);
    let n = spec.categories.len().max(1);
    let height = 90 + 30 * n as u32;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (spec.width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| error(&e))?;
        let values = spec.bars.iter().flat_map(|b| b.values.iter()).chain(spec.targets.iter());
        let (_, high) = y_range(values);
        let mut chart = ChartBuilder::on(&root)
            .caption(&spec.title, ("sans-serif", 19))
            .margin(8)
            .x_label_area_size(40)
            .y_label_area_size(170)
            .build_cartesian_2d(0f64..high, (0..n - 1).into_segmented())
            .map_err(|e| error(&e))?;
        let categories = &spec.categories;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(n)
            .y_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) => categories.get(*i).cloned().unwrap_or_default(),
                _ => String::new(),
            })
            .x_labels(8)
            .x_label_formatter(&|x| format_number(*x))
            .x_desc(spec.x_label.as_str())
            .light_line_style(RGBColor(235, 235, 235))
            .bold_line_style(RGBColor(215, 215, 215))
            .label_style(("sans-serif", 13))
            .draw()
            .map_err(|e| error(&e))?;
        let slots = spec.bars.len().max(1) as f64;
        for (slot, bars) in spec.bars.iter().enumerate() {
            let fill = bars.color.filled();
            let rects: Vec<Rectangle<(f64, SegmentValue<usize>)>> = bars
                .values
                .iter()
                .enumerate()
                .filter_map(|(i, v)| {
                    let v = (*v)?;
                    // Each category's band is split between the series; pixel margins keep bars apart.
                    let (top, bottom) = if slot == 0 {
                        (SegmentValue::Exact(i), SegmentValue::CenterOf(i))
                    } else {
                        (SegmentValue::CenterOf(i), SegmentValue::Exact(i + 1))
                    };
                    let mut rect = Rectangle::new([(0.0, top), (v, bottom)], fill);
                    rect.set_margin(if slot == 0 { 4 } else { 0 }, if slot == 0 { 0 } else { 4 }, 0, 0);
                    Some(rect)
                })
                .collect();
            debug_assert!(slots <= 2.0, "two series of bars at most");
            chart
                .draw_series(rects)
                .map_err(|e| error(&e))?
                .label(bars.name.as_str())
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 16, y + 5)], fill));
        }
        let marks: Vec<PathElement<(f64, SegmentValue<usize>)>> = spec
            .targets
            .iter()
            .enumerate()
            .filter_map(|(i, t)| {
                let t = (*t)?;
                Some(PathElement::new(
                    vec![(t, SegmentValue::Exact(i)), (t, SegmentValue::Exact(i + 1))],
                    TARGET.stroke_width(4),
                ))
            })
            .collect();
        if !marks.is_empty() {
            chart
                .draw_series(marks)
                .map_err(|e| error(&e))?
                .label(spec.target_name.as_str())
                .legend(|(x, y)| PathElement::new(vec![(x + 8, y - 6), (x + 8, y + 6)], TARGET.stroke_width(4)));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(190, 190, 190))
            .label_font(("sans-serif", 13))
            .draw()
            .map_err(|e| error(&e))?;
        root.present().map_err(|e| error(&e))?;
    }
    Ok(svg)
}

/// A number for an axis: thousands as `12k`, shares and small figures with decimals.
pub fn format_number(value: f64) -> String {
    let magnitude = value.abs();
    if magnitude >= 10_000.0 {
        format!("{:.0}k", value / 1000.0)
    } else if magnitude >= 100.0 || value == value.round() {
        format!("{value:.0}")
    } else if magnitude >= 1.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_split_a_line_into_runs() {
        let runs = runs(&[Some(1.0), Some(2.0), None, Some(4.0), Some(f64::NAN), Some(6.0)]);
        assert_eq!(runs, vec![vec![(0.0, 1.0), (1.0, 2.0)], vec![(3.0, 4.0)], vec![(5.0, 6.0)]]);
    }

    #[test]
    fn a_time_chart_draws_its_lines_bands_and_months() {
        let spec = TimeChart {
            title: "Applications".into(),
            y_label: "applications".into(),
            months: vec!["2024-01".into(), "2024-02".into(), "2024-03".into()],
            bands: vec![Band {
                name: "80 %".into(),
                color: PALETTE[0],
                opacity: 0.2,
                lower: vec![None, Some(90.0), Some(80.0)],
                upper: vec![None, Some(110.0), Some(120.0)],
            }],
            lines: vec![Line {
                name: "actual".into(),
                color: PALETTE[1],
                values: vec![Some(100.0), Some(105.0), None],
                dashed: false,
            }],
            size: (800, 300),
        };
        let svg = time_chart(&spec).expect("draws");
        assert!(svg.starts_with("<svg") && svg.contains("Applications") && svg.contains("2024-02"), "{svg}");
        assert!(svg.contains("<polygon") && svg.contains("#E69F00"), "{svg}");
        assert_eq!(spec.points(), 2);
    }

    #[test]
    fn a_bar_chart_marks_targets() {
        let spec = BarChart {
            title: "Processing time".into(),
            x_label: "days".into(),
            categories: vec!["family".into(), "study".into()],
            bars: vec![Bars { name: "median".into(), color: PALETTE[0], values: vec![Some(250.0), Some(20.0)] }],
            targets: vec![Some(270.0), None],
            target_name: "target".into(),
            width: 800,
        };
        let svg = bar_chart(&spec).expect("draws");
        assert!(svg.contains("family") && svg.contains("study") && svg.contains("#C81E1E"), "{svg}");
        assert!(svg.matches("<rect").count() >= 2, "{svg}");
    }

    #[test]
    fn axis_numbers_are_short() {
        assert_eq!(format_number(12_600.0), "13k");
        assert_eq!(format_number(250.0), "250");
        assert_eq!(format_number(3.25), "3.2");
        assert_eq!(format_number(0.456), "0.46");
    }
}
