//! The Notifications tab: the project's notification history from the store (it survives
//! restarts), newest first, a page at a time ("Load older" follows the page's cursor), with the
//! ones that arrive while the page is open on top. Operators acknowledge a notification; every
//! tab hides it (unless "Show acknowledged" is on).

use std::collections::HashSet;

use leptos::prelude::*;

use super::project_view;
use crate::api::{ack_notification, load_history};
use crate::app::format::When;
use crate::live::ProjectView;
use crate::model::insight::{HistoryPage, NotificationAck, StoredNotification};

#[component]
pub fn NotificationsTab() -> impl IntoView {
    let view = project_view();
    let id = view.id.get_value();
    let first = Resource::new(move || id.clone(), |id| load_history(id, None));
    view! {
        <section class="tab-panel notifications" aria-label="Notifications">
            <Suspense>
                {move || Suspend::new(async move {
                    match first.await {
                        Ok(page) => view! { <History view page /> }.into_any(),
                        Err(error) => {
                            view! { <p class="load-error" role="alert">{error.to_string()}</p> }
                                .into_any()
                        }
                    }
                })}
            </Suspense>
        </section>
    }
}

/// Whether acknowledged notifications are listed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Acknowledged {
    Hidden,
    Shown,
}

#[component]
fn History(view: ProjectView, page: HistoryPage) -> impl IntoView {
    let project = view.id.get_value();
    let act = crate::app::role::can_act();
    let pages = RwSignal::new(page.items);
    let older = RwSignal::new(page.older);
    let acknowledged = RwSignal::new(Acknowledged::Hidden);
    let load_older = {
        let project = project.clone();
        Action::new(move |before: &i64| load_history(project.clone(), Some(*before)))
    };
    Effect::new(move |_| {
        if let Some(Ok(page)) = load_older.value().get() {
            let known: HashSet<i64> = pages.with_untracked(|p| p.iter().map(|s| s.row).collect());
            pages.update(|p| p.extend(page.items.into_iter().filter(|s| !known.contains(&s.row))));
            older.set(page.older);
        }
    });
    let ack = {
        let project = project.clone();
        Action::new(move |id: &String| ack_notification(project.clone(), id.clone()))
    };
    Effect::new(move |_| {
        if let Some(Ok(done)) = ack.value().get() {
            view.acked.update(|acked| {
                acked.insert(done.id.clone(), done);
            });
        }
    });
    // Newest first: what arrived while the tab is open (not yet in a page), then the pages.
    let shown = move || {
        let stored = pages.get();
        let known: HashSet<String> = stored.iter().map(|s| s.notification.id.clone()).collect();
        let live = view.arrived.with(|arrived| {
            arrived
                .iter()
                .filter(|n| !known.contains(&n.id))
                .map(|n| StoredNotification {
                    row: 0,
                    seen: n.timestamp.clone().unwrap_or_default(),
                    notification: n.clone(),
                    ack: None,
                })
                .collect::<Vec<_>>()
        });
        let acked = view.acked.get();
        let every = acknowledged.get() == Acknowledged::Shown;
        live.into_iter()
            .chain(stored)
            .map(|mut item| {
                if item.ack.is_none() {
                    item.ack = acked.get(&item.notification.id).cloned();
                }
                item
            })
            .filter(|item| every || item.ack.is_none())
            .collect::<Vec<_>>()
    };
    let empty = move || shown().is_empty();
    view! {
        <div class="history-tools">
            <label>
                <input
                    type="checkbox"
                    data-testid="show-acknowledged"
                    on:change=move |ev| {
                        acknowledged
                            .set(
                                if event_target_checked(&ev) {
                                    Acknowledged::Shown
                                } else {
                                    Acknowledged::Hidden
                                },
                            )
                    }
                />
                " Show acknowledged"
            </label>
        </div>
        <Show when=empty>
            <p class="empty">"No notifications."</p>
        </Show>
        {move || {
            ack.value()
                .get()
                .and_then(Result::err)
                .map(|error| view! { <p class="load-error" role="alert">{error.to_string()}</p> })
        }}
        <ol class="notification-list">
            <For
                each=shown
                key=|item| (item.notification.id.clone(), item.ack.is_some())
                let:item
            >
                <Item item ack act />
            </For>
        </ol>
        <Show when=move || older.get().is_some()>
            <button
                type="button"
                class="load-older"
                data-testid="load-older"
                disabled=move || load_older.pending().get()
                on:click=move |_| {
                    if let Some(before) = older.get_untracked() {
                        load_older.dispatch(before);
                    }
                }
            >
                "Load older"
            </button>
        </Show>
    }
}

#[component]
fn Item(
    item: StoredNotification,
    ack: Action<String, Result<NotificationAck, crate::api::ApiError>>,
    act: Signal<bool>,
) -> impl IntoView {
    let n = item.notification;
    let id = n.id.clone();
    let acked = item.ack.clone();
    let open = acked.is_none();
    view! {
        <li
            class=format!("notification severity-{:?}", n.severity).to_lowercase()
            class:acknowledged=!open
            data-testid="notification"
            data-id=n.id.clone()
        >
            <header>
                <strong class="kind">{n.kind.prefix().to_owned()}</strong>
                <span class="muted">
                    <When timestamp=n.timestamp.clone().or(Some(item.seen.clone())) />
                </span>
                {n.iteration.map(|i| view! { <span class="muted">"iteration " {i}</span> })}
                {acked
                    .map(|a| {
                        view! {
                            <span class="muted acked" data-testid="acked">
                                "acknowledged by " {a.by} " "
                                <When timestamp=Some(a.at) />
                            </span>
                        }
                    })}
                <Show when=move || open && act.get()>
                    {
                        let id = id.clone();
                        view! {
                            <button
                                type="button"
                                class="ack"
                                data-testid="ack"
                                on:click=move |_| {
                                    ack.dispatch(id.clone());
                                }
                            >
                                "Acknowledge"
                            </button>
                        }
                    }
                </Show>
            </header>
            <p class="message">{n.message.clone()}</p>
            {n.details.clone().map(|d| view! { <pre class="details">{d}</pre> })}
        </li>
    }
}
