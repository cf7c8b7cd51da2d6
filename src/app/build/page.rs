//! The build tab of a project page: completion and statistics tiles, the checkpoint timeline
//! (rolled-back checkpoints shown as such), the features table, the components, the context
//! files as Markdown with their appended blocks, and the terminal output, all live.

use leptos::prelude::*;

use super::markdown::render;
use crate::contract::buildrunner::{
    checkpoint::Component,
    context::{BlockKind, ContextBlock},
    features::Feature,
    status::WorkStatus,
};
use crate::live::ProjectView;
use crate::model::build::{BuildDetail, CheckpointView, ContextView, OutputEntry, OutputType};

#[component]
pub fn BuildTab() -> impl IntoView {
    let view = expect_context::<ProjectView>();
    let has_build = move || view.detail.with(|d| d.build.is_some());
    let build = Memo::new(move |_| view.detail.with(|d| d.build.clone().unwrap_or_default()));
    view! {
        <section class="tab-panel build" aria-label="Build">
            <Show
                when=has_build
                fallback=|| view! { <p class="empty">"This project has no BuildRunner build (no .buildrunner/ directory)."</p> }
            >
                <Tiles detail=build />
                <Warnings detail=build />
                <div class="build-columns">
                    <Timeline detail=build />
                    <Terminal detail=build />
                </div>
                <Features detail=build />
                <Components detail=build />
                <Context detail=build />
            </Show>
        </section>
    }
}

fn status_name(status: WorkStatus) -> &'static str {
    status.as_str()
}

#[component]
fn Tiles(detail: Memo<BuildDetail>) -> AnyView {
    let tile = move |label: &'static str,
                     value: Box<dyn Fn(&BuildDetail) -> String + Send + Sync>| {
        view! {
            <div class="tile">
                <dt>{label}</dt>
                <dd data-testid=format!("build-tile-{}", label.to_lowercase().replace(' ', "-"))>
                    {move || detail.with(|b| value(b))}
                </dd>
            </div>
        }
    };
    view! {
        <dl class="tiles">
            {tile("Completion", Box::new(|b| format!("{:.1}%", b.card.progress.percent)))}
            {tile("Items done", Box::new(|b| format!("{} / {}", b.card.progress.completed, b.card.progress.total)))}
            {tile("Features", Box::new(|b| format!("{} / {}", b.feature_stats.completed, b.feature_stats.total)))}
            {tile("Components", Box::new(|b| format!("{} / {}", b.component_stats.completed, b.component_stats.total)))}
            {tile("Failed", Box::new(|b| (b.feature_stats.failed + b.component_stats.failed).to_string()))}
            {tile("Phase", Box::new(|b| b.card.phase.clone().unwrap_or_else(|| "\u{2014}".into())))}
            {tile("Checkpoints", Box::new(|b| b.checkpoints.len().to_string()))}
            {tile(
                "Tasks completed",
                Box::new(|b| {
                    current(b)
                        .map(|c| c.overall_progress.tasks_completed.to_string())
                        .unwrap_or_else(|| "\u{2014}".into())
                }),
            )}
        </dl>
        <div
            class="progress"
            role="progressbar"
            aria-label="Build completion"
            aria-valuemin="0"
            aria-valuemax="100"
            aria-valuenow=move || detail.with(|b| b.card.progress.percent)
        >
            <div
                class="progress-bar"
                style:width=move || detail.with(|b| format!("{}%", b.card.progress.percent))
            ></div>
        </div>
    }
    .into_any()
}

fn current(build: &BuildDetail) -> Option<&CheckpointView> {
    build.current.and_then(|at| build.checkpoints.get(at))
}

#[component]
fn Warnings(detail: Memo<BuildDetail>) -> AnyView {
    view! {
        <ul class="warnings">
            {move || {
                detail
                    .with(|b| b.warnings.clone())
                    .into_iter()
                    .map(|warning| view! { <li>{warning}</li> })
                    .collect_view()
            }}
        </ul>
    }
    .into_any()
}

