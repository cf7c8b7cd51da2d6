//! Geometry for the dashboard's small SVG charts: bars, line paths, axis ticks, labels and the
//! burndown projection. Pure arithmetic; the views turn the numbers into `<svg>` elements.
//!
//! Every output is finite whatever comes in (NaN, infinities, negative sizes, huge counts), so
//! no `NaN` or `inf` can ever reach an SVG attribute.

/// Coordinates further than this from the origin are clamped: far outside any chart, yet small
/// enough to print briefly in a path.
const COORDINATE_LIMIT: f64 = 1e6;

/// Share of each bar's slot left empty between neighbours.
const BAR_GAP: f64 = 0.2;

/// Share of each health cell's slot left empty between neighbours.
const CELL_GAP: f64 = 0.1;

/// Chart size and padding in SVG user units. The plot area is what the padding leaves.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Frame {
    pub width: f64,
    pub height: f64,
    pub pad_left: f64,
    pub pad_right: f64,
    pub pad_top: f64,
    pub pad_bottom: f64,
}

/// The plot area of a [`Frame`]: always finite with `left <= right` and `top <= bottom`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Plot {
    pub left: f64,
    pub top: f64,
    pub right: f64,
    pub bottom: f64,
}

impl Plot {
    pub fn width(&self) -> f64 {
        self.right - self.left
    }

    pub fn height(&self) -> f64 {
        self.bottom - self.top
    }
}

impl Frame {
    /// The plot area. Negative or non-finite sizes count as 0, and padding wider than the frame
    /// leaves an empty plot at its edge rather than an inverted one.
    pub fn plot(&self) -> Plot {
        let width = size(self.width);
        let height = size(self.height);
        let left = size(self.pad_left).min(width);
        let right = (width - size(self.pad_right)).max(left);
        let top = size(self.pad_top).min(height);
        let bottom = (height - size(self.pad_bottom)).max(top);
        Plot {
            left,
            top,
            right,
            bottom,
        }
    }

    /// The SVG x of `x` when `range` spans the plot's width (`range.0` at the left edge). A
    /// non-finite `x` or an empty/non-finite range gives the left edge.
    pub fn x_at(&self, x: f64, range: (f64, f64)) -> f64 {
        let plot = self.plot();
        clamp(plot.left + fraction(x, range) * plot.width())
    }

    /// The SVG y of `y` when `range` spans the plot's height (`range.0` at the bottom edge). A
    /// non-finite `y` or an empty/non-finite range gives the bottom edge.
    pub fn y_at(&self, y: f64, range: (f64, f64)) -> f64 {
        let plot = self.plot();
        clamp(plot.bottom - fraction(y, range) * plot.height())
    }
}

/// One bar, in SVG user units (y grows downwards, so `y` is the top of the bar).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bar {
    pub x: f64,
    pub y: f64,
    pub width: f64,
    pub height: f64,
    /// The value drawn (after negative and non-finite values became 0).
    pub value: f64,
    /// Position of the value in the input slice.
    pub index: usize,
}

/// One health-timeline cell, the full plot height.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cell {
    pub x: f64,
    pub y: f64,
    pub width: f64,
    pub height: f64,
    /// Position of the cell among the `count` passed in.
    pub index: usize,
}

/// Evenly spaced bars for `values` (negative/NaN/inf count as 0), scaled so the largest fills
/// the plot height. At most `max_bars` are returned: the LAST ones, the newest iterations.
pub fn bars(values: &[f64], frame: &Frame, max_bars: usize) -> Vec<Bar> {
    bars_to(values, frame, max_bars, f64::NAN)
}

/// Like [`bars`], but `top` is the value at the top of the plot (say the last of [`ticks`], so
/// bars line up with grid lines); larger values are cut at the top. A `top` that is not finite
/// and positive means the largest value shown.
pub fn bars_to(values: &[f64], frame: &Frame, max_bars: usize, top: f64) -> Vec<Bar> {
    let plot = frame.plot();
    let shown = newest(values, max_bars);
    let first_index = values.len().saturating_sub(shown.len());
    let top = scale_top(top, shown);
    slots(shown.len(), &plot, BAR_GAP)
        .zip(shown)
        .enumerate()
        .map(|(position, ((x, width), &raw))| {
            bar(
                &plot,
                x,
                width,
                raw,
                top,
                first_index.saturating_add(position),
            )
        })
        .collect()
}

