//! The Overview's activity feed: iterations, task check-offs and notifications, newest first,
//! one line per iteration (its errors folded in), markers coloured by severity.

use leptos::prelude::*;

use super::project_view;
use crate::app::format::{health_name, tokens_label, Reading, When};
use crate::app::toasts::severity_name;
use crate::contract::ralph::notification::{Notification, NotificationKind};
use crate::contract::ralph::stats::parse_timestamp;
use crate::model::api_types::IterationRow;

/// One line of the activity feed.
#[derive(Clone, Debug, PartialEq)]
struct Activity {
    at: Option<f64>,
    /// The timestamp as written (shown in the page's zone).
    when: Option<String>,
    /// The marker's classes.
    kind: String,
    text: String,
}

const FEED_LENGTH: usize = 30;

fn activities(rows: &[IterationRow], notifications: &[Notification]) -> Vec<Activity> {
    let mut feed = Vec::new();
    let mut failed = Vec::new();
    for row in rows {
        let record = &row.record;
        let when = record.end.clone().or_else(|| record.start.clone());
        let at = when.as_deref().and_then(parse_timestamp);
        let is_error = record.status.is_error();
        let mut text = format!(
            "Iteration {} {}",
            record.iteration,
            match &record.status {
                s if s.is_success() => "succeeded",
                _ if is_error => "failed",
                _ => "finished",
            }
        );
        // A failed iteration is one line: its first error, and how many more there were.
        if let Some(first) = record.errors.first() {
            text.push_str(&format!(": {first}"));
            if record.errors.len() > 1 {
                text.push_str(&format!(" (+{} more)", record.errors.len() - 1));
            }
        }
        if let Some(tokens) = record.tokens {
            text.push_str(&format!(", {} tokens", tokens_label(tokens)));
        }
        if is_error || !record.errors.is_empty() {
            failed.push(record.iteration);
        }
        feed.push(Activity {
            at,
            when: when.clone(),
            kind: health_name(row.health).to_owned(),
            text,
        });
        if !record.tasks_completed.is_empty() {
            feed.push(Activity {
                at,
                when,
                kind: "task".to_owned(),
                text: format!("Checked off {}", record.tasks_completed.join(", ")),
            });
        }
    }
    for n in notifications {
        // The loop's ERROR about an iteration the feed already shows as failed adds nothing.
        let about_failed = n.iteration.is_some_and(|i| failed.contains(&i));
        if n.kind == NotificationKind::Error && about_failed {
            continue;
        }
        feed.push(Activity {
            at: n.timestamp.as_deref().and_then(parse_timestamp),
            when: n.timestamp.clone(),
            kind: format!("notification feed-{}", severity_name(n.severity)),
            text: format!("{}: {}", n.kind.prefix(), n.message),
        });
    }
    // Newest first; entries without a time go last, in their original order.
    feed.sort_by(|a, b| match (a.at, b.at) {
        (Some(a), Some(b)) => b.total_cmp(&a),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    });
    feed.truncate(FEED_LENGTH);
    feed
}

#[component]
pub fn ActivityFeed() -> impl IntoView {
    let view = project_view();
    let feed = move || {
        let notifications = view.detail.with(|d| d.notifications.clone());
        view.recent.with(|rows| activities(rows, &notifications))
    };
    view! {
        <section class="activity" aria-label="Activity">
            <h2>"Activity"</h2>
            <ol class="feed">
                {move || {
                    feed()
                        .into_iter()
                        .map(|a| {
                            view! {
                                <li class=format!("feed-item feed-{}", a.kind) data-testid="activity">
                                    <span class="muted when">
                                        <When timestamp=a.when reading=Reading::Relative />
                                    </span>
                                    <span class="what">{a.text}</span>
                                </li>
                            }
                        })
                        .collect_view()
                }}
            </ol>
        </section>
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::ralph::iterations::{parse_line, LineOutcome};
    use crate::contract::ralph::notification::parse_notification;
    use crate::contract::ralph::stats::health;

    fn row(json: serde_json::Value) -> IterationRow {
        let LineOutcome::Record(record) = parse_line(json.to_string().as_bytes()) else {
            panic!("a record: {json}");
        };
        IterationRow {
            health: health(&record),
            record,
            cost_usd: None,
            has_log: true,
            source: Default::default(),
        }
    }

    fn note(text: &str) -> Notification {
        parse_notification(text.as_bytes()).expect("a notification")
    }

    #[test]
    fn a_failed_iteration_is_one_line_and_alerts_are_coloured_by_severity() {
        let failed = row(serde_json::json!({
            "iteration": 5, "max": 10, "end": "2026-11-27T10:05:00Z", "status": "error",
            "tokens": 40.0, "errors": ["mismatched types", "unused import"],
        }));
        let passed = row(serde_json::json!({
            "iteration": 4, "max": 10, "end": "2026-11-27T10:04:00Z", "status": "success",
            "tasks_completed": ["1.1"],
        }));
        let notes = [
            note(
                r#"{"prefix": "ERROR", "message": "tests fail", "iteration": 5, "timestamp": "2026-11-27T10:05:01Z"}"#,
            ),
            note(
                r#"{"prefix": "BLOCKED", "message": "need a key", "timestamp": "2026-11-27T10:06:00Z"}"#,
            ),
            note(
                r#"{"prefix": "PROGRESS", "message": "halfway", "timestamp": "2026-11-27T10:03:00Z"}"#,
            ),
        ];
        let feed = activities(&[failed, passed], &notes);
        let lines: Vec<(&str, &str)> = feed
            .iter()
            .map(|a| (a.kind.as_str(), a.text.as_str()))
            .collect();
        assert_eq!(
            lines,
            [
                ("notification feed-error", "BLOCKED: need a key"),
                (
                    "failed",
                    "Iteration 5 failed: mismatched types (+1 more), 40k tokens"
                ),
                ("productive", "Iteration 4 succeeded"),
                ("task", "Checked off 1.1"),
                ("notification feed-info", "PROGRESS: halfway"),
            ]
        );
    }
}