#[component]
fn Timeline(detail: Memo<BuildDetail>) -> AnyView {
    view! {
        <section class="build-timeline" aria-label="Checkpoints">
            <h2>"Checkpoints"</h2>
            <Show when=move || detail.with(|b| b.checkpoints.is_empty())>
                <p class="muted">"No checkpoint yet."</p>
            </Show>
            <ol class="timeline" data-testid="checkpoints">
                {move || {
                    let (checkpoints, at) = detail.with(|b| (b.checkpoints.clone(), b.current));
                    checkpoints
                        .into_iter()
                        .enumerate()
                        .rev()
                        .map(|(index, checkpoint)| checkpoint_item(checkpoint, at == Some(index)))
                        .collect_view()
                }}
            </ol>
        </section>
    }
    .into_any()
}

fn checkpoint_item(checkpoint: CheckpointView, is_current: bool) -> AnyView {
    let rolled = checkpoint.is_rolled_back();
    let state = if rolled {
        "rolled back"
    } else if is_current {
        "current"
    } else {
        checkpoint.status.as_str()
    };
    let description = checkpoint.metadata.description.clone();
    view! {
        <li
            class="checkpoint"
            class:rolled-back=rolled
            class:current=is_current
            data-testid="checkpoint"
            data-checkpoint=checkpoint.id.clone()
        >
            <span class="checkpoint-name">{checkpoint.name.clone()}</span>
            <span class="checkpoint-state" data-testid="checkpoint-state">{state}</span>
            <span class="muted checkpoint-time">
                {checkpoint.timestamp.clone().unwrap_or_default()}
            </span>
            {description.map(|d| view! { <span class="checkpoint-description">{d}</span> })}
            <span class="muted">
                {format!(
                    "{} tasks, {} files",
                    checkpoint.overall_progress.tasks_completed,
                    checkpoint.overall_progress.files_created,
                )}
            </span>
        </li>
    }
    .into_any()
}

#[component]
fn Features(detail: Memo<BuildDetail>) -> AnyView {
    let features = move || {
        detail.with(|b| {
            b.features
                .as_ref()
                .map(|f| f.features.clone())
                .unwrap_or_default()
        })
    };
    view! {
        <section class="build-features" aria-label="Features">
            <h2>"Features"</h2>
            <Show when=move || features().is_empty()>
                <p class="muted">"No features.json, or no features in it."</p>
            </Show>
            <div class="table-wrap">
                <table class="iteration-table" data-testid="features">
                    <thead>
                        <tr>
                            <th>"Feature"</th>
                            <th>"Status"</th>
                            <th>"Priority"</th>
                            <th>"Progress"</th>
                            <th>"Components"</th>
                        </tr>
                    </thead>
                    <tbody>
                        <For each=features key=|f| (f.id.clone(), f.status, f.progress.map(f64::to_bits)) let:feature>
                            <FeatureRow feature />
                        </For>
                    </tbody>
                </table>
            </div>
        </section>
    }
    .into_any()
}

#[component]
fn FeatureRow(feature: Feature) -> AnyView {
    let status = status_name(feature.status);
    view! {
        <tr data-testid="feature" data-feature=feature.id.clone()>
            <td title=feature.description.clone().unwrap_or_default()>{feature.name.clone()}</td>
            <td>
                <span class=format!("work work-{status}") data-testid="feature-status">{status}</span>
            </td>
            <td>{feature.priority.clone().unwrap_or_default()}</td>
            <td>{feature.progress.map(|p| format!("{p:.0}%")).unwrap_or_default()}</td>
            <td class="muted">{feature.components.join(", ")}</td>
        </tr>
    }
    .into_any()
}

