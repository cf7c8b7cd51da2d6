//! The sign-in page.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

/// Sign-in: a plain HTML form, so it works before (and without) the WASM client.
#[component]
pub fn LoginPage() -> impl IntoView {
    let query = use_query_map();
    let next = move || query.with(|q| q.get("next").unwrap_or_else(|| "/".to_owned()));
    let failed = move || query.with(|q| q.get("error").is_some());
    view! {
        <Title text="Sign in \u{2013} loopwatch" />
        <main class="page login">
            <form class="login-form" method="post" action="/api/login">
                <h1>"loopwatch"</h1>
                <label for="credential">"Login token"</label>
                <input
                    id="credential"
                    name="credential"
                    type="password"
                    autocomplete="current-password"
                    required
                    autofocus
                />
                <input type="hidden" name="next" value=next />
                <Show when=failed>
                    <p class="login-error" role="alert">"That token is not right."</p>
                </Show>
                <button type="submit">"Sign in"</button>
                <p class="muted hint">
                    "The token is in " <code>"login.token"</code>
                    " in loopwatch's data directory; " <code>"loopwatch login-link"</code>
                    " prints a sign-in link."
                </p>
            </form>
        </main>
    }
}
