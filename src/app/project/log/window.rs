//! The pure logic of the log pane's virtual scrolling: which lines of a long list to render
//! (100,000+ lines at a fixed line height), whether the view is pinned to the bottom, and where
//! a jump to the previous or next iteration header lands.

/// What the visible window of a fixed-line-height list should render: lines `first..last`,
/// the first one placed `offset_px` from the top of a `total_px`-tall scroll area.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Window {
    pub first: usize,
    /// Exclusive.
    pub last: usize,
    /// Top of line `first`.
    pub offset_px: f64,
    /// Height of all `len` lines.
    pub total_px: f64,
}

/// The lines to render for a viewport of `viewport_px` scrolled to `scroll_top`, plus
/// `overscan` extra lines on each side so fast scrolling does not flash blank. A scroll
/// position past the end (the list shrank, or a stale value) is clamped to the last screenful.
/// Negative or non-finite inputs count as 0; a line height that is not positive and finite
/// renders nothing (`0..0`, no height), since no position can be computed from it.
pub fn window(
    len: usize,
    line_height: f64,
    scroll_top: f64,
    viewport_px: f64,
    overscan: usize,
) -> Window {
    if !(line_height.is_finite() && line_height > 0.0) {
        return Window {
            first: 0,
            last: 0,
            offset_px: 0.0,
            total_px: 0.0,
        };
    }
    let total_px = len as f64 * line_height;
    let viewport_px = non_negative(viewport_px);
    let scroll_top = non_negative(scroll_top).min((total_px - viewport_px).max(0.0));
    // Float-to-int `as` saturates (and maps NaN to 0), so these cannot wrap; min keeps them in
    // the list.
    let first_visible = ((scroll_top / line_height).floor() as usize).min(len);
    let last_visible = (((scroll_top + viewport_px) / line_height).ceil() as usize).min(len);
    let first = first_visible.saturating_sub(overscan);
    let last = last_visible.saturating_add(overscan).min(len).max(first);
    Window {
        first,
        last,
        offset_px: first as f64 * line_height,
        total_px,
    }
}

/// Whether a scroll position counts as "at the bottom" (within `slack_px` of it), so
/// auto-scroll stays pinned while new lines arrive. Content shorter than the viewport is
/// always at the bottom. Negative or non-finite inputs count as 0.
pub fn at_bottom(scroll_top: f64, viewport_px: f64, total_px: f64, slack_px: f64) -> bool {
    let below = non_negative(total_px) - non_negative(scroll_top) - non_negative(viewport_px);
    below <= non_negative(slack_px)
}

/// The first header strictly after line `from` in `headers` (sorted ascending).
fn next_header(headers: &[usize], from: usize) -> Option<usize> {
    let after = headers.partition_point(|&header| header <= from);
    headers.get(after).copied()
}

/// The last header strictly before line `from` in `headers` (sorted ascending).
fn prev_header(headers: &[usize], from: usize) -> Option<usize> {
    let before = headers.partition_point(|&header| header < from);
    before
        .checked_sub(1)
        .and_then(|index| headers.get(index))
        .copied()
}

/// Which way a jump between iteration headers goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Previous,
    Next,
}

/// The position (among the shown lines) to scroll to when jumping from `top`, the position at
/// the top of the pane, to the previous or next header; `None` when there is none that way.
/// `shown` lists the line indices a filter keeps, ascending (`None`: all `len` lines). A header
/// a filter hides maps to the first shown line after it, which can be where the pane already
/// is: the jump keeps going until the position actually moves.
pub fn jump_target(
    headers: &[usize],
    shown: Option<&[usize]>,
    len: usize,
    top: usize,
    direction: Direction,
) -> Option<usize> {
    let line_at = |position: usize| match shown {
        Some(shown) => shown.get(position).copied().unwrap_or(len),
        None => position,
    };
    let position_of = |line: usize| match shown {
        Some(shown) => shown.partition_point(|&index| index < line),
        None => line,
    };
    let mut line = line_at(top);
    loop {
        let header = match direction {
            Direction::Next => next_header(headers, line)?,
            Direction::Previous => prev_header(headers, line)?,
        };
        let position = position_of(header);
        let moved = match direction {
            Direction::Next => position > top,
            Direction::Previous => position < top,
        };
        if moved {
            return Some(position);
        }
        line = header;
    }
}

