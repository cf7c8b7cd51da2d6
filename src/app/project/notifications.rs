//! The Notifications tab: the project's notification history, newest first.

use leptos::prelude::*;

use super::project_view;
use crate::app::format::When;

/// Every notification seen since the server started, newest first.
#[component]
pub fn NotificationsTab() -> impl IntoView {
    let view = project_view();
    let notifications = move || view.detail.with(|d| d.notifications.clone());
    view! {
        <section class="tab-panel notifications" aria-label="Notifications">
            <Show when=move || view.detail.with(|d| d.notifications.is_empty())>
                <p class="empty">"No notifications yet."</p>
            </Show>
            <ol class="notification-list">
                <For each=notifications key=|n| n.id.clone() let:n>
                    <li
                        class=format!("notification severity-{:?}", n.severity).to_lowercase()
                        data-testid="notification"
                    >
                        <header>
                            <strong class="kind">{n.kind.prefix().to_owned()}</strong>
                            <span class="muted">
                                <When timestamp=n.timestamp.clone() />
                            </span>
                            {n.iteration.map(|i| view! { <span class="muted">"iteration " {i}</span> })}
                        </header>
                        <p class="message">{n.message.clone()}</p>
                        {n.details.clone().map(|d| view! { <pre class="details">{d}</pre> })}
                    </li>
                </For>
            </ol>
        </section>
    }
}
