//! The operator's share panel on the dashboard: make a read-only link to some projects, see
//! the links made so far, revoke one (its viewers are signed out at once).

use leptos::prelude::*;

use super::format::unix_label;
use crate::api::{create_share, list_shares, revoke_share, ApiError};
use crate::contract::ralph::stats::parse_timestamp;
use crate::model::access::ShareLink;

/// How long a new link opens, as offered.
const LIFETIMES: [(&str, &str); 4] = [
    ("1d", "1 day"),
    ("7d", "7 days"),
    ("30d", "30 days"),
    ("1h", "1 hour"),
];

/// `projects`: (id, name) of every project the operator may share.
#[component]
pub fn SharePanel(projects: Vec<(String, String)>) -> AnyView {
    let chosen = RwSignal::new(Vec::<String>::new());
    let lifetime = RwSignal::new("7d".to_owned());
    // A signal filled from the browser, not a resource: the panel sits inside the dashboard's
    // `Suspense`, which a loading resource would blank.
    let links = RwSignal::new(None::<Result<Vec<ShareLink>, ApiError>>);
    let create = Action::new(move |_: &()| {
        let projects = chosen.get_untracked();
        let expires = Some(lifetime.get_untracked());
        async move { create_share(projects, expires).await }
    });
    let revoke = Action::new(move |id: &String| {
        let id = id.clone();
        async move { revoke_share(id).await }
    });
    // Loads the list at first and again after each change.
    Effect::new(move |_| {
        create.version().track();
        revoke.version().track();
        leptos::task::spawn_local(async move { links.set(Some(list_shares().await)) });
    });
    let created = move || {
        create.value().get().map(|made| match made {
            Ok(made) => {
                let url = format!("{}{}", origin(), made.path);
                view! {
                    <p class="share-new">
                        "Read-only link (shown once; anyone with it sees these projects until it ends): "
                        <input type="text" readonly prop:value=url data-testid="share-url" aria-label="New read-only link" />
                    </p>
                }
                    .into_any()
            }
            Err(error) => view! { <p class="load-error" role="alert">{error.to_string()}</p> }.into_any(),
        })
    };
    view! {
        <details class="share-panel" data-testid="share-panel">
            <summary>"Share read-only link"</summary>
            <fieldset>
                <legend>"Projects"</legend>
                {projects
                    .into_iter()
                    .map(|(id, name)| {
                        let key = id.clone();
                        view! {
                            <label>
                                <input
                                    type="checkbox"
                                    on:change=move |ev| {
                                        let on = event_target_checked(&ev);
                                        chosen.update(|ids| {
                                            ids.retain(|x| *x != key);
                                            if on {
                                                ids.push(key.clone());
                                            }
                                        });
                                    }
                                />
                                {name}
                                <span class="muted">{format!(" ({id})")}</span>
                            </label>
                        }
                    })
                    .collect_view()}
            </fieldset>
            <label>
                "Opens for "
                <select on:change=move |ev| lifetime.set(event_target_value(&ev))>
                    {LIFETIMES
                        .into_iter()
                        .map(|(value, label)| view! { <option value=value selected=value == "7d">{label}</option> })
                        .collect_view()}
                </select>
            </label>
            <button
                type="button"
                disabled=move || chosen.with(Vec::is_empty) || create.pending().get()
                on:click=move |_| {
                    create.dispatch(());
                }
            >
                "Create link"
            </button>
            {created}
            <ul class="share-links" data-testid="share-links">
                {move || {
                    links
                        .get()
                        .map(|answer| match answer {
                            Ok(list) => list.into_iter().map(|link| view! { <LinkRow link revoke /> }).collect_view().into_any(),
                            Err(error) => view! { <li class="load-error">{error.to_string()}</li> }.into_any(),
                        })
                }}
            </ul>
        </details>
    }
    // Type-erased: the panel inside the dashboard's views nests too deep for the compiler's
    // layout queries otherwise.
    .into_any()
}

#[component]
fn LinkRow(link: ShareLink, revoke: Action<String, Result<ShareLink, ApiError>>) -> impl IntoView {
    let id = link.id.clone();
    let state = match &link.revoked {
        Some(when) => match parse_timestamp(when) {
            Some(seconds) => format!("revoked {} UTC", unix_label(seconds)),
            None => format!("revoked {when}"),
        },
        None => format!("until {} UTC", unix_label(link.expires as f64)),
    };
    let live = link.revoked.is_none();
    view! {
        <li data-testid="share-link">
            <code>{link.id.clone()}</code>
            " " {link.projects.join(", ")} " \u{2013} " <span class="muted">{state}</span>
            <Show when=move || live>
                {
                    let id = id.clone();
                    view! {
                        <button type="button" class="link-button" on:click=move |_| {
                            revoke.dispatch(id.clone());
                        }>"Revoke"</button>
                    }
                }
            </Show>
        </li>
    }
}

/// This page's origin, to make the link absolute (the server knows only the path).
fn origin() -> String {
    #[cfg(feature = "hydrate")]
    {
        window().location().origin().unwrap_or_default()
    }
    #[cfg(not(feature = "hydrate"))]
    {
        String::new()
    }
}