/// One full-height cell per iteration for the health timeline; at most `max_cells`, the last.
pub fn cells(count: usize, frame: &Frame, max_cells: usize) -> Vec<Cell> {
    let plot = frame.plot();
    let shown = count.min(max_cells);
    let first_index = count.saturating_sub(shown);
    slots(shown, &plot, CELL_GAP)
        .enumerate()
        .map(|(position, (x, width))| Cell {
            x,
            y: plot.top,
            width,
            height: plot.height(),
            index: first_index.saturating_add(position),
        })
        .collect()
}

/// An SVG path `d` (`M x y L x y ...`) through `points`, scaled into the plot by the ranges
/// (`x_range.0` at the left, `y_range.0` at the bottom). Points with a NaN/inf coordinate are
/// skipped (the line joins their neighbours); "" when nothing is left. Numbers have at most
/// two decimals; points far outside the frame are clamped to ±1e6.
pub fn line_path(
    points: &[(f64, f64)],
    x_range: (f64, f64),
    y_range: (f64, f64),
    frame: &Frame,
) -> String {
    let mut path = String::new();
    for &(x, y) in points {
        if !(x.is_finite() && y.is_finite()) {
            continue;
        }
        path.push_str(if path.is_empty() { "M" } else { " L" });
        path.push(' ');
        path.push_str(&number(frame.x_at(x, x_range)));
        path.push(' ');
        path.push_str(&number(frame.y_at(y, y_range)));
    }
    path
}

/// "Nice" axis ticks for `0..=max`: 2 to 6 evenly spaced round values (steps of 1, 2, 2.5 or
/// 5 × 10^k), starting at 0, ascending, the last one >= `max`. The finest such step is chosen.
/// `max` <= 0 or not finite gives `[0, 1]`; a `max` so large the ticks would overflow gives
/// `[0, max]`.
pub fn ticks(max: f64) -> Vec<f64> {
    if !(max.is_finite() && max > 0.0) {
        return vec![0.0, 1.0];
    }
    // `as` saturates; log10 of a positive finite number is finite anyway.
    let magnitude = max.log10().floor() as i32;
    for exponent in magnitude.saturating_sub(1)..=magnitude.saturating_add(1) {
        for multiple in [1.0, 2.0, 2.5, 5.0] {
            // Dividing by 10^k (not multiplying by 10^-k) keeps 0.1, 0.2, 0.3 exact-looking.
            let scaled = |factor: f64| {
                if exponent < 0 {
                    factor / 10f64.powi(exponent.saturating_neg())
                } else {
                    factor * 10f64.powi(exponent)
                }
            };
            let step = scaled(multiple);
            if !(step.is_finite() && step > 0.0) {
                continue;
            }
            let intervals = (max / step).ceil();
            if !(1.0..=5.0).contains(&intervals) {
                continue;
            }
            // intervals is 1..=5 here, so the cast is exact.
            let values: Vec<f64> = (0..=intervals as u32)
                .map(|i| scaled(f64::from(i) * multiple))
                .collect();
            let valid = values.iter().all(|value| value.is_finite())
                && values.windows(2).all(|pair| match pair {
                    [low, high] => low < high,
                    _ => false,
                })
                && values.last().is_some_and(|&last| last >= max);
            if valid {
                return values;
            }
        }
    }
    vec![0.0, max]
}

