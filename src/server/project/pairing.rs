//! Which log iteration each JSONL row belongs to, kept up to date as both files grow.
//!
//! The pairing walks both files backwards: the newest row belongs to the newest header with its
//! iteration number, the row before it to the newest header with its number *before* that one,
//! and so on. Iteration numbers restart when a loop restarts, and older loop scripts wrote a log
//! but no rows, so numbers alone are ambiguous and the runs of the two files cannot be compared;
//! walking backwards pairs each row with the right run's header, and a row whose header is not in
//! the log stays unpaired rather than taking a wrong one.
//!
//! Appends only ever change the newest part of the pairing. Each row is entered by the walk with
//! a bound (headers below it are eligible); the row's pair, and so the bound handed to the row
//! before it, depends only on that bound. When a new walk enters a row with the bound the
//! previous walk entered it with, nothing from that row back can change (the headers below the
//! bound and the rows before it are the same), so the walk stops there. An append costs the rows
//! it re-pairs, usually one or two, not the whole file.

use std::collections::HashMap;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Links {
    /// Header indices by iteration number, ascending.
    by_number: HashMap<u32, Vec<usize>>,
    /// Headers indexed into `by_number` so far.
    headers: usize,
    /// Per row: the header it belongs to.
    row_header: Vec<Option<usize>>,
    /// Per row: the bound the last walk entered it with.
    bounds: Vec<usize>,
    /// Per header: how many rows are paired with it (0 or 1 once a walk is done; a count, not a
    /// flag, because a walk may pair a newer row with a header before it unpairs an older one).
    header_rows: Vec<u32>,
}

/// Where one iteration of a project's list comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The JSONL row at this index.
    Row(usize),
    /// The log header at this index (no row belongs to it).
    Log(usize),
}

impl Links {
    /// Forgets everything: the next [`Links::update`] pairs every row again. Needed when the log
    /// or the JSONL file starts over (truncated, replaced), since `update` assumes appends.
    pub fn reset(&mut self) {
        *self = Links::default();
    }

    /// Brings the pairing up to date after headers and rows were appended to the ones it last
    /// saw (none changed or removed: see [`Links::reset`]). Returns the index of the first row
    /// whose pair may have changed: rows before it are paired as before.
    pub fn update<H, R>(
        &mut self,
        headers: &[H],
        header_number: impl Fn(&H) -> u32,
        rows: &[R],
        row_number: impl Fn(&R) -> u32,
    ) -> usize {
        if headers.len() < self.headers || rows.len() < self.row_header.len() {
            // Not an append (the caller missed a reset): start over rather than trust old pairs.
            self.reset();
        }
        for (index, header) in headers.iter().enumerate().skip(self.headers) {
            self.by_number
                .entry(header_number(header))
                .or_default()
                .push(index);
        }
        self.headers = headers.len();
        self.header_rows.resize(headers.len(), 0);
        let known_rows = self.row_header.len();
        self.row_header.resize(rows.len(), None);
        self.bounds.resize(rows.len(), 0);

        // The newest row may take any header.
        let mut bound = headers.len();
        for row in (0..rows.len()).rev() {
            if row < known_rows && self.bounds[row] == bound {
                return row + 1;
            }
            self.bounds[row] = bound;
            let header = self
                .by_number
                .get(&row_number(&rows[row]))
                .and_then(|candidates| {
                    // The newest header with this number below the bound.
                    let below = candidates.partition_point(|&index| index < bound);
                    below.checked_sub(1).map(|i| candidates[i])
                });
            if let Some(old) = self.row_header[row] {
                self.header_rows[old] -= 1;
            }
            if let Some(new) = header {
                self.header_rows[new] += 1;
                bound = new;
            }
            self.row_header[row] = header;
        }
        0
    }

    /// The header row `row` belongs to.
    pub fn header_of(&self, row: usize) -> Option<usize> {
        self.row_header.get(row).copied().flatten()
    }

