//! When the watcher reads a change: log appends and the like at once (batching only what arrives
//! together), plan and config files at once when their project was quiet and otherwise when the
//! project's window closes (the last write always wins).

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    time::Duration,
};

use tokio::time::Instant;

use crate::server::project::FileKind;

/// Log and JSONL appends, pid and pause changes: forwarded almost at once, batching only what
/// arrives together (never held longer than `FAST.1`).
const FAST: (Duration, Duration) = (Duration::from_millis(1), Duration::from_millis(50));
/// Read at once: the first plan or config change of a quiet project.
const LEADING: (Duration, Duration) = (Duration::ZERO, Duration::ZERO);

/// How long the watcher waits (tests shorten or stretch it).
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// Markdown and config files, which editors and agents write in several steps: a change
    /// within `slow.0` of the project's previous one waits for the window to close (`slow.0`
    /// without changes, never longer than `slow.1`); the first one is read at once.
    pub slow: (Duration, Duration),
    /// How often every project's loop process is checked regardless of events.
    pub liveness: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            slow: (Duration::from_millis(150), Duration::from_millis(500)),
            liveness: Duration::from_secs(2),
        }
    }
}

/// Changes waiting to be read, in one batch per speed class.
#[derive(Default)]
pub(super) struct Batch {
    pub(super) changes: BTreeMap<String, BTreeSet<FileKind>>,
    pub(super) rescan_roots: bool,
    first: Option<Instant>,
    last: Option<Instant>,
}

impl Batch {
    fn deadline(&self, (settle, max): (Duration, Duration)) -> Option<Instant> {
        Some((self.last? + settle).min(self.first? + max))
    }

    pub(super) fn add(&mut self, id: String, kind: FileKind, now: Instant) {
        self.changes.entry(id).or_default().insert(kind);
        self.touch(now);
    }

    pub(super) fn touch(&mut self, now: Instant) {
        self.first.get_or_insert(now);
        self.last = Some(now);
    }
}

pub(super) struct Pending {
    /// Plan and config changes of quiet projects: due at once.
    pub(super) leading: Batch,
    fast: Batch,
    /// Plan and config changes that came within the window of their project's previous one.
    pub(super) slow: Batch,
    /// When each project's last plan or config change came (while its window is open).
    recent: HashMap<String, Instant>,
    window: (Duration, Duration),
}

impl Pending {
    pub(super) fn new(window: (Duration, Duration)) -> Self {
        Pending {
            leading: Batch::default(),
            fast: Batch::default(),
            slow: Batch::default(),
            recent: HashMap::new(),
            window,
        }
    }

    pub(super) fn deadline(&self) -> Option<Instant> {
        [
            self.leading.deadline(LEADING),
            self.fast.deadline(FAST),
            self.slow.deadline(self.window),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Takes the batches whose time has come, the leading edge first (so a quiet project's plan
    /// is read before the log lines that came with it make the project busy).
    pub(super) fn take_due(&mut self, now: Instant) -> Vec<Batch> {
        let mut due = Vec::new();
        if self.leading.deadline(LEADING).is_some_and(|d| d <= now) {
            due.push(std::mem::take(&mut self.leading));
        }
        if self.fast.deadline(FAST).is_some_and(|d| d <= now) {
            due.push(std::mem::take(&mut self.fast));
        }
        if self.slow.deadline(self.window).is_some_and(|d| d <= now) {
            due.push(std::mem::take(&mut self.slow));
        }
        let settle = self.window.0;
        self.recent.retain(|_, at| now < *at + settle);
        due
    }

    pub(super) fn add(&mut self, id: String, kind: FileKind, now: Instant) {
        let slow = match &kind {
            FileKind::Plan | FileKind::Config | FileKind::Context(_) => true,
            FileKind::Build(part) => part.is_rewritten_whole(),
            _ => false,
        };
        if !slow {
            return self.fast.add(id, kind, now);
        }
        // Quiet: no change of this project waits, and its previous one is older than the window.
        let quiet = !self.slow.changes.contains_key(&id)
            && self
                .recent
                .get(&id)
                .is_none_or(|at| now >= *at + self.window.0);
        self.recent.insert(id.clone(), now);
        if quiet {
            self.leading.add(id, kind, now);
        } else {
            self.slow.add(id, kind, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(batch: &Batch) -> Vec<(&str, Vec<&FileKind>)> {
        batch
            .changes
            .iter()
            .map(|(id, kinds)| (id.as_str(), kinds.iter().collect()))
            .collect()
    }

    #[test]
    fn a_quiet_projects_plan_change_is_due_at_once_and_the_rest_of_the_burst_when_it_settles() {
        let window = (Duration::from_millis(150), Duration::from_millis(500));
        let mut pending = Pending::new(window);
        let t0 = Instant::now();
        pending.add("a".into(), FileKind::Plan, t0);
        assert_eq!(
            pending.deadline(),
            Some(t0),
            "the leading edge waits for nothing"
        );
        let due = pending.take_due(t0);
        assert_eq!(due.len(), 1);
        assert_eq!(ids(&due[0]), [("a", vec![&FileKind::Plan])]);

        // The rest of the burst: held while changes keep coming, read once they stop.
        let ms = Duration::from_millis;
        pending.add("a".into(), FileKind::Plan, t0 + ms(10));
        pending.add("a".into(), FileKind::Config, t0 + ms(100));
        assert!(
            pending.take_due(t0 + ms(200)).is_empty(),
            "the window is open"
        );
        assert_eq!(pending.deadline(), Some(t0 + ms(250)));
        let due = pending.take_due(t0 + ms(250));
        assert_eq!(
            ids(&due[0]),
            [("a", vec![&FileKind::Plan, &FileKind::Config])],
            "the final state is always read"
        );

        // Quiet for a whole window: both projects lead (the other one never changed).
        pending.add("a".into(), FileKind::Plan, t0 + ms(260));
        pending.add("b".into(), FileKind::Plan, t0 + ms(260));
        let due = pending.take_due(t0 + ms(260));
        assert_eq!(
            ids(&due[0]),
            [("a", vec![&FileKind::Plan]), ("b", vec![&FileKind::Plan])]
        );
        pending.add("a".into(), FileKind::Plan, t0 + ms(300));
        assert_eq!(pending.deadline(), Some(t0 + ms(450)), "a's window is open");
        assert_eq!(pending.take_due(t0 + ms(450)).len(), 1);
        pending.add("a".into(), FileKind::Plan, t0 + ms(700));
        assert_eq!(pending.deadline(), Some(t0 + ms(700)));
    }

    #[test]
    fn a_burst_that_never_settles_is_read_once_per_max_and_logs_stay_fast() {
        let ms = Duration::from_millis;
        let mut pending = Pending::new((ms(150), ms(500)));
        let t0 = Instant::now();
        pending.add("a".into(), FileKind::Plan, t0);
        pending.take_due(t0);
        for step in 1..=5u32 {
            pending.add("a".into(), FileKind::Plan, t0 + ms(100) * step);
        }
        assert_eq!(pending.deadline(), Some(t0 + ms(600)), "first held + max");
        pending.take_due(t0 + ms(600));
        pending.add("a".into(), FileKind::Log, t0 + ms(700));
        assert_eq!(pending.deadline(), Some(t0 + ms(701)));
    }
}