/// Compact labels: `950`, `12.5`, `1.2k`, `12.3k`, `123k`, `3.4M`, `1B`, `2T`, at most three
/// significant digits (one decimal from `k` up). Beyond 999T, scientific (`1.2e15`); `—` for
/// NaN and infinities, so a label never reads `NaN`.
pub fn compact(value: f64) -> String {
    if !value.is_finite() {
        return "—".to_owned();
    }
    let magnitude = value.abs();
    let units = [(1.0, ""), (1e3, "k"), (1e6, "M"), (1e9, "B"), (1e12, "T")];
    for (unit, suffix) in units {
        let scaled = magnitude / unit;
        let decimals = if scaled >= 100.0 {
            0
        } else if scaled >= 10.0 || !suffix.is_empty() {
            1
        } else {
            2
        };
        let text = trim_zeros(format!("{scaled:.decimals$}"));
        // Rounding can reach 1000 (999.96 -> "1000"): then the next unit says it better.
        if text.parse::<f64>().is_ok_and(|rounded| rounded < 1000.0) {
            return signed(value, text + suffix);
        }
    }
    let text = format!("{magnitude:.1e}").replace(".0e", "e");
    signed(value, text)
}

/// A number for an SVG attribute: at most two decimals, no trailing zeros, never `-0`.
pub fn number(value: f64) -> String {
    let text = trim_zeros(format!("{:.2}", clamp(value)));
    if text == "-0" {
        "0".to_owned()
    } else {
        text
    }
}

/// A usable size: finite and non-negative, else 0.
fn size(value: f64) -> f64 {
    if value.is_finite() && value > 0.0 {
        value
    } else {
        0.0
    }
}

/// Finite and within ±`COORDINATE_LIMIT`; NaN becomes 0.
fn clamp(value: f64) -> f64 {
    if value.is_nan() {
        0.0
    } else {
        value.clamp(-COORDINATE_LIMIT, COORDINATE_LIMIT)
    }
}

/// Where `value` lies in `range` (0 at `range.0`, 1 at `range.1`); 0 when that is undefined.
fn fraction(value: f64, (start, end): (f64, f64)) -> f64 {
    let span = end - start;
    let fraction = (value - start) / span;
    if span != 0.0 && fraction.is_finite() {
        fraction
    } else {
        0.0
    }
}

/// The last `max` values (all of them when there are fewer).
fn newest(values: &[f64], max: usize) -> &[f64] {
    values
        .get(values.len().saturating_sub(max)..)
        .unwrap_or(&[])
}

/// A drawable value: negative and non-finite values count as 0.
fn drawable(value: f64) -> f64 {
    size(value)
}

/// The value at the top of the plot: `top` when usable, else the largest drawable value
/// (0 when all are 0, and then every bar is flat).
fn scale_top(top: f64, values: &[f64]) -> f64 {
    if top.is_finite() && top > 0.0 {
        top
    } else {
        values.iter().copied().map(drawable).fold(0.0, f64::max)
    }
}

/// `count` equal slots across the plot: the x and width of what is drawn in each, with `gap`
/// (a share of the slot) split evenly on both sides.
fn slots(count: usize, plot: &Plot, gap: f64) -> impl Iterator<Item = (f64, f64)> {
    let slot = if count == 0 {
        0.0
    } else {
        plot.width() / count as f64
    };
    let left = plot.left;
    let margin = slot * gap / 2.0;
    (0..count).map(move |position| {
        let x = left + position as f64 * slot + margin;
        (x, slot - 2.0 * margin)
    })
}

