//! Toasts for the notifications that need the operator (ERROR, BLOCKED, DECISION, DONE,
//! PLANNING_COMPLETE) while the tab is visible; browser notifications while it is hidden, once
//! the user has allowed them.

use leptos::prelude::*;

use crate::live::{LiveStore, Toast};

#[component]
pub fn Toasts() -> impl IntoView {
    let store = expect_context::<LiveStore>();
    #[cfg(feature = "hydrate")]
    system_notifications(store);
    view! {
        <section class="toasts" aria-live="assertive" aria-label="Notifications">
            <For
                each=move || store.toasts.get()
                key=|toast| toast.notification.id.clone()
                let:toast
            >
                <ToastView store toast />
            </For>
        </section>
    }
}

#[component]
fn ToastView(store: LiveStore, toast: Toast) -> impl IntoView {
    let Toast {
        project,
        notification,
    } = toast;
    let id = notification.id.clone();
    let kind = notification.kind.prefix().to_owned();
    let href = format!("/projects/{project}/notifications");
    let class = format!("toast toast-{}", kind.to_lowercase());
    let kind_attr = kind.clone();
    view! {
        <div
            class=class
            role="alert"
            data-testid="toast"
            data-kind=kind_attr
        >
            <a href=href class="toast-body">
                <strong>{kind}</strong>
                " "
                <span class="toast-project">{project}</span>
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
            &headline(&toast.project, &toast.notification),
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
