//! A BuildRunner project on the dashboard: the kind badges and the build's lines on the card
//! (phase, features done of total, completion bar, last checkpoint).

use leptos::prelude::*;

use crate::model::{ProjectKind, ProjectSummary};

/// One badge per kind of project the directory holds.
#[component]
pub fn KindBadges(summary: RwSignal<ProjectSummary>) -> AnyView {
    view! {
        <span class="kinds">
            {move || {
                summary
                    .with(|s| s.kinds.clone())
                    .into_iter()
                    .map(|kind| {
                        let name = match kind {
                            ProjectKind::Ralph => "ralph",
                            ProjectKind::BuildRunner => "buildrunner",
                        };
                        view! {
                            <span class=format!("kind kind-{name}") data-testid="kind">
                                {kind.label()}
                            </span>
                        }
                    })
                    .collect_view()
            }}
        </span>
    }
    .into_any()
}

/// The build's part of a card; nothing for a project without a build.
#[component]
pub fn BuildCardLines(summary: RwSignal<ProjectSummary>) -> AnyView {
    let build = move || summary.with(|s| s.build.clone());
    let id = move || summary.with(|s| s.id.clone());
    let lines = move || {
        build().map(|build| {
            let percent = build.progress.percent;
            let last = build.last_checkpoint.clone();
            view! {
                <div class="build-lines" data-testid="build">
                    <p class="build-phase">
                        "Phase "
                        <strong data-testid="build-phase">
                            {build.phase.clone().unwrap_or_else(|| "\u{2014}".to_owned())}
                        </strong>
                    </p>
                    <div
                        class="progress"
                        role="progressbar"
                        aria-label="Build completion"
                        aria-valuemin="0"
                        aria-valuemax="100"
                        aria-valuenow=percent
                    >
                        <div class="progress-bar" style:width=format!("{percent}%")></div>
                    </div>
                    <p class="tasks" data-testid="build-features">
                        {format!(
                            "{} / {} features ({percent:.0}% built)",
                            build.features_done,
                            build.features_total,
                        )}
                    </p>
                    <p class="build-checkpoint muted" data-testid="build-checkpoint">
                        {match last {
                            Some(checkpoint) => {
                                let rolled = checkpoint.is_rolled_back();
                                view! {
                                    "Last checkpoint "
                                    <span class:rolled-back=rolled>{checkpoint.name.clone()}</span>
                                    {rolled.then_some(" (rolled back)")}
                                }
                                    .into_any()
                            }
                            None => view! { "No checkpoint yet" }.into_any(),
                        }}
                    </p>
                    <a class="build-link" href=format!("/projects/{}/build", id())>
                        "Build \u{2192}"
                    </a>
                </div>
            }
            .into_any()
        })
    };
    lines.into_any()
}
