//! Process-wide counters, exposed at `/metrics` in the Prometheus text format.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use axum::{
    http::header,
    response::{IntoResponse, Response},
};

pub struct Metrics {
    pub connections_open: AtomicI64,
    pub connections_total: AtomicU64,
    pub connections_refused: AtomicU64,
    pub subscriptions: AtomicI64,
    pub events_published: AtomicU64,
    pub frames_sent: AtomicU64,
    pub lagged_clients: AtomicU64,
    pub stalled_clients: AtomicU64,
    pub resyncs: AtomicU64,
    pub watcher_errors: AtomicU64,
    pub internal_errors: AtomicU64,
    pub http_connections_open: AtomicI64,
    pub http_connections_refused: AtomicU64,
}

pub static METRICS: Metrics = Metrics {
    connections_open: AtomicI64::new(0),
    connections_total: AtomicU64::new(0),
    connections_refused: AtomicU64::new(0),
    subscriptions: AtomicI64::new(0),
    events_published: AtomicU64::new(0),
    frames_sent: AtomicU64::new(0),
    lagged_clients: AtomicU64::new(0),
    stalled_clients: AtomicU64::new(0),
    resyncs: AtomicU64::new(0),
    watcher_errors: AtomicU64::new(0),
    internal_errors: AtomicU64::new(0),
    http_connections_open: AtomicI64::new(0),
    http_connections_refused: AtomicU64::new(0),
};

pub fn count(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

pub fn adjust(gauge: &AtomicI64, by: i64) {
    gauge.fetch_add(by, Ordering::Relaxed);
}

pub fn render() -> String {
    let m = &METRICS;
    let rows: [(&str, &str, &str, i128); 13] = [
        (
            "loopwatch_connections_open",
            "gauge",
            "WebSocket connections open now",
            m.connections_open.load(Ordering::Relaxed).into(),
        ),
        (
            "loopwatch_connections_total",
            "counter",
            "WebSocket connections accepted",
            m.connections_total.load(Ordering::Relaxed).into(),
        ),
        (
            "loopwatch_connections_refused_total",
            "counter",
            "WebSocket upgrades refused (limits)",
            m.connections_refused.load(Ordering::Relaxed).into(),
        ),
        (
            "loopwatch_subscriptions",
            "gauge",
            "Topic subscriptions held by open connections",
            m.subscriptions.load(Ordering::Relaxed).into(),
        ),
        (
            "loopwatch_events_published_total",
            "counter",
            "Events published to the hub",
            m.events_published.load(Ordering::Relaxed).into(),
        ),
        (
            "loopwatch_frames_sent_total",
            "counter",
            "Event frames sent to clients (replays included)",
            m.frames_sent.load(Ordering::Relaxed).into(),
        ),
        (
            "loopwatch_lagged_clients_total",
            "counter",
            "Times a client fell behind and was told to resync",
            m.lagged_clients.load(Ordering::Relaxed).into(),
        ),
        (
            "loopwatch_stalled_clients_total",
            "counter",
            "Clients dropped because their socket accepted nothing for the write-stall limit",
            m.stalled_clients.load(Ordering::Relaxed).into(),
        ),
        (
            "loopwatch_resyncs_total",
            "counter",
            "Resync frames sent (lag or unusable cursor)",
            m.resyncs.load(Ordering::Relaxed).into(),
        ),
        (
            "loopwatch_watcher_errors_total",
            "counter",
            "File watcher errors and lost events",
            m.watcher_errors.load(Ordering::Relaxed).into(),
        ),
        (
            "loopwatch_internal_errors_total",
            "counter",
            "Sockets closed with 4500 after a failure inside the server",
            m.internal_errors.load(Ordering::Relaxed).into(),
        ),
        (
            "loopwatch_http_connections_open",
            "gauge",
            "TCP connections being served now (upgraded sockets excluded)",
            m.http_connections_open.load(Ordering::Relaxed).into(),
        ),
        (
            "loopwatch_http_connections_refused_total",
            "counter",
            "TCP connections closed at once because the connection cap was reached",
            m.http_connections_refused.load(Ordering::Relaxed).into(),
        ),
    ];
    let mut out = String::new();
    for (name, kind, help, value) in rows {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
        ));
    }
    out
}

pub async fn handler() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        render(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_metric_in_text_format() {
        count(&METRICS.watcher_errors);
        let text = render();
        assert_eq!(
            text.lines().filter(|l| l.starts_with("# TYPE ")).count(),
            13
        );
        assert!(
            text.contains("# TYPE loopwatch_stalled_clients_total counter"),
            "{text}"
        );
        let errors = text
            .lines()
            .find_map(|l| l.strip_prefix("loopwatch_watcher_errors_total "))
            .and_then(|v| v.parse::<u64>().ok());
        assert!(errors.is_some_and(|n| n >= 1), "{text}");
    }
}
