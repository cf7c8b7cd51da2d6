//! Form controls more than one page uses.

use leptos::prelude::*;

/// A search field bound to `value`; `label` is its placeholder and accessible name.
#[component]
pub fn SearchBox(label: &'static str, value: RwSignal<String>) -> impl IntoView {
    view! {
        <input
            type="search"
            placeholder=label
            aria-label=label
            prop:value=value
            on:input=move |ev| value.set(event_target_value(&ev))
        />
    }
}