fn bar(plot: &Plot, x: f64, width: f64, raw: f64, top: f64, index: usize) -> Bar {
    let value = drawable(raw);
    let share = if top > 0.0 {
        (value / top).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let height = share * plot.height();
    Bar {
        x,
        y: plot.bottom - height,
        width,
        height,
        value,
        index,
    }
}

/// `12.50` -> `12.5`, `3.00` -> `3`; integers are left alone.
fn trim_zeros(text: String) -> String {
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

/// Puts the minus sign back, unless rounding made the number zero.
fn signed(value: f64, text: String) -> String {
    let is_zero = text
        .bytes()
        .take_while(|byte| byte.is_ascii_digit() || *byte == b'.')
        .all(|byte| byte == b'0' || byte == b'.');
    if value < 0.0 && !is_zero {
        format!("-{text}")
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame() -> Frame {
        Frame {
            width: 300.0,
            height: 120.0,
            pad_left: 30.0,
            pad_right: 10.0,
            pad_top: 10.0,
            pad_bottom: 20.0,
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
    }

    #[test]
    fn plot_area_is_what_the_padding_leaves() {
        assert_eq!(
            frame().plot(),
            Plot {
                left: 30.0,
                top: 10.0,
                right: 290.0,
                bottom: 100.0
            }
        );
        let squeezed = Frame {
            width: 20.0,
            height: f64::NAN,
            pad_left: 15.0,
            pad_right: 15.0,
            pad_top: -5.0,
            pad_bottom: f64::INFINITY,
        };
        let plot = squeezed.plot();
        assert_eq!(
            plot,
            Plot {
                left: 15.0,
                top: 0.0,
                right: 15.0,
                bottom: 0.0
            }
        );
    }

    #[test]
    fn bars_fill_the_plot() {
        let out = bars(&[1.0, 2.0, 4.0, 0.0], &frame(), 10);
        assert_eq!(out.len(), 4);
        // Slots of 65 with a 20% gap: 6.5 on each side.
        let first = out[0];
        assert!(close(first.x, 36.5) && close(first.width, 52.0));
        assert!(close(out[1].x, 101.5));
        // The largest fills the 90-unit height; the others are proportional.
        assert!(close(out[2].height, 90.0) && close(out[2].y, 10.0));
        assert!(close(out[1].height, 45.0) && close(out[1].y, 55.0));
        assert!(close(out[0].height, 22.5));
        assert_eq!(out[3].height, 0.0);
        assert_eq!(out[3].y, 100.0);
        assert_eq!(
            out.iter().map(|b| b.index).collect::<Vec<_>>(),
            vec![0, 1, 2, 3]
        );
    }

    #[test]
    fn bars_keep_the_newest() {
        let values: Vec<f64> = (0..10).map(f64::from).collect();
        let out = bars(&values, &frame(), 3);
        assert_eq!(
            out.iter().map(|b| (b.index, b.value)).collect::<Vec<_>>(),
            vec![(7, 7.0), (8, 8.0), (9, 9.0)]
        );
        // Scaled to the largest SHOWN value.
        assert!(close(out[2].height, 90.0));
        assert!(bars(&values, &frame(), 0).is_empty());
        assert!(bars(&[], &frame(), 5).is_empty());
    }

    #[test]
    fn bad_values_draw_as_zero() {
        let out = bars(&[f64::NAN, -3.0, f64::INFINITY, 2.0], &frame(), 10);
        let values: Vec<f64> = out.iter().map(|b| b.value).collect();
        assert_eq!(values, vec![0.0, 0.0, 0.0, 2.0]);
        assert!(close(out[3].height, 90.0));
        let zeros = bars(&[0.0, 0.0], &frame(), 10);
        assert!(zeros.iter().all(|b| b.height == 0.0 && b.y == 100.0));
    }

    #[test]
    fn bars_to_a_fixed_top_cut_larger_values() {
        let out = bars_to(&[5.0, 20.0, 40.0], &frame(), 10, 20.0);
        assert!(close(out[0].height, 22.5));
        assert!(close(out[1].height, 90.0));
        assert!(close(out[2].height, 90.0) && close(out[2].y, 10.0));
        let auto = bars_to(&[5.0, 10.0], &frame(), 10, -1.0);
        assert!(close(auto[1].height, 90.0));
    }

    #[test]
    fn cells_span_the_plot_height() {
        let out = cells(5, &frame(), 4);
        assert_eq!(out.len(), 4);
        assert_eq!(out[0].index, 1);
        assert_eq!(out[3].index, 4);
        assert!(out.iter().all(|c| c.y == 10.0 && c.height == 90.0));
        assert!(close(out[0].x, 30.0 + 65.0 * 0.05));
        assert!(close(out[0].width, 65.0 * 0.9));
        assert!(cells(0, &frame(), 4).is_empty());
    }

    #[test]
    fn line_path_scales_and_formats() {
        let path = line_path(
            &[(0.0, 0.0), (5.0, 5.0), (10.0, 10.0)],
            (0.0, 10.0),
            (0.0, 10.0),
            &frame(),
        );
        assert_eq!(path, "M 30 100 L 160 55 L 290 10");
        let thirds = line_path(&[(1.0, 1.0)], (0.0, 3.0), (0.0, 3.0), &frame());
        assert_eq!(thirds, "M 116.67 70");
        assert_eq!(line_path(&[], (0.0, 1.0), (0.0, 1.0), &frame()), "");
        let skipped = line_path(
            &[(f64::NAN, 1.0), (1.0, f64::INFINITY), (1.0, 1.0)],
            (0.0, 1.0),
            (0.0, 1.0),
            &frame(),
        );
        assert_eq!(skipped, "M 290 10");
        assert_eq!(
            line_path(&[(f64::NAN, 0.0)], (0.0, 1.0), (0.0, 1.0), &frame()),
            ""
        );
        // Equal ranges put everything at the origin instead of dividing by zero.
        let flat = line_path(&[(3.0, 3.0), (3.0, 3.0)], (3.0, 3.0), (3.0, 3.0), &frame());
        assert_eq!(flat, "M 30 100 L 30 100");
        // Far-away points are clamped, not printed with hundreds of digits.
        let far = line_path(&[(1e300, -1e300)], (0.0, 1.0), (0.0, 1.0), &frame());
        assert_eq!(far, "M 1000000 1000000");
    }

    #[test]
    fn numbers_have_two_decimals_at_most() {
        assert_eq!(number(1.0), "1");
        assert_eq!(number(1.5), "1.5");
        assert_eq!(number(1.23456), "1.23");
        assert_eq!(number(-0.001), "0");
        assert_eq!(number(f64::NAN), "0");
        assert_eq!(number(f64::INFINITY), "1000000");
        assert_eq!(number(f64::NEG_INFINITY), "-1000000");
    }

    #[test]
    fn ticks_are_round() {
        // The finest step wins: 2 (six ticks) over 2.5 (five).
        assert_eq!(ticks(10.0), vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        assert_eq!(ticks(9.0), vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        assert_eq!(ticks(12.0), vec![0.0, 2.5, 5.0, 7.5, 10.0, 12.5]);
        assert_eq!(ticks(20.0), vec![0.0, 5.0, 10.0, 15.0, 20.0]);
        assert_eq!(ticks(3.0), vec![0.0, 1.0, 2.0, 3.0]);
        assert_eq!(ticks(7.0), vec![0.0, 2.0, 4.0, 6.0, 8.0]);
        assert_eq!(ticks(1.0), vec![0.0, 0.2, 0.4, 0.6, 0.8, 1.0]);
        assert_eq!(ticks(0.7), vec![0.0, 0.2, 0.4, 0.6, 0.8]);
        assert_eq!(ticks(0.3), vec![0.0, 0.1, 0.2, 0.3]);
        assert_eq!(ticks(95.0), vec![0.0, 20.0, 40.0, 60.0, 80.0, 100.0]);
        assert_eq!(
            ticks(1234.0),
            vec![0.0, 250.0, 500.0, 750.0, 1000.0, 1250.0]
        );
        assert_eq!(ticks(2e6), vec![0.0, 5e5, 1e6, 1.5e6, 2e6]);
        assert_eq!(ticks(0.0), vec![0.0, 1.0]);
        assert_eq!(ticks(-4.0), vec![0.0, 1.0]);
        assert_eq!(ticks(f64::NAN), vec![0.0, 1.0]);
        assert_eq!(ticks(f64::INFINITY), vec![0.0, 1.0]);
        assert_eq!(ticks(f64::MAX), vec![0.0, f64::MAX]);
        let tiny = ticks(5e-324);
        assert_eq!(tiny.len(), 2);
        assert!(tiny[1] >= 5e-324);
    }

    #[test]
    fn compact_labels() {
        for (value, label) in [
            (0.0, "0"),
            (-0.0, "0"),
            (7.0, "7"),
            (0.333, "0.33"),
            (12.5, "12.5"),
            (950.0, "950"),
            (999.4, "999"),
            (999.6, "1k"),
            (1000.0, "1k"),
            (1200.0, "1.2k"),
            (12_345.0, "12.3k"),
            (123_456.0, "123k"),
            (999_999.0, "1M"),
            (3_400_000.0, "3.4M"),
            (2.5e9, "2.5B"),
            (7e12, "7T"),
            (1.25e15, "1.2e15"),
            (-1200.0, "-1.2k"),
            (-0.001, "0"),
            (f64::NAN, "—"),
            (f64::NEG_INFINITY, "—"),
        ] {
            assert_eq!(compact(value), label, "{value}");
        }
    }

    // ---------------------------------------------------------------- properties

    use crate::test_rng::Rng;

    /// Mostly ordinary numbers, sometimes the values that break naive code.
    fn any_value(rng: &mut Rng) -> f64 {
        match rng.below(12) {
            0 => f64::NAN,
            1 => f64::INFINITY,
            2 => -rng.unit() * 100.0,
            3 => 0.0,
            4 => rng.unit() * 1e12,
            5 => f64::MAX / (1.0 + rng.unit()),
            6 => f64::MIN_POSITIVE * rng.unit(),
            _ => rng.unit() * 100.0,
        }
    }

    fn any_frame(rng: &mut Rng) -> Frame {
        let mut dimension = || match rng.below(8) {
            0 => f64::NAN,
            1 => -10.0,
            2 => 0.0,
            _ => rng.unit() * 500.0,
        };
        Frame {
            width: dimension(),
            height: dimension(),
            pad_left: dimension() / 10.0,
            pad_right: dimension() / 10.0,
            pad_top: dimension() / 10.0,
            pad_bottom: dimension() / 10.0,
        }
    }

    fn inside(plot: &Plot, x: f64, y: f64, width: f64, height: f64) -> bool {
        let slack = 1e-9 * plot.right.abs().max(plot.bottom.abs()).max(1.0);
        [x, y, width, height].iter().all(|v| v.is_finite())
            && width >= 0.0
            && height >= 0.0
            && x >= plot.left - slack
            && x + width <= plot.right + slack
            && y >= plot.top - slack
            && y + height <= plot.bottom + slack
    }

    #[test]
    fn random_bars_stay_inside_and_proportional() {
        let mut rng = Rng(0x1234_5678_9ABC_DEF1);
        for _ in 0..3_000 {
            let frame = any_frame(&mut rng);
            let plot = frame.plot();
            let values: Vec<f64> = (0..rng.below(60)).map(|_| any_value(&mut rng)).collect();
            let max_bars = rng.below(70);
            let out = bars(&values, &frame, max_bars);
            assert_eq!(out.len(), values.len().min(max_bars));
            let top = out.iter().map(|b| b.value).fold(0.0, f64::max);
            for (position, bar) in out.iter().enumerate() {
                assert!(
                    inside(&plot, bar.x, bar.y, bar.width, bar.height),
                    "{bar:?} {plot:?}"
                );
                assert_eq!(bar.index, values.len() - out.len() + position);
                assert!(bar.value.is_finite() && bar.value >= 0.0);
                // Proportional: height / plot height == value / largest value.
                let expected = if top > 0.0 {
                    bar.value / top * plot.height()
                } else {
                    0.0
                };
                assert!(close(bar.height, expected), "{bar:?} top {top}");
                assert!(close(bar.y + bar.height, plot.bottom));
            }
            for pair in out.windows(2) {
                assert!(pair[0].x <= pair[1].x);
                assert!(pair[0].x + pair[0].width <= pair[1].x + 1e-9);
            }
            for cell in cells(values.len(), &frame, max_bars) {
                assert!(inside(&plot, cell.x, cell.y, cell.width, cell.height));
            }
        }
    }

    #[test]
    fn huge_inputs_stay_finite() {
        let values: Vec<f64> = (0..100_000).map(|i| f64::from(i % 977)).collect();
        let out = bars(&values, &frame(), 100_000);
        assert_eq!(out.len(), 100_000);
        let plot = frame().plot();
        assert!(out
            .iter()
            .all(|b| inside(&plot, b.x, b.y, b.width, b.height)));
        let points: Vec<(f64, f64)> = values
            .iter()
            .enumerate()
            .map(|(i, &v)| (i as f64, v))
            .collect();
        let path = line_path(&points, (0.0, 99_999.0), (0.0, 976.0), &frame());
        assert_eq!(path.matches('L').count(), 99_999);
        assert!(!path.contains("NaN") && !path.contains("inf"));
    }

    #[test]
    fn random_paths_are_finite_and_well_formed() {
        let mut rng = Rng(0x0F0F_1234_4321_F0F0);
        for _ in 0..3_000 {
            let frame = any_frame(&mut rng);
            let points: Vec<(f64, f64)> = (0..rng.below(20))
                .map(|_| (any_value(&mut rng), any_value(&mut rng)))
                .collect();
            let x_range = (any_value(&mut rng), any_value(&mut rng));
            let y_range = (any_value(&mut rng), any_value(&mut rng));
            let path = line_path(&points, x_range, y_range, &frame);
            let kept = points
                .iter()
                .filter(|(x, y)| x.is_finite() && y.is_finite())
                .count();
            let words: Vec<&str> = path.split(' ').filter(|w| !w.is_empty()).collect();
            assert_eq!(words.len(), kept * 3, "{path}");
            for (i, word) in words.iter().enumerate() {
                if i % 3 == 0 {
                    assert_eq!(*word, if i == 0 { "M" } else { "L" });
                } else {
                    let value: f64 = word.parse().unwrap_or(f64::NAN);
                    assert!(
                        value.is_finite() && value.abs() <= COORDINATE_LIMIT,
                        "{word}"
                    );
                    let decimals = word.split('.').nth(1).map_or(0, str::len);
                    assert!(decimals <= 2 && *word != "-0", "{word}");
                }
            }
        }
    }

    #[test]
    fn random_ticks_are_nice_and_cover() {
        let mut rng = Rng(0xABCD_EF01_2345_6789);
        for round in 0..20_000 {
            // Magnitudes from 1e-12 to 1e15, plus the awkward values.
            let max = if round % 10 == 0 {
                any_value(&mut rng)
            } else {
                rng.unit() * 10f64.powi(rng.below(28) as i32 - 12)
            };
            let out = ticks(max);
            assert!((2..=6).contains(&out.len()), "{max}: {out:?}");
            assert_eq!(out[0], 0.0);
            assert!(
                out.windows(2).all(|pair| pair[0] < pair[1]),
                "{max}: {out:?}"
            );
            assert!(out.iter().all(|t| t.is_finite()));
            if max.is_finite() && max > 0.0 {
                let last = out[out.len() - 1];
                assert!(last >= max, "{max}: {out:?}");
                if out.len() > 2 || last != max {
                    // Evenly spaced by a round step, and the finest: one step less falls short.
                    let step = out[1];
                    let mantissa = step / 10f64.powi(step.log10().floor() as i32);
                    assert!(
                        [1.0, 2.0, 2.5, 5.0, 10.0]
                            .iter()
                            .any(|m| close(mantissa, *m)),
                        "{max}: {out:?}"
                    );
                    for (i, tick) in out.iter().enumerate() {
                        assert!(close(*tick, step * i as f64), "{max}: {out:?}");
                    }
                    assert!(last - step < max, "{max}: {out:?}");
                }
            }
        }
    }

    #[test]
    fn random_compact_labels_are_short_and_finite() {
        let mut rng = Rng(0x5555_AAAA_1234_9876);
        for _ in 0..20_000 {
            let value = any_value(&mut rng) * if rng.below(2) == 0 { 1.0 } else { -1.0 };
            let label = compact(value);
            assert!(label.chars().count() <= 8, "{value}: {label}");
            assert!(!label.contains("NaN") && !label.contains("inf"), "{label}");
            if value.is_finite() && value.abs() < 1e15 {
                // The label reads back to within its rounding.
                let (digits, unit) = match label.char_indices().last() {
                    Some((at, 'k')) => (&label[..at], 1e3),
                    Some((at, 'M')) => (&label[..at], 1e6),
                    Some((at, 'B')) => (&label[..at], 1e9),
                    Some((at, 'T')) => (&label[..at], 1e12),
                    _ => (label.as_str(), 1.0),
                };
                let read: f64 = digits.parse().unwrap_or(f64::NAN);
                let error = (read * unit - value).abs();
                assert!(
                    error <= 0.0051 * value.abs() + 0.051 * unit,
                    "{value}: {label}"
                );
            }
        }
    }
}
