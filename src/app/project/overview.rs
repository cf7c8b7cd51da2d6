//! Overview: stat tiles, three SVG charts (rendered on the server, updated live), and an activity
//! feed merging iterations, task check-offs, errors and notifications.

use leptos::prelude::*;

use super::feed::ActivityFeed;
use super::project_view;
use crate::app::charts::{bars_to, compact, line_path, ticks, Frame};
use crate::app::format::{cost_label, duration_label, health_name, percent_label, tokens_label};
use crate::contract::ralph::stats::{parse_timestamp, Stats};
use crate::contract::ralph::status::Status;
use crate::model::api_types::IterationRow;

/// Widest bar and timeline cell: a handful of iterations should not look like one slab.
const MAX_BAR_PX: f64 = 28.0;
const MAX_CELL_PX: f64 = 14.0;

/// Iterations the bar charts show.
const CHART_ITERATIONS: usize = 50;

const FRAME: Frame = Frame {
    width: 480.0,
    height: 180.0,
    pad_left: 40.0,
    pad_right: 40.0,
    pad_top: 10.0,
    pad_bottom: 24.0,
};

#[component]
pub fn OverviewTab() -> impl IntoView {
    let view = project_view();
    let stats = move || view.detail.with(|d| d.stats.clone());
    // Oldest first, as charts read left to right.
    let rows = move || {
        view.recent.with(|rows| {
            let mut rows = rows.clone();
            rows.reverse();
            rows
        })
    };
    let spent = move || view.detail.with(|d| (d.summary.tokens, d.summary.cost_usd));
    let projection = move || {
        let status = view.detail.with(|d| d.summary.status);
        let per_iteration = view.recent.with(|rows| wall_seconds_per_iteration(rows));
        view.detail
            .with(|d| projection_label(&d.stats, status, per_iteration))
    };
    super::budget::fetch_budgets();
    let act = crate::app::role::can_act();
    let id = view.id.get_value();
    let usage = move || {
        view.detail
            .with(|d| crate::model::insight::usage(&d.summary, d.stats.wall_seconds))
    };
    view! {
        <section class="tab-panel overview" aria-label="Overview">
            <Tiles
                stats=Signal::derive(stats)
                spent=Signal::derive(spent)
                projection=Signal::derive(projection)
            />
            <super::budget::BudgetBar project=id.clone() usage=Signal::derive(usage) />
            <Show when=move || act.get()>
                <super::budget::BudgetForm project=id.clone() />
            </Show>
            <div class="charts">
                <figure class="chart-card">
                    <figcaption>"Tasks and tokens per iteration"</figcaption>
                    {move || per_iteration_chart(&rows())}
                </figure>
                <figure class="chart-card">
                    <figcaption>"Burndown"</figcaption>
                    {move || burndown_chart(&stats())}
                </figure>
                <figure class="chart-card">
                    <figcaption>"Health timeline"</figcaption>
                    {move || health_timeline(&rows())}
                </figure>
            </div>
            <ActivityFeed />
        </section>
    }
}

#[component]
fn Tiles(
    stats: Signal<Stats>,
    spent: Signal<(f64, f64)>,
    projection: Signal<String>,
) -> impl IntoView {
    let tile = move |label: &'static str, value: Box<dyn Fn(&Stats) -> String + Send + Sync>| {
        view! {
            <div class="tile">
                <dt>{label}</dt>
                <dd data-testid=format!("tile-{}", label.to_lowercase().replace(' ', "-"))>
                    {move || stats.with(|s| value(s))}
                </dd>
            </div>
        }
    };
    view! {
        <dl class="tiles">
            // Tokens and cost as the dashboard card counts them (an iteration that has ended in
            // the log but has no row yet included), so the two never disagree.
            <div class="tile">
                <dt>"Tokens"</dt>
                <dd data-testid="tile-tokens">{move || tokens_label(spent.get().0)}</dd>
            </div>
            <div class="tile">
                <dt>"Cost"</dt>
                <dd data-testid="tile-cost">{move || cost_label(spent.get().1)}</dd>
            </div>
            {tile("Iterations", Box::new(|s| s.iterations.to_string()))}
            {tile("Success rate", Box::new(|s| percent_label(s.success_rate)))}
            {tile("Tasks done", Box::new(|s| format!("{} / {}", s.tasks_done, s.tasks_total)))}
            {tile("Errors", Box::new(|s| s.errors.to_string()))}
            {tile(
                "Velocity",
                Box::new(|s| {
                    s.velocity_per_wall_hour
                        .or(s.velocity_per_agent_hour)
                        .map(|v| format!("{v:.1} tasks/h"))
                        .unwrap_or_else(|| "\u{2014}".to_owned())
                }),
            )}
            <div class="tile">
                <dt>"Projected completion"</dt>
                <dd data-testid="tile-projected-completion">{projection}</dd>
            </div>
        </dl>
    }
}