    /// Whether some row belongs to header `header` (its iteration has finished).
    pub fn has_row(&self, header: usize) -> bool {
        self.header_rows.get(header).is_some_and(|&rows| rows > 0)
    }

    /// Every iteration once, oldest first: each row, and each header no row belongs to for which
    /// `listed` says yes. Paired rows follow their headers' order (the walk pairs a row only with
    /// a header before the next row's), so the two files merge like two sorted lists; an
    /// unpaired row stays where it is among the rows.
    pub fn merge(&self, headers: usize, listed: impl Fn(usize) -> bool) -> Vec<Source> {
        let rows = self.row_header.len();
        let mut merged = Vec::with_capacity(rows.max(headers));
        let mut next_header = 0;
        let headers_until = |end: usize, merged: &mut Vec<Source>, next_header: &mut usize| {
            for header in *next_header..end.min(headers) {
                if !self.has_row(header) && listed(header) {
                    merged.push(Source::Log(header));
                }
            }
            *next_header = (*next_header).max(end);
        };
        for row in 0..rows {
            if let Some(header) = self.header_of(row) {
                headers_until(header, &mut merged, &mut next_header);
                next_header = next_header.max(header + 1);
            }
            merged.push(Source::Row(row));
        }
        headers_until(headers, &mut merged, &mut next_header);
        merged
    }