fn non_negative(value: f64) -> f64 {
    if value.is_finite() && value > 0.0 {
        value
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // ---------------------------------------------------------------- window

    #[test]
    fn window_covers_the_viewport_with_overscan() {
        // 20 px lines, a 100 px viewport scrolled to 210: lines 10..16 are visible.
        let out = window(1000, 20.0, 210.0, 100.0, 3);
        assert_eq!(
            out,
            Window {
                first: 7,
                last: 19,
                offset_px: 140.0,
                total_px: 20_000.0
            }
        );
        let exact = window(1000, 20.0, 200.0, 100.0, 0);
        assert_eq!((exact.first, exact.last), (10, 15));
    }

    #[test]
    fn window_at_the_edges() {
        let top = window(1000, 20.0, 0.0, 100.0, 5);
        assert_eq!((top.first, top.last, top.offset_px), (0, 10, 0.0));
        let bottom = window(1000, 20.0, 19_900.0, 100.0, 5);
        assert_eq!((bottom.first, bottom.last), (990, 1000));
        // Past the end (the list shrank): clamped to the last screenful.
        let stale = window(1000, 20.0, 1e12, 100.0, 0);
        assert_eq!(
            (stale.first, stale.last, stale.offset_px),
            (995, 1000, 19_900.0)
        );
        // Shorter than the viewport: everything.
        let short = window(3, 20.0, 500.0, 100.0, 0);
        assert_eq!((short.first, short.last, short.total_px), (0, 3, 60.0));
        let empty = window(0, 20.0, 0.0, 100.0, 10);
        assert_eq!((empty.first, empty.last, empty.total_px), (0, 0, 0.0));
    }

    #[test]
    fn window_survives_bad_inputs() {
        for line_height in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let out = window(100, line_height, 10.0, 100.0, 2);
            assert_eq!((out.first, out.last, out.total_px), (0, 0, 0.0));
        }
        // No viewport: only the overscan is rendered.
        let out = window(100, 10.0, f64::NAN, f64::NAN, 2);
        assert_eq!((out.first, out.last, out.offset_px), (0, 2, 0.0));
        let out = window(100, 10.0, -50.0, f64::INFINITY, usize::MAX);
        assert_eq!((out.first, out.last), (0, 100));
        let out = window(usize::MAX, 1.0, f64::MAX, 1000.0, usize::MAX);
        assert!(out.first <= out.last && out.total_px.is_finite());
    }

    #[test]
    fn at_bottom_within_slack() {
        assert!(at_bottom(900.0, 100.0, 1000.0, 0.0));
        assert!(at_bottom(895.0, 100.0, 1000.0, 8.0));
        assert!(!at_bottom(880.0, 100.0, 1000.0, 8.0));
        // Content shorter than the viewport is always at the bottom.
        assert!(at_bottom(0.0, 500.0, 100.0, 0.0));
        assert!(at_bottom(0.0, 0.0, 0.0, 0.0));
        // Bad inputs count as 0.
        assert!(!at_bottom(f64::NAN, 100.0, 1000.0, 8.0));
        assert!(at_bottom(900.0, 100.0, 1000.0, f64::NAN));
        assert!(at_bottom(900.0, 100.0, f64::INFINITY, 0.0));
    }

    #[test]
    fn header_navigation() {
        let headers = [3, 10, 42];
        assert_eq!(next_header(&headers, 0), Some(3));
        assert_eq!(next_header(&headers, 3), Some(10));
        assert_eq!(next_header(&headers, 41), Some(42));
        assert_eq!(next_header(&headers, 42), None);
        assert_eq!(prev_header(&headers, 42), Some(10));
        assert_eq!(prev_header(&headers, 43), Some(42));
        assert_eq!(prev_header(&headers, 3), None);
        assert_eq!(prev_header(&headers, 0), None);
        assert_eq!(next_header(&[], 0), None);
        assert_eq!(prev_header(&[], usize::MAX), None);
        assert_eq!(next_header(&headers, usize::MAX), None);
    }

    #[test]
    fn jumps_without_a_filter_go_to_the_header_line() {
        let headers = [3, 10, 42];
        assert_eq!(jump_target(&headers, None, 50, 0, Direction::Next), Some(3));
        assert_eq!(
            jump_target(&headers, None, 50, 3, Direction::Next),
            Some(10)
        );
        assert_eq!(jump_target(&headers, None, 50, 42, Direction::Next), None);
        assert_eq!(
            jump_target(&headers, None, 50, 42, Direction::Previous),
            Some(10)
        );
        assert_eq!(
            jump_target(&headers, None, 50, 3, Direction::Previous),
            None
        );
        assert_eq!(jump_target(&[], None, 50, 7, Direction::Next), None);
    }

    #[test]
    fn jumps_with_a_filter_skip_headers_that_would_not_move_the_pane() {
        // Lines 0, 1, 5, 11 and 12 are shown; the headers (3 and 10) are filtered out.
        let shown = [0, 1, 5, 11, 12];
        let headers = [3, 10];
        let jump = |top, direction| jump_target(&headers, Some(&shown), 13, top, direction);
        // Header 3 shows as line 5 (position 2), header 10 as line 11 (position 3).
        assert_eq!(jump(0, Direction::Next), Some(2));
        assert_eq!(jump(2, Direction::Next), Some(3));
        assert_eq!(jump(3, Direction::Next), None);
        // From line 11, header 10 maps to where the pane is: the jump goes on to header 3.
        assert_eq!(jump(3, Direction::Previous), Some(2));
        assert_eq!(jump(2, Direction::Previous), None);
        // A position past the shown lines counts as the end of the log.
        assert_eq!(jump(99, Direction::Previous), Some(3));
    }

    // ---------------------------------------------------------------- properties

    use crate::test_rng::Rng;

    fn any_float(rng: &mut Rng, scale: f64) -> f64 {
        match rng.below(16) {
            0 => f64::NAN,
            1 => f64::INFINITY,
            2 => -rng.unit() * scale,
            3 => 0.0,
            4 => 1e300,
            _ => rng.unit() * scale,
        }
    }

    #[test]
    fn random_windows_cover_the_viewport() {
        let mut rng = Rng(0x2468_ACE0_1357_9BDF);
        for _ in 0..50_000 {
            let len = match rng.below(4) {
                0 => 0,
                1 => rng.below(10),
                _ => rng.below(200_000),
            };
            let line_height = if rng.below(10) == 0 {
                any_float(&mut rng, 30.0)
            } else {
                1.0 + rng.unit() * 30.0
            };
            let scroll_top = any_float(&mut rng, len as f64 * 40.0);
            let viewport = any_float(&mut rng, 2000.0);
            let overscan = rng.below(50);
            let out = window(len, line_height, scroll_top, viewport, overscan);
            let case = format!("{len} {line_height} {scroll_top} {viewport} {overscan}: {out:?}");
            assert!(out.first <= out.last && out.last <= len, "{case}");
            assert!(
                out.offset_px.is_finite() && out.total_px.is_finite(),
                "{case}"
            );
            if !(line_height.is_finite() && line_height > 0.0) {
                assert_eq!((out.first, out.last), (0, 0), "{case}");
                continue;
            }
            assert!(
                close(out.offset_px, out.first as f64 * line_height),
                "{case}"
            );
            assert!(close(out.total_px, len as f64 * line_height), "{case}");
            // The rendered lines cover the (clamped) viewport.
            let viewport = if viewport.is_finite() && viewport > 0.0 {
                viewport
            } else {
                0.0
            };
            let max_scroll = (out.total_px - viewport).max(0.0);
            let scroll = if scroll_top.is_finite() && scroll_top > 0.0 {
                scroll_top.min(max_scroll)
            } else {
                0.0
            };
            let rendered_bottom = out.offset_px + (out.last - out.first) as f64 * line_height;
            assert!(out.offset_px <= scroll + 1e-6, "{case}");
            assert!(
                rendered_bottom + 1e-6 * line_height >= (scroll + viewport).min(out.total_px),
                "{case}"
            );
            // Overscan is bounded: at most the visible lines plus two overscans.
            let visible = ((viewport / line_height).ceil() as usize).saturating_add(1);
            assert!(
                out.last - out.first <= visible.saturating_add(2 * overscan),
                "{case}"
            );
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
    }

    #[test]
    fn random_header_jumps_agree_with_their_definitions() {
        let mut rng = Rng(0x1111_2222_3333_4444);
        for _ in 0..500 {
            let len = rng.below(80);
            let headers: Vec<usize> = (0..len).filter(|_| rng.below(5) == 0).collect();
            for from in 0..=len {
                let next = next_header(&headers, from);
                let expected_next = headers.iter().copied().find(|&h| h > from);
                assert_eq!(next, expected_next);
                let prev = prev_header(&headers, from);
                let expected_prev = headers.iter().rev().copied().find(|&h| h < from);
                assert_eq!(prev, expected_prev);
            }
            // With a filter, a jump lands on the first shown line at or after a header, and
            // always moves the pane the way asked.
            let shown: Vec<usize> = (0..len).filter(|_| rng.below(2) == 0).collect();
            for top in 0..=shown.len() {
                for direction in [Direction::Previous, Direction::Next] {
                    let Some(to) = jump_target(&headers, Some(&shown), len, top, direction) else {
                        continue;
                    };
                    match direction {
                        Direction::Next => assert!(to > top),
                        Direction::Previous => assert!(to < top),
                    }
                    assert!(headers
                        .iter()
                        .any(|&header| { shown.partition_point(|&index| index < header) == to }));
                }
            }
        }
    }
}
