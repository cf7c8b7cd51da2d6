//! Operating the loop from the project page: the loop controls (start form, stop with
//! confirmation, pause and resume), the injection box, and the audit trail. Each is its own
//! component, so a page for viewers can leave them out; the server refuses viewers anyway.
//! Everything refreshes from the stream: another tab's action arrives as a `control` event.

use leptos::prelude::*;

use super::project_view;
use crate::api::{inject, load_control, pause_loop, resume_loop, start_loop, stop_loop, ApiError};
use crate::contract::ralph::status::Status;
use crate::model::control::{ControlState, Injection, StartForm, StartPhase};

/// The control state, refetched on every `control` event and status change of the project.
/// Fetched by the browser only: the server renders the panels empty, and the page never waits
/// for it.
fn control_state() -> LocalResource<Result<ControlState, ApiError>> {
    let view = project_view();
    let id = view.id.get_value();
    let status = Memo::new(move |_| view.detail.with(|d| d.summary.status));
    LocalResource::new(move || {
        view.control.track();
        status.track();
        load_control(id.clone())
    })
}

/// The error of a finished action, as an alert.
pub(super) fn action_error<T: Clone + Send + Sync + 'static>(
    action: Action<(), Result<T, ApiError>>,
) -> impl IntoView {
    move || {
        action
            .value()
            .get()
            .and_then(Result::err)
            .map(|error| view! { <p class="load-error" role="alert">{error.to_string()}</p> })
    }
}

/// Start, stop, pause and resume, with the loop's state as loopwatch sees it.
#[component]
pub fn LoopControls() -> impl IntoView {
    let view = project_view();
    let id = StoredValue::new(view.id.get_value());
    let state = control_state();
    let status = move || view.detail.with(|d| d.summary.status);
    let live = move || matches!(status(), Status::Running | Status::Paused);
    let max = RwSignal::new(String::from("10"));
    let (cli, flags, test, model) = (
        RwSignal::new(String::new()),
        RwSignal::new(String::new()),
        RwSignal::new(String::new()),
        RwSignal::new(String::new()),
    );
    let start = Action::new(move |_: &()| {
        let form = StartForm {
            max_iterations: max.get_untracked().trim().parse().unwrap_or(0),
            cli: cli.get_untracked(),
            flags: flags.get_untracked(),
            test: test.get_untracked(),
            model: model.get_untracked(),
        };
        start_loop(id.get_value(), form)
    });
    let confirming = RwSignal::new(false);
    let stop = Action::new(move |_: &()| stop_loop(id.get_value()));
    let pause = Action::new(move |_: &()| pause_loop(id.get_value()));
    let resume = Action::new(move |_: &()| resume_loop(id.get_value()));
    let field = |label: &'static str, value: RwSignal<String>, name: &'static str| {
        view! {
            <label class="control-field">
                {label}
                <input
                    type="text"
                    name=name
                    prop:value=value
                    on:input=move |ev| value.set(event_target_value(&ev))
                />
            </label>
        }
    };
    let start_phase = move || {
        state
            .get()
            .and_then(Result::ok)
            .and_then(|state| state.start)
            .map(|phase| match phase {
                StartPhase::Starting { pid } => view! {
                    <p class="muted" data-testid="start-phase">{format!("starting\u{2026} (process {pid})")}</p>
                }
                .into_any(),
                StartPhase::Died { code, output, .. } => view! {
                    <div class="load-error" role="alert" data-testid="start-phase">
                        <p>
                            {format!(
                                "The loop ended before it wrote its pid file (exit {}).",
                                code.map_or("by signal".into(), |c| c.to_string()),
                            )}
                        </p>
                        <pre class="file-text">{output}</pre>
                    </div>
                }
                .into_any(),
                StartPhase::Started { .. } => ().into_any(),
            })
    };
    view! {
        <section class="operate loop-controls" aria-label="Loop controls">
            <h2>"Loop"</h2>
            <Show
                when=live
                fallback=move || {
                    view! {
                        <form
                            class="start-form"
                            on:submit=move |ev| {
                                ev.prevent_default();
                                start.dispatch(());
                            }
                        >
                            <label class="control-field">
                                "Max iterations"
                                <input
                                    type="number"
                                    min="0"
                                    name="max_iterations"
                                    prop:value=max
                                    on:input=move |ev| max.set(event_target_value(&ev))
                                />
                            </label>
                            {field("RALPH_CLI", cli, "cli")}
                            {field("RALPH_FLAGS", flags, "flags")}
                            {field("RALPH_TEST", test, "test")}
                            {field("RALPH_MODEL", model, "model")}
                            <button type="submit" disabled=move || start.pending().get()>
                                "Start"
                            </button>
                            <p class="muted">
                                {move || {
                                    state
                                        .get()
                                        .and_then(Result::ok)
                                        .map(|s| match s.command {
                                            Some(command) => format!("Runs {command}"),
                                            None => "No loop command: add ralph.sh or start the server with --loop-command".into(),
                                        })
                                }}
                            </p>
                        </form>
                    }
                }
            >
                <div class="loop-buttons">
                    <Show
                        when=move || status() == Status::Paused
                        fallback=move || {
                            view! {
                                <button type="button" on:click=move |_| { pause.dispatch(()); }>
                                    "Pause"
                                </button>
                            }
                        }
                    >
                        <button type="button" on:click=move |_| { resume.dispatch(()); }>
                            "Resume"
                        </button>
                    </Show>
                    <Show
                        when=move || confirming.get()
                        fallback=move || {
                            view! {
                                <button type="button" on:click=move |_| confirming.set(true)>
                                    "Stop\u{2026}"
                                </button>
                            }
                        }
                    >
                        <span class="confirm" role="group" aria-label="Confirm stop">
                            "Stop the loop (SIGTERM, then SIGKILL)? "
                            <button
                                type="button"
                                class="danger"
                                disabled=move || stop.pending().get()
                                on:click=move |_| {
                                    stop.dispatch(());
                                    confirming.set(false);
                                }
                            >
                                "Yes, stop it"
                            </button>
                            <button type="button" on:click=move |_| confirming.set(false)>
                                "Cancel"
                            </button>
                        </span>
                    </Show>
                </div>
            </Show>
            {start_phase}
            {move || stop.pending().get().then(|| view! { <p class="muted">"stopping\u{2026}"</p> })}
            {move || {
                stop.value().get().and_then(Result::ok).map(|detail| view! {
                    <p class="muted" data-testid="stop-result">{detail}</p>
                })
            }}
            {action_error(start)}
            {action_error(stop)}
            {action_error(pause)}
            {action_error(resume)}
        </section>
    }
    .into_any()
}