/// Iterations the wall-time pace is measured over.
const PACE_WINDOW: usize = 10;

/// Wall seconds per iteration over the newest iterations of the latest run (`rows` newest
/// first): from the oldest one's start to the newest one's end, over their count. Unlike agent
/// time this counts what the loop does between two agent calls (tests, commits, waits).
fn wall_seconds_per_iteration(rows: &[IterationRow]) -> Option<f64> {
    let run = rows.first()?.record.run;
    let window: Vec<&IterationRow> = rows
        .iter()
        .take_while(|r| r.record.run == run)
        .take(PACE_WINDOW)
        .collect();
    let end = window
        .first()?
        .record
        .end
        .as_deref()
        .and_then(parse_timestamp)?;
    let start = window
        .last()?
        .record
        .start
        .as_deref()
        .and_then(parse_timestamp)?;
    let per = (end - start) / window.len() as f64;
    (per.is_finite() && per > 0.0).then_some(per)
}

/// The projected completion: none for a finished or failed loop; iterations left times the
/// wall time per iteration otherwise.
fn projection_label(stats: &Stats, status: Status, wall_per_iteration: Option<f64>) -> String {
    if status == Status::Complete
        || (stats.tasks_total > 0 && stats.tasks_done >= stats.tasks_total)
    {
        return "done".to_owned();
    }
    let Some(left) = stats.projected_iterations_left else {
        return "\u{2014}".to_owned();
    };
    match status {
        Status::Error => format!("{left} iterations left \u{00b7} stopped by an error"),
        Status::Stopped => format!("{left} iterations left \u{00b7} loop not running"),
        Status::Running | Status::Paused | Status::Complete => match wall_per_iteration {
            Some(per) => format!(
                "{left} iterations \u{00b7} {}",
                duration_label(per * f64::from(left))
            ),
            None => format!("{left} iterations"),
        },
    }
}

fn plot_bottom() -> f64 {
    FRAME.height - FRAME.pad_bottom
}

