//! Toasts for the notifications that need the operator (ERROR, BLOCKED, DECISION, DONE,
//! PLANNING_COMPLETE) while the tab is visible; browser notifications while it is hidden, once
//! the user has allowed them.

use leptos::prelude::*;

use crate::contract::ralph::notification::{Notification, NotificationKind, Severity};
use crate::live::{LiveStore, Toast};

/// How many toasts show at once; the rest are counted.
const SHOWN: usize = 5;
/// How long an info or success toast stays before it goes by itself.
#[cfg(feature = "hydrate")]
const INFO_TOAST_MS: u64 = 8_000;

#[component]
pub fn Toasts() -> impl IntoView {
    let store = expect_context::<LiveStore>();
    #[cfg(feature = "hydrate")]
    system_notifications(store);
    // The newest few, newest last; the older ones wait behind the "+N more" line.
    let shown = move || {
        store.toasts.with(|toasts| {
            let skip = toasts.len().saturating_sub(SHOWN);
            toasts[skip..].to_vec()
        })
    };
    let hidden = move || store.toasts.with(|t| t.len().saturating_sub(SHOWN));
    view! {
        <section class="toasts" aria-live="assertive" aria-label="Notifications">
            <Show when=move || { store.toasts.with(|t| t.len() > 1) }>
                <div class="toasts-bar">
                    <Show when=move || { hidden() > 0 }>
                        <span class="toasts-more" data-testid="toasts-more">
                            {move || format!("+{} more", hidden())}
                        </span>
                    </Show>
                    <button
                        type="button"
                        class="link-button toasts-clear"
                        on:click=move |_| store.dismiss_all_toasts()
                    >
                        "Dismiss all"
                    </button>
                </div>
            </Show>
            <For each=shown key=|toast| toast.notification.id.clone() let:toast>
                <ToastView store toast />
            </For>
        </section>
    }
}

#[component]
fn ToastView(store: LiveStore, toast: Toast) -> impl IntoView {
    let Toast {
        project,
        name,
        notification,
    } = toast;
    let id = notification.id.clone();
    let kind = notification.kind.prefix().to_owned();
    let href = format!("/projects/{project}/notifications");
    let severity = severity_name(notification.severity);
    let class = format!("toast toast-{} toast-{severity}", kind.to_lowercase());
    let kind_attr = kind.clone();
    // Info and success go by themselves; what needs the operator (an error, a question) stays
    // until dismissed.
    #[cfg(feature = "hydrate")]
    if goes_by_itself(&notification) {
        let id = id.clone();
        set_timeout(
            move || store.dismiss_toast(&id),
            std::time::Duration::from_millis(INFO_TOAST_MS),
        );
    }
    view! {
        <div
            class=class
            role="alert"
            data-testid="toast"
            data-kind=kind_attr
            data-severity=severity
        >
            <a href=href class="toast-body">
                <strong>{kind}</strong>
                " "
                <span class="toast-project" title=project.clone()>
                    {name}
                </span>
                <span class="toast-message">{notification.message.clone()}</span>
            </a>
            <button
                type="button"
                class="toast-close"
                aria-label="Dismiss"
                on:click=move |_| store.dismiss_toast(&id)
            >
                "\u{00d7}"
            </button>
        </div>
    }
}

/// Whether a toast leaves by itself: news, not a request.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
fn goes_by_itself(notification: &Notification) -> bool {
    matches!(notification.severity, Severity::Info | Severity::Success)
        && notification.kind != NotificationKind::Decision
}

/// The severity as a word for classes and tests.
pub fn severity_name(severity: Severity) -> &'static str {
    match severity {
        Severity::Info => "info",
        Severity::Success => "success",
        Severity::Warning => "warning",
        Severity::Error => "error",
    }
}

/// The text a notification shows in one line.
#[cfg(feature = "hydrate")]
pub fn headline(
    project: &str,
    notification: &crate::contract::ralph::notification::Notification,
) -> String {
    format!("{} \u{2013} {project}", notification.kind.prefix())
}

/// While the tab is hidden, a new toast also becomes a system notification (if allowed).
#[cfg(feature = "hydrate")]
fn system_notifications(store: LiveStore) {
    let shown: StoredValue<Option<String>> = StoredValue::new(None);
    Effect::new(move |_| {
        let Some(toast) = store.toasts.with(|toasts| toasts.last().cloned()) else {
            return;
        };
        let id = Some(toast.notification.id.clone());
        if shown.get_value() == id {
            return;
        }
        shown.set_value(id);
        if crate::live::socket::page_visible() {
            return;
        }
        if web_sys::Notification::permission() != web_sys::NotificationPermission::Granted {
            return;
        }
        let options = web_sys::NotificationOptions::new();
        options.set_body(&toast.notification.message);
        options.set_tag(&toast.notification.id);
        let _ = web_sys::Notification::new_with_options(
            &headline(&toast.name, &toast.notification),
            &options,
        );
    });
}

/// A button that asks for permission to show browser notifications (hidden once decided).
#[component]
pub fn NotificationPermission() -> impl IntoView {
    let asked = RwSignal::new(true);
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| {
        asked.set(web_sys::Notification::permission() != web_sys::NotificationPermission::Default);
    });
    let ask = move |_| {
        #[cfg(feature = "hydrate")]
        if let Ok(promise) = web_sys::Notification::request_permission() {
            leptos::task::spawn_local(async move {
                let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
                asked.set(true);
            });
        }
    };
    view! {
        <Show when=move || !asked.get()>
            <button type="button" class="link-button" on:click=ask>
                "Notify me when this tab is hidden"
            </button>
        </Show>
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::ralph::notification::parse_notification;

    #[test]
    fn news_goes_by_itself_and_requests_stay() {
        let by_itself =
            |text: &str| goes_by_itself(&parse_notification(text.as_bytes()).expect("parses"));
        assert!(by_itself("DONE: all tasks complete"));
        assert!(by_itself("PLANNING_COMPLETE: plan ready"));
        assert!(!by_itself("DECISION: which db?"));
        assert!(!by_itself("ERROR: tests fail"));
        assert!(!by_itself("BLOCKED: need a key"));
    }
}
