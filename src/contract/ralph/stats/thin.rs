//! Thinning a burndown to what a chart can show: a series of one point per iteration grows
//! without bound, a chart a few hundred pixels wide shows a few hundred.

use super::BurndownPoint;

/// Points sent with a project's page at most (its chart is 600 units wide).
pub const MAX_BURNDOWN_POINTS: usize = 300;

/// At most `max` (at least 4) of `points`, in order, unchanged: the first and the last always,
/// and, while they fit, the two points around every change of `remaining` (so the line drawn
/// through them is exactly the full one, a step at each change). A series with more changes than
/// fit keeps, per equal slice, its first, lowest, highest and last point.
pub fn thin_burndown(points: &[BurndownPoint], max: usize) -> Vec<BurndownPoint> {
    let max = max.max(4);
    if points.len() <= max {
        return points.to_vec();
    }
    let last = points.len() - 1;
    let mut keep: Vec<usize> = vec![0];
    for i in 1..points.len() {
        if points[i].remaining != points[i - 1].remaining {
            keep.extend([i - 1, i]);
        }
    }
    keep.push(last);
    keep.dedup();
    if keep.len() <= max {
        return keep.into_iter().map(|i| points[i].clone()).collect();
    }
    // Too many changes: per slice, the points that bound its line.
    let slices = max / 4;
    let mut keep: Vec<usize> = Vec::with_capacity(max);
    for slice in 0..slices {
        let (start, end) = (
            slice * points.len() / slices,
            (slice + 1) * points.len() / slices,
        );
        let range = start..end;
        let low = range.clone().min_by_key(|&i| points[i].remaining);
        let high = range.clone().max_by_key(|&i| points[i].remaining);
        let mut four: Vec<usize> = [Some(start), low, high, end.checked_sub(1)]
            .into_iter()
            .flatten()
            .collect();
        four.sort_unstable();
        keep.extend(four);
    }
    keep.dedup();
    keep.into_iter().map(|i| points[i].clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn series(remaining: impl IntoIterator<Item = u32>) -> Vec<BurndownPoint> {
        remaining
            .into_iter()
            .enumerate()
            .map(|(i, remaining)| BurndownPoint {
                iteration: i as u32,
                run: 1,
                remaining,
                at: i as u32,
            })
            .collect()
    }

    /// The value at every position of the full series, read back from the thinned one as the
    /// chart draws it (a flat line between two kept points of the same value).
    fn steps(thinned: &[BurndownPoint], len: usize) -> Vec<u32> {
        (0..len as u32)
            .map(|at| {
                let before = thinned
                    .iter()
                    .rev()
                    .find(|p| p.at <= at)
                    .expect("first kept");
                before.remaining
            })
            .collect()
    }

    #[test]
    fn a_short_series_is_sent_whole() {
        let points = series([5, 4, 4, 3]);
        assert_eq!(thin_burndown(&points, 300), points);
    }

    #[test]
    fn five_thousand_iterations_of_a_forty_task_plan_keep_every_change_exactly() {
        // One task done every 120 iterations or so.
        let points = series((0..5_001u32).map(|i| 40 - i * 40 / 5_001));
        let thinned = thin_burndown(&points, MAX_BURNDOWN_POINTS);
        assert!(thinned.len() <= MAX_BURNDOWN_POINTS, "{}", thinned.len());
        assert_eq!(thinned.first(), points.first());
        assert_eq!(thinned.last(), points.last());
        let remaining: Vec<u32> = points.iter().map(|p| p.remaining).collect();
        assert_eq!(steps(&thinned, points.len()), remaining, "the same line");
    }

    #[test]
    fn a_series_with_more_changes_than_fit_keeps_its_ends_and_bounds() {
        let points = series((0..5_001u32).map(|i| 5_000 - i));
        let thinned = thin_burndown(&points, MAX_BURNDOWN_POINTS);
        assert!(thinned.len() <= MAX_BURNDOWN_POINTS, "{}", thinned.len());
        assert!(
            thinned.len() >= MAX_BURNDOWN_POINTS / 2,
            "{}",
            thinned.len()
        );
        assert_eq!(thinned.first(), points.first());
        assert_eq!(thinned.last(), points.last());
    }

    proptest! {
        #[test]
        fn thinned_is_an_ordered_subset_with_both_ends(
            remaining in proptest::collection::vec(0u32..50, 0..2_000),
            max in 0usize..400,
        ) {
            let points = series(remaining);
            let thinned = thin_burndown(&points, max);
            prop_assert!(thinned.len() <= max.max(4).max(points.len().min(max.max(4))));
            prop_assert_eq!(thinned.first(), points.first());
            prop_assert_eq!(thinned.last(), points.last());
            for pair in thinned.windows(2) {
                prop_assert!(pair[0].at < pair[1].at);
            }
            for point in &thinned {
                prop_assert_eq!(point, &points[point.at as usize]);
            }
        }
    }
}
