//! The stream status indicator: what the live stream is doing when it is not simply live.

use leptos::prelude::*;

use crate::live::{now_ms, retry_now, LiveStore, StreamState};

/// Hidden while the stream is live (or first connecting); says what it is doing otherwise,
/// counting down to the next attempt, with a Retry button.
#[component]
pub fn StreamStatus() -> impl IntoView {
    let store = expect_context::<LiveStore>();
    let state = store.stream;
    // Ticks once a second while not live, so the countdown moves.
    let now = RwSignal::new(now_ms());
    #[cfg(feature = "hydrate")]
    {
        use leptos::leptos_dom::helpers::set_interval_with_handle;
        let handle = set_interval_with_handle(
            move || {
                if state.get_untracked() != StreamState::Live {
                    now.set(now_ms());
                }
            },
            std::time::Duration::from_millis(500),
        );
        if let Ok(handle) = handle {
            on_cleanup(move || handle.clear());
        }
    }
    // The clock is read when the text renders; `now` only makes it render again. Counting from
    // the last tick instead showed "next in 83 s" for a moment after a page had been live for a
    // while (the tick stops while live).
    let text = move || {
        now.track();
        state.get().describe(now_ms())
    };
    let waiting = move || {
        matches!(
            state.get(),
            StreamState::Reconnecting { .. } | StreamState::Polling { .. }
        )
    };
    view! {
        <div
            class="connection"
            data-state=move || state.get().name()
            // The first attempt is not worth a banner; a failed one is.
            hidden=move || matches!(state.get(), StreamState::Live | StreamState::Connecting)
        >
            // Screen readers hear state changes, not the countdown ticking every second.
            <span class="visually-hidden" role="status" aria-live="polite">
                {move || announcement(state.get())}
            </span>
            <span class="connection-text" aria-hidden="true">
                {text}
            </span>
            <Show when=waiting>
                <button type="button" class="retry" on:click=move |_| retry_now()>
                    "Retry now"
                </button>
            </Show>
        </div>
    }
}

fn announcement(state: StreamState) -> &'static str {
    match state {
        StreamState::Live | StreamState::Connecting => "",
        StreamState::Reconnecting { .. } => "Connection lost; reconnecting",
        StreamState::Polling { .. } => "Live updates unavailable - polling",
        StreamState::SignedOut => "Signed out",
        StreamState::Offline => "Offline",
    }
}