/// Tokens as bars (left axis), tasks completed as a line (right axis).
fn per_iteration_chart(rows: &[IterationRow]) -> AnyView {
    let start = rows.len().saturating_sub(CHART_ITERATIONS);
    let rows = rows.get(start..).unwrap_or_default();
    if rows.is_empty() {
        return view! { <p class="empty">"No iterations yet."</p> }.into_any();
    }
    let tokens: Vec<f64> = rows
        .iter()
        .map(|r| r.record.tokens.unwrap_or(0.0))
        .collect();
    let tasks: Vec<f64> = rows
        .iter()
        .map(|r| r.record.tasks_completed.len() as f64)
        .collect();
    let token_max = tokens.iter().copied().fold(0.0, f64::max);
    let task_max = tasks.iter().copied().fold(0.0, f64::max).max(1.0);
    let token_ticks = ticks(token_max);
    let task_frame = Frame {
        pad_left: 0.0,
        pad_right: 0.0,
        ..FRAME
    };
    // Bars are scaled to the top tick so they line up with the axis labels.
    let tick_max = token_ticks
        .last()
        .copied()
        .unwrap_or(1.0)
        .max(f64::MIN_POSITIVE);
    let token_bars = bars_to(&tokens, &FRAME, CHART_ITERATIONS, tick_max);
    // Tasks sit at the centre of each bar.
    let points: Vec<(f64, f64)> = token_bars
        .iter()
        .filter_map(|bar| Some((bar.x + bar.width / 2.0, *tasks.get(bar.index)?)))
        .collect();
    let task_line = line_path(&points, (0.0, FRAME.width), (0.0, task_max), &task_frame);
    // A dot per iteration, so a single iteration (no line yet) still shows its tasks.
    let task_dots = points
        .iter()
        .map(|(x, tasks)| {
            let cy = task_frame.y_at(*tasks, (0.0, task_max));
            view! { <circle class="dot-tasks" cx=*x cy=cy r="3" /> }
        })
        .collect_view();
    let plot_height = plot_bottom() - FRAME.pad_top;
    let labels = token_ticks
        .iter()
        .map(|t| {
            let y = plot_bottom() - t / tick_max * plot_height;
            view! {
                <text x=FRAME.pad_left - 4.0 y=y + 4.0 class="axis" text-anchor="end">
                    {if *t == 0.0 { "0".to_owned() } else { format!("{}k", compact(*t)) }}
                </text>
            }
        })
        .collect_view();
    let first = rows.first().map(|r| r.record.iteration).unwrap_or(0);
    let last = rows.last().map(|r| r.record.iteration).unwrap_or(0);
    let bars_view = token_bars
        .into_iter()
        .map(|bar| {
            let title = rows
                .get(bar.index)
                .map(|r| {
                    format!(
                        "iteration {}: {} tokens, {} tasks",
                        r.record.iteration,
                        tokens_label(bar.value),
                        r.record.tasks_completed.len()
                    )
                })
                .unwrap_or_default();
            view! {
                <rect
                    class="bar-tokens"
                    x=bar.x + (bar.width - bar.width.min(MAX_BAR_PX)) / 2.0
                    y=bar.y
                    width=bar.width.min(MAX_BAR_PX)
                    height=bar.height
                >
                    <title>{title}</title>
                </rect>
            }
        })
        .collect_view();
    let label =
        format!("Tokens (bars) and tasks completed (line) for iterations {first} to {last}");
    let body = view! {
        {labels}
            {bars_view}
            <path class="line-tasks" d=task_line fill="none" />
            {task_dots}
            <text x=FRAME.width - FRAME.pad_right + 4.0 y=FRAME.pad_top + 8.0 class="axis">
                {format!("{} tasks", compact(task_max))}
            </text>
            <text x=FRAME.pad_left y=FRAME.height - 6.0 class="axis">
                {format!("#{first}")}
            </text>
            <text x=FRAME.width - FRAME.pad_right y=FRAME.height - 6.0 class="axis" text-anchor="end">
                {format!("#{last}")}
            </text>
    };
    chart_svg(label, "chart-iterations", body)
}

/// Remaining tasks per iteration, with a dashed projection to zero.
fn burndown_chart(stats: &Stats) -> AnyView {
    if stats.burndown.len() < 2 || stats.tasks_total == 0 {
        return view! { <p class="empty">"Not enough iterations for a burndown yet."</p> }
            .into_any();
    }
    // x is the point's place in the full series: the server sends a thinned one.
    let points: Vec<(f64, f64)> = stats
        .burndown
        .iter()
        .map(|p| (f64::from(p.at), f64::from(p.remaining)))
        .collect();
    let last_x = points.last().map(|p| p.0).unwrap_or(0.0);
    let last_y = points.last().map(|p| p.1).unwrap_or(0.0);
    let projection_end = stats
        .projected_iterations_left
        .filter(|left| *left > 0 && last_y > 0.0)
        .map(|left| last_x + f64::from(left));
    let x_max = projection_end.unwrap_or(last_x).max(1.0);
    let y_max = points.iter().map(|p| p.1).fold(1.0, f64::max);
    let actual = line_path(&points, (0.0, x_max), (0.0, y_max), &FRAME);
    let projection = projection_end
        .map(|end| {
            line_path(
                &[(last_x, last_y), (end, 0.0)],
                (0.0, x_max),
                (0.0, y_max),
                &FRAME,
            )
        })
        .unwrap_or_default();
    let label = format!(
        "Burndown: {} of {} tasks remaining{}",
        last_y,
        stats.tasks_total,
        match stats.projected_iterations_left {
            Some(left) => format!(", about {left} iterations to go"),
            None => String::new(),
        },
    );
    let body = view! {
            <text x=FRAME.pad_left - 4.0 y=FRAME.pad_top + 8.0 class="axis" text-anchor="end">
                {compact(y_max)}
            </text>
            <text x=FRAME.pad_left - 4.0 y=plot_bottom() class="axis" text-anchor="end">
                "0"
            </text>
            <line
                class="axis-line"
                x1=FRAME.pad_left
                x2=FRAME.width - FRAME.pad_right
                y1=plot_bottom()
                y2=plot_bottom()
            />
            <path class="line-burndown" d=actual fill="none" />
            <path class="line-projection" d=projection fill="none" />
    };
    chart_svg(label, "chart-burndown", body)
}

