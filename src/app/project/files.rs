//! The Files tab: the project's context files (`AGENTS.md`, `PROMPT.md`, `specs/*.md`).

use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

use super::project_view;
use crate::api::{list_context_files, load_context_file};
use crate::contract::percent::encode_query_value;

/// AGENTS.md, PROMPT.md and the specs, shown as text (never as HTML).
#[component]
pub fn FilesTab() -> impl IntoView {
    // Viewers (share links) read the files; only operators get the editors.
    let act = crate::app::role::can_act();
    let view = project_view();
    let id = view.id.get_value();
    let query = use_query_map();
    // Both reload when the server says a context file changed on disk.
    let changed = view.files_changed;
    let files = Resource::new(
        {
            let id = id.clone();
            move || (id.clone(), changed.get())
        },
        |(id, _)| list_context_files(id),
    );
    let selected = move || query.with(|q| q.get("file"));
    let content = Resource::new(
        move || (id.clone(), selected(), changed.get()),
        |(id, name, _)| async move {
            match name {
                Some(name) => load_context_file(id, name).await.map(Some),
                None => Ok(None),
            }
        },
    );
    let base = format!("/projects/{}/files", view.id.get_value());
    view! {
        <section class="tab-panel files" aria-label="Context files">
            <Suspense>
                {move || {
                    let base = base.clone();
                    Suspend::new(async move {
                        let names = match files.await {
                            Ok(names) => names,
                            Err(error) => {
                                return view! { <p class="load-error">{error.to_string()}</p> }
                                    .into_any();
                            }
                        };
                        if names.is_empty() {
                            return view! {
                                <p class="empty">"No AGENTS.md, PROMPT.md or specs in this project."</p>
                            }
                                .into_any();
                        }
                        let links = names
                            .into_iter()
                            .map(|name| {
                                let href = format!("{base}?file={}", encode_query_value(&name));
                                let current = selected().as_deref() == Some(name.as_str());
                                view! {
                                    <li>
                                        <a href=href aria-current=current.then_some("page")>
                                            {name}
                                        </a>
                                    </li>
                                }
                            })
                            .collect_view();
                        view! { <ul class="file-list">{links}</ul> }.into_any()
                    })
                }}
            </Suspense>
            <Suspense>
                {move || Suspend::new(async move {
                    match content.await {
                        Ok(Some(file)) => {
                            view! {
                                <article class="file">
                                    <h2>{file.name}</h2>
                                    <pre class="file-text" data-testid="file-text">{file.text}</pre>
                                    {file
                                        .truncated
                                        .then(|| view! { <p class="muted">"(cut: the file is longer)"</p> })}
                                </article>
                            }
                                .into_any()
                        }
                        Ok(None) => view! { <p class="muted">"Pick a file."</p> }.into_any(),
                        Err(error) => {
                            view! { <p class="load-error" role="alert">{error.to_string()}</p> }
                                .into_any()
                        }
                    }
                })}
            </Suspense>
            <Show when=move || act.get()>
                // Their own boundary, so the editors' fetches never re-create the page.
                {view! {
                    <Transition>
                        <super::editor::FileEditor />
                        <super::editor::ConfigEditor />
                    </Transition>
                }
                    .into_any()}
            </Show>
        </section>
    }
}