#[component]
fn Components(detail: Memo<BuildDetail>) -> AnyView {
    let components = move || detail.with(|b| b.components.clone());
    view! {
        <Show when=move || !components().is_empty()>
            {move || view! {
            <section class="build-components" aria-label="Components">
                <h2>"Components"</h2>
                <div class="table-wrap">
                    <table class="iteration-table" data-testid="components">
                        <thead>
                            <tr>
                                <th>"Component"</th>
                                <th>"Type"</th>
                                <th>"Status"</th>
                                <th>"Progress"</th>
                                <th>"Depends on"</th>
                                <th>"Error"</th>
                            </tr>
                        </thead>
                        <tbody>
                            {move || components().into_iter().map(component_row).collect_view()}
                        </tbody>
                    </table>
                </div>
            </section>
            }.into_any()}
        </Show>
    }
    .into_any()
}

fn component_row(component: Component) -> AnyView {
    let status = status_name(component.status);
    view! {
        <tr data-testid="component">
            <td>{component.name.clone()}</td>
            <td>{component.kind.clone().unwrap_or_default()}</td>
            <td>
                <span class=format!("work work-{status}")>{status}</span>
            </td>
            <td>{component.progress.map(|p| format!("{p:.0}%")).unwrap_or_default()}</td>
            <td class="muted">{component.dependencies.join(", ")}</td>
            <td class="log-error">{component.error.clone().unwrap_or_default()}</td>
        </tr>
    }
    .into_any()
}

#[component]
fn Context(detail: Memo<BuildDetail>) -> AnyView {
    let files = move || detail.with(|b| b.context.clone());
    view! {
        <section class="build-context" aria-label="Context files">
            <h2>"Context"</h2>
            <Show when=move || files().is_empty()>
                <p class="muted">"No context files."</p>
            </Show>
            <For each=files key=|file| (file.name.clone(), file.blocks.len(), file.text.len(), file.blocks.last().map(|b| b.markdown.len())) let:file>
                <ContextFileView file />
            </For>
        </section>
    }
    .into_any()
}

#[component]
fn ContextFileView(file: ContextView) -> AnyView {
    let omitted = file.omitted_blocks;
    view! {
        <details class="context-file" open data-testid="context-file" data-file=file.name.clone()>
            <summary>{file.name.clone()}</summary>
            <div class="markdown" inner_html=render(&file.text)></div>
            {(omitted > 0).then(|| view! { <p class="muted">{format!("{omitted} older blocks not shown")}</p> })}
            {file.blocks.into_iter().map(block_view).collect_view()}
        </details>
    }
    .into_any()
}

fn block_view(block: ContextBlock) -> AnyView {
    let (class, heading) = match &block.kind {
        BlockKind::Output { tag } => ("context-block output", format!("Output: {tag}")),
        BlockKind::Error => (
            "context-block error",
            match &block.source {
                Some(source) => format!("Auto-detected error in {source}"),
                None => "Auto-detected error".to_owned(),
            },
        ),
    };
    view! {
        <section class=class data-testid="context-block">
            <h3>{heading} " " <span class="muted">{block.time.clone().unwrap_or_default()}</span></h3>
            <div class="markdown" inner_html=render(&block.markdown)></div>
        </section>
    }
    .into_any()
}

#[component]
fn Terminal(detail: Memo<BuildDetail>) -> AnyView {
    let output = move || detail.with(|b| b.output.clone());
    view! {
        <section class="build-terminal" aria-label="Terminal output">
            <h2>"Terminal output"</h2>
            <pre class="terminal" data-testid="terminal">
                {move || output().into_iter().map(output_line).collect_view()}
            </pre>
        </section>
    }
    .into_any()
}

fn output_line(entry: OutputEntry) -> AnyView {
    let stderr = entry.output_type == OutputType::Stderr;
    view! {
        <span class="terminal-entry" class:stderr=stderr title=entry.source.clone()>
            {entry.output}
        </span>
    }
    .into_any()
}