/// The frame of a line or bar chart: `body` drawn in [`FRAME`], described by `label`.
fn chart_svg(label: String, testid: &'static str, body: impl IntoView + 'static) -> AnyView {
    view! {
        <svg
            class="chart"
            viewBox=format!("0 0 {} {}", FRAME.width, FRAME.height)
            role="img"
            aria-label=label
            data-testid=testid
        >
            {body}
        </svg>
    }
    .into_any()
}

/// One cell per recent iteration, coloured by health.
fn health_timeline(rows: &[IterationRow]) -> AnyView {
    if rows.is_empty() {
        return view! { <p class="empty">"No iterations yet."</p> }.into_any();
    }
    let count = rows.len();
    let width = (FRAME.width / count.max(1) as f64).min(MAX_CELL_PX);
    let cells = rows
        .iter()
        .enumerate()
        .map(|(i, row)| {
            let name = health_name(row.health);
            view! {
                <rect
                    class=format!("cell health-{name}")
                    x=i as f64 * width
                    y=0
                    width=(width - 1.0).max(0.5)
                    height=24
                >
                    <title>{format!("iteration {}: {name}", row.record.iteration)}</title>
                </rect>
            }
        })
        .collect_view();
    view! {
        <svg
            class="chart timeline"
            viewBox=format!("0 0 {} 24", FRAME.width)
            role="img"
            aria-label=format!("Health of the last {count} iterations")
            data-testid="chart-health"
        >
            {cells}
        </svg>
    }
    .into_any()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::ralph::iterations::{parse_line, LineOutcome};
    use crate::contract::ralph::plan::parse_plan;
    use crate::contract::ralph::stats::{compute_stats, health};

    fn row(n: u32, run: u32, start: &str, end: &str) -> IterationRow {
        let json = serde_json::json!({
            "iteration": n, "max": 20, "start": start, "end": end, "duration_seconds": 1,
            "status": "success", "tasks_completed": [format!("1.{n}")],
        });
        let LineOutcome::Record(mut record) = parse_line(json.to_string().as_bytes()) else {
            panic!("a record");
        };
        record.run = run;
        IterationRow {
            health: health(&record),
            record,
            cost_usd: None,
            has_log: true,
            source: Default::default(),
        }
    }

    #[test]
    fn projection_counts_wall_time_and_not_for_finished_or_failed_loops() {
        // Newest first; each iteration's agent took 1 s, but they come 7 s apart.
        let rows = [
            row(3, 2, "2026-11-27T10:00:14Z", "2026-11-27T10:00:21Z"),
            row(2, 2, "2026-11-27T10:00:07Z", "2026-11-27T10:00:14Z"),
            row(1, 2, "2026-11-27T10:00:00Z", "2026-11-27T10:00:07Z"),
            row(9, 1, "2026-11-20T10:00:00Z", "2026-11-20T10:00:01Z"),
        ];
        assert_eq!(wall_seconds_per_iteration(&rows), Some(7.0));
        assert_eq!(wall_seconds_per_iteration(&[]), None);
        let plan = parse_plan("## P\n- [x] 1.1: a\n- [ ] 1.2: b\n- [ ] 1.3: c\n");
        let records: Vec<_> = rows[..3].iter().rev().map(|r| r.record.clone()).collect();
        let stats = compute_stats(&records, &plan, 0.01, 0.0);
        let left = stats.projected_iterations_left.expect("a pace");
        let per = wall_seconds_per_iteration(&rows);
        assert_eq!(
            projection_label(&stats, Status::Running, per),
            format!(
                "{left} iterations \u{00b7} {}",
                duration_label(7.0 * f64::from(left))
            )
        );
        assert_eq!(projection_label(&stats, Status::Complete, per), "done");
        assert!(projection_label(&stats, Status::Error, per).ends_with("stopped by an error"));
        assert!(projection_label(&stats, Status::Stopped, per).ends_with("loop not running"));
    }
}