    #[cfg(test)]
    fn pairs(&self) -> &[Option<usize>] {
        &self.row_header
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The pairing computed from scratch, the way it was before it was incremental.
    fn full(headers: &[u32], rows: &[u32]) -> Vec<Option<usize>> {
        let mut by_number: HashMap<u32, Vec<usize>> = HashMap::new();
        for (index, number) in headers.iter().enumerate() {
            by_number.entry(*number).or_default().push(index);
        }
        let mut links = vec![None; rows.len()];
        let mut before = usize::MAX;
        for (row, number) in rows.iter().enumerate().rev() {
            let Some(candidates) = by_number.get_mut(number) else {
                continue;
            };
            while candidates.last().is_some_and(|&index| index >= before) {
                candidates.pop();
            }
            if let Some(index) = candidates.pop() {
                links[row] = Some(index);
                before = index;
            }
        }
        links
    }

    fn update(links: &mut Links, headers: &[u32], rows: &[u32]) -> usize {
        links.update(headers, |n| *n, rows, |n| *n)
    }

    #[test]
    fn restarts_and_rowless_runs_pair_backwards() {
        // Run 1 (no rows: an old script), then run 2 restarting at 1 with rows.
        let headers = [1, 2, 3, 1, 2];
        let rows = [1, 2];
        let mut links = Links::default();
        update(&mut links, &headers, &rows);
        assert_eq!(links.pairs(), [Some(3), Some(4)]);
        assert!(!links.has_row(0) && links.has_row(3) && links.has_row(4));
        // A row whose header is not in the log stays unpaired.
        update(&mut links, &headers, &[1, 2, 9]);
        assert_eq!(links.header_of(2), None);
        // Shorter lists are not appends: paired from scratch, never with stale indices.
        assert_eq!(update(&mut links, &[2], &[2]), 0);
        assert_eq!(links.pairs(), [Some(0)]);
        assert!(!links.has_row(1));
    }

    #[test]
    fn an_append_repairs_only_the_newest_rows() {
        let headers: Vec<u32> = (1..=1000).collect();
        let mut rows: Vec<u32> = (1..=999).collect();
        let mut links = Links::default();
        assert_eq!(update(&mut links, &headers, &rows), 0);
        rows.push(1000);
        let first_changed = update(&mut links, &headers, &rows);
        assert!(first_changed >= 998, "re-paired from row {first_changed}");
        assert_eq!(links.pairs(), full(&headers, &rows));
        assert_eq!(
            update(&mut links, &headers, &rows),
            rows.len(),
            "nothing new"
        );
    }

    /// One step of a growing project: a header or a row appended, or the pairing brought up to
    /// date (the server does that after each batch of reads, so appends come in bunches).
    #[derive(Clone, Debug)]
    enum Step {
        Header(u32),
        Row(u32),
        Update,
    }

    fn step() -> impl Strategy<Value = Step> {
        // Few distinct numbers, so restarts and duplicates are common.
        prop_oneof![
            (1u32..6).prop_map(Step::Header),
            (1u32..6).prop_map(Step::Row),
            Just(Step::Update),
        ]
    }

    #[test]
    fn merge_puts_log_only_iterations_between_the_rows() {
        // Headers 1 2 3 | 1 2 (a restart); rows for the first run's 2 and the second run's 1.
        let headers = [1, 2, 3, 1, 2];
        let rows = [2, 1];
        let mut links = Links::default();
        update(&mut links, &headers, &rows);
        assert_eq!(links.pairs(), [Some(1), Some(3)]);
        let all = links.merge(headers.len(), |_| true);
        assert_eq!(
            all,
            [
                Source::Log(0),
                Source::Row(0),
                Source::Log(2),
                Source::Row(1),
                Source::Log(4)
            ]
        );
        // The current iteration (not ended) is left out.
        let ended = links.merge(headers.len(), |h| h + 1 < headers.len());
        assert_eq!(ended.last(), Some(&Source::Row(1)));
        // Without rows the log is the list.
        let log_only = Links::default().merge(3, |_| true);
        assert_eq!(log_only, [Source::Log(0), Source::Log(1), Source::Log(2)]);
    }

    proptest! {
        #[test]
        fn incremental_pairing_equals_the_full_one(steps in prop::collection::vec(step(), 0..120)) {
            let (mut headers, mut rows) = (Vec::new(), Vec::new());
            let mut links = Links::default();
            for step in steps {
                match step {
                    Step::Header(n) => headers.push(n),
                    Step::Row(n) => rows.push(n),
                    Step::Update => {
                        update(&mut links, &headers, &rows);
                        prop_assert_eq!(links.pairs(), &full(&headers, &rows)[..]);
                    }
                }
            }
            update(&mut links, &headers, &rows);
            let expected = full(&headers, &rows);
            prop_assert_eq!(links.pairs(), &expected[..]);
            // Each header has at most one row, and `has_row` agrees with the pairs.
            for header in 0..headers.len() {
                let rows_of_it = expected.iter().filter(|&&p| p == Some(header)).count();
                prop_assert!(rows_of_it <= 1);
                prop_assert_eq!(links.has_row(header), rows_of_it == 1);
            }
            // Starting over gives the same answer.
            let mut fresh = Links::default();
            update(&mut fresh, &headers, &rows);
            prop_assert_eq!(fresh.pairs(), links.pairs());

            // The merge lists every row once in file order, and every unpaired listed header
            // once; the headers it stands on (a row's, or its own) only go forward.
            let listed = |header: usize| header % 3 != 1;
            let merged = links.merge(headers.len(), listed);
            let merged_rows: Vec<usize> = merged
                .iter()
                .filter_map(|s| match s { Source::Row(r) => Some(*r), Source::Log(_) => None })
                .collect();
            prop_assert_eq!(merged_rows, (0..rows.len()).collect::<Vec<_>>());
            let logged: Vec<usize> = merged
                .iter()
                .filter_map(|s| match s { Source::Log(h) => Some(*h), Source::Row(_) => None })
                .collect();
            let expected_logged: Vec<usize> = (0..headers.len())
                .filter(|&h| !links.has_row(h) && listed(h))
                .collect();
            prop_assert_eq!(logged, expected_logged);
            let standing: Vec<usize> = merged
                .iter()
                .filter_map(|s| match s {
                    Source::Row(r) => links.header_of(*r),
                    Source::Log(h) => Some(*h),
                })
                .collect();
            prop_assert!(standing.windows(2).all(|w| w[0] < w[1]));
        }
    }
}
