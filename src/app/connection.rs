use leptos::prelude::*;

use crate::live::{Connection, LiveStore};

/// Hidden while the stream is live; says what it is doing otherwise.
#[component]
pub fn ConnectionIndicator(store: LiveStore) -> impl IntoView {
    let state = store.connection;
    let text = move || match state.get() {
        Connection::Live => String::new(),
        Connection::Connecting => "Connecting\u{2026}".to_owned(),
        Connection::Reconnecting {
            attempt,
            next_in_ms,
        } => format!(
            "Reconnecting\u{2026} (attempt {attempt}, next in {} s)",
            next_in_ms.div_ceil(1000)
        ),
    };
    view! {
        <div
            class="connection"
            role="status"
            aria-live="polite"
            data-state=move || state.get().name()
            hidden=move || state.get() == Connection::Live
        >
            {text}
        </div>
    }
}