/// The injection box: an instruction for the loop's next iteration, shown pending until the
/// loop takes it.
#[component]
pub fn InjectBox() -> impl IntoView {
    let view = project_view();
    let id = StoredValue::new(view.id.get_value());
    let state = control_state();
    let text = RwSignal::new(String::new());
    let send = Action::new(move |_: &()| inject(id.get_value(), text.get_untracked()));
    Effect::new(move |_| {
        if let Some(Ok(())) = send.value().get() {
            text.set(String::new());
        }
    });
    let consumed = move || {
        view.control.with(|change| {
            change.as_ref().and_then(|c| c.injection.clone()).and_then(
                |injection| match injection {
                    Injection::Consumed { iteration } => Some(iteration),
                    Injection::Pending { .. } => None,
                },
            )
        })
    };
    let pending = move || {
        state
            .get()
            .and_then(Result::ok)
            .and_then(|state| state.injection)
            .and_then(|injection| match injection {
                Injection::Pending { text } => Some(text),
                Injection::Consumed { .. } => None,
            })
    };
    view! {
        <section class="operate inject" aria-label="Inject an instruction">
            <h2>"Inject"</h2>
            <form on:submit=move |ev| {
                ev.prevent_default();
                send.dispatch(());
            }>
                <textarea
                    name="inject"
                    rows="3"
                    placeholder="An instruction for the next iteration"
                    prop:value=text
                    on:input=move |ev| text.set(event_target_value(&ev))
                ></textarea>
                <button type="submit" disabled=move || send.pending().get()>
                    "Inject"
                </button>
            </form>
            {move || match (pending(), consumed()) {
                (Some(text), _) => view! {
                    <div data-testid="injection" class="injection pending">
                        <p>"Pending (the loop reads it at its next iteration):"</p>
                        <pre class="file-text">{text}</pre>
                    </div>
                }
                .into_any(),
                (None, Some(iteration)) => view! {
                    <p data-testid="injection" class="injection consumed">
                        {match iteration {
                            Some(n) => format!("Consumed by the loop in iteration {n}."),
                            None => "Consumed by the loop.".to_owned(),
                        }}
                    </p>
                }
                .into_any(),
                (None, None) => ().into_any(),
            }}
            {action_error(send)}
        </section>
    }
    .into_any()
}

/// What operators did to this project, newest first.
#[component]
pub fn AuditTrail() -> impl IntoView {
    let state = control_state();
    view! {
        <section class="operate audit" aria-label="Audit trail">
            <h2>"Audit trail"</h2>
            <Suspense>
                {move || Suspend::new(async move {
                    match state.await {
                        Ok(state) if state.audit.is_empty() => {
                            view! { <p class="muted">"No actions yet."</p> }.into_any()
                        }
                        Ok(state) => {
                            let rows = state
                                .audit
                                .into_iter()
                                .map(|entry| {
                                    view! {
                                        <tr>
                                            <td>{entry.time}</td>
                                            <td>{format!("{} {}", entry.role.as_str(), entry.session)}</td>
                                            <td>{entry.action}</td>
                                            <td>{entry.outcome.as_str()}</td>
                                            <td>{entry.detail}</td>
                                        </tr>
                                    }
                                })
                                .collect_view();
                            view! {
                                <table class="audit-table" data-testid="audit">
                                    <thead>
                                        <tr>
                                            <th>"Time"</th>
                                            <th>"Who"</th>
                                            <th>"Action"</th>
                                            <th>"Result"</th>
                                            <th>"Detail"</th>
                                        </tr>
                                    </thead>
                                    <tbody>{rows}</tbody>
                                </table>
                            }
                                .into_any()
                        }
                        Err(error) => {
                            view! { <p class="load-error">{error.to_string()}</p> }.into_any()
                        }
                    }
                })}
            </Suspense>
        </section>
    }
    .into_any()
}
