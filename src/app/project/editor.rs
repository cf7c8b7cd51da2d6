//! Editing the files the loop reads: `PROMPT.md`, `AGENTS.md`, the plan (only while no loop
//! runs), `specs/*.md` (create, edit, delete with confirmation) and the known keys of
//! `.ralph/config.json`. Every save names the version it was made against; when the agent
//! changed the file meanwhile the server refuses and the editor shows the file as it is now.

use leptos::prelude::*;

use super::project_view;
use crate::api::{
    delete_spec, list_context_files, load_editable, save_config, save_file, ApiError,
};
use crate::model::control::{ConfigForm, EditableFile};

/// The files the editor offers besides the specs.
const FIXED: [&str; 3] = ["PROMPT.md", "AGENTS.md", "IMPLEMENTATION_PLAN.md"];

/// Bumped when another tab (or the server) reports an edit: a clean editor reloads.
fn edits_elsewhere() -> Memo<Option<i64>> {
    let view = project_view();
    Memo::new(move |_| {
        view.control.with(|change| {
            change
                .as_ref()
                .and_then(|c| c.entry.as_ref())
                .filter(|entry| entry.action.starts_with("edit") || entry.action == "delete")
                .map(|entry| entry.id)
        })
    })
}

/// A text editor for one of the loop's files, with a picker.
#[component]
pub fn FileEditor() -> impl IntoView {
    let view = project_view();
    let id = StoredValue::new(view.id.get_value());
    let selected = RwSignal::new(String::from("PROMPT.md"));
    let new_spec = RwSignal::new(String::new());
    let draft = RwSignal::new(String::new());
    let loaded = RwSignal::new(None::<EditableFile>);
    let conflict = RwSignal::new(None::<(Option<String>, String)>);
    let confirm_delete = RwSignal::new(false);
    let edits = edits_elsewhere();
    // Fetched by the browser only: editing needs the page to be live anyway.
    let specs = LocalResource::new(move || {
        edits.track();
        list_context_files(id.get_value())
    });
    let file = LocalResource::new(move || {
        edits.track();
        load_editable(id.get_value(), selected.get())
    });
    // A fetched file replaces the draft unless the operator has unsaved changes.
    Effect::new(move |_| {
        if let Some(Ok(fetched)) = file.get() {
            let dirty = loaded.with_untracked(|l| {
                l.as_ref().is_some_and(|l| {
                    l.name == fetched.name
                        && l.text.as_deref().unwrap_or("") != draft.get_untracked()
                })
            });
            if !dirty {
                draft.set(fetched.text.clone().unwrap_or_default());
                loaded.set(Some(fetched));
                conflict.set(None);
            }
        }
    });
    let save = Action::new(move |_: &()| {
        let (name, version) = loaded
            .get_untracked()
            .map(|l| (l.name, l.version))
            .unwrap_or_default();
        save_file(id.get_value(), name, version, draft.get_untracked())
    });
    Effect::new(move |_| match save.value().get() {
        Some(Ok(version)) => {
            loaded.update(|l| {
                if let Some(l) = l {
                    l.version = version;
                    l.text = Some(draft.get_untracked());
                }
            });
            conflict.set(None);
        }
        Some(Err(ApiError::Changed {
            current, version, ..
        })) => conflict.set(Some((current, version))),
        _ => {}
    });
    let delete = Action::new(move |_: &()| {
        let (name, version) = loaded
            .get_untracked()
            .map(|l| (l.name, l.version))
            .unwrap_or_default();
        delete_spec(id.get_value(), name, version)
    });
    Effect::new(move |_| {
        if let Some(Ok(())) = delete.value().get() {
            loaded.set(None);
            selected.set("PROMPT.md".into());
        }
    });
    let editable = move || loaded.with(|l| l.as_ref().is_some_and(|l| l.editable));
    let is_spec = move || selected.with(|name| name.starts_with("specs/"));
    let options = move || {
        let mut names: Vec<String> = FIXED.iter().map(|n| (*n).to_owned()).collect();
        if let Some(Ok(listed)) = specs.get() {
            names.extend(listed.into_iter().filter(|n| n.starts_with("specs/")));
        }
        let current = selected.get();
        if !names.contains(&current) {
            names.push(current.clone());
        }
        names
            .into_iter()
            .map(|name| {
                let chosen = name == current;
                view! { <option value=name.clone() selected=chosen>{name.clone()}</option> }
            })
            .collect_view()
    };
    view! {
        <section class="operate editor" aria-label="Edit the loop's files">
            <h2>"Edit"</h2>
            <div class="editor-picker">
                <label>
                    "File "
                    <select
                        name="file"
                        on:change=move |ev| {
                            loaded.set(None);
                            selected.set(event_target_value(&ev));
                        }
                    >
                        {options}
                    </select>
                </label>
                <label>
                    " New spec "
                    <input
                        type="text"
                        name="new-spec"
                        placeholder="name.md"
                        prop:value=new_spec
                        on:input=move |ev| new_spec.set(event_target_value(&ev))
                    />
                </label>
                <button
                    type="button"
                    on:click=move |_| {
                        let name = new_spec.get_untracked().trim().to_owned();
                        if !name.is_empty() {
                            loaded.set(None);
                            selected.set(format!("specs/{name}"));
                            new_spec.set(String::new());
                        }
                    }
                >
                    "Create"
                </button>
            </div>
            {move || {
                (!editable() && loaded.with(Option::is_some))
                    .then(|| view! { <p class="muted">"Read-only while the loop runs (the agent ticks it)."</p> })
            }}
            <textarea
                name="editor"
                data-testid="editor"
                rows="16"
                prop:value=draft
                prop:readOnly=move || !editable()
                on:input=move |ev| draft.set(event_target_value(&ev))
            ></textarea>
            <div class="editor-actions">
                <button
                    type="button"
                    disabled=move || !editable() || save.pending().get()
                    on:click=move |_| {
                        save.dispatch(());
                    }
                >
                    "Save"
                </button>
                <Show when=is_spec>
                    <Show
                        when=move || confirm_delete.get()
                        fallback=move || {
                            view! {
                                <button type="button" on:click=move |_| confirm_delete.set(true)>
                                    "Delete\u{2026}"
                                </button>
                            }
                        }
                    >
                        <span class="confirm">
                            {move || format!("Delete {}? ", selected.get())}
                            <button
                                type="button"
                                class="danger"
                                on:click=move |_| {
                                    delete.dispatch(());
                                    confirm_delete.set(false);
                                }
                            >
                                "Yes, delete"
                            </button>
                            <button type="button" on:click=move |_| confirm_delete.set(false)>
                                "Cancel"
                            </button>
                        </span>
                    </Show>
                </Show>
                {move || {
                    matches!(save.value().get(), Some(Ok(_)))
                        .then(|| view! { <span class="muted" data-testid="saved">"Saved."</span> })
                }}
            </div>
            {move || {
                conflict
                    .get()
                    .map(|(current, version)| {
                        let text = current.clone().unwrap_or_default();
                        view! {
                            <div class="load-error" role="alert" data-testid="conflict">
                                <p>"The file changed since you opened it; nothing was saved. It is now:"</p>
                                <pre class="file-text">{current.unwrap_or_else(|| "(deleted)".into())}</pre>
                                <button
                                    type="button"
                                    on:click=move |_| {
                                        draft.set(text.clone());
                                        loaded.update(|l| {
                                            if let Some(l) = l {
                                                l.version = version.clone();
                                                l.text = Some(text.clone());
                                            }
                                        });
                                        conflict.set(None);
                                    }
                                >
                                    "Take this version"
                                </button>
                            </div>
                        }
                    })
            }}
            {move || {
                save.value()
                    .get()
                    .and_then(Result::err)
                    .filter(|e| !matches!(e, ApiError::Changed { .. }))
                    .map(|error| view! { <p class="load-error" role="alert">{error.to_string()}</p> })
            }}
            {super::operate::action_error(delete)}
        </section>
    }
    .into_any()
}

/// The known keys of `.ralph/config.json` as a form; the other keys are kept by the server.
#[component]
pub fn ConfigEditor() -> impl IntoView {
    let view = project_view();
    let id = StoredValue::new(view.id.get_value());
    let edits = edits_elsewhere();
    let file = LocalResource::new(move || {
        edits.track();
        load_editable(id.get_value(), ".ralph/config.json".into())
    });
    let version = RwSignal::new(String::new());
    let (cli, flags, max, test) = (
        RwSignal::new(String::new()),
        RwSignal::new(String::new()),
        RwSignal::new(String::from("0")),
        RwSignal::new(String::new()),
    );
    Effect::new(move |_| {
        if let Some(Ok(loaded)) = file.get() {
            version.set(loaded.version);
            let value: serde_json::Value = loaded
                .text
                .as_deref()
                .and_then(|text| serde_json::from_str(text).ok())
                .unwrap_or_default();
            let text = |key: &str| value[key].as_str().unwrap_or_default().to_owned();
            cli.set(text("cli"));
            test.set(text("test_command"));
            max.set(value["max_iterations"].as_u64().unwrap_or(0).to_string());
            flags.set(match &value["flags"] {
                serde_json::Value::Array(items) => items
                    .iter()
                    .filter_map(|item| item.as_str())
                    .collect::<Vec<_>>()
                    .join(" "),
                serde_json::Value::String(flags) => flags.clone(),
                _ => String::new(),
            });
        }
    });
    let save = Action::new(move |_: &()| {
        let form = ConfigForm {
            cli: cli.get_untracked(),
            flags: flags.get_untracked(),
            max_iterations: max.get_untracked().trim().parse().unwrap_or(0),
            test_command: test.get_untracked(),
        };
        save_config(id.get_value(), version.get_untracked(), form)
    });
    Effect::new(move |_| {
        if let Some(Ok(new_version)) = save.value().get() {
            version.set(new_version);
        }
    });
    let field = |label: &'static str, value: RwSignal<String>, name: &'static str| {
        view! {
            <label class="control-field">
                {label}
                <input
                    type="text"
                    name=name
                    prop:value=value
                    on:input=move |ev| value.set(event_target_value(&ev))
                />
            </label>
        }
    };
    view! {
        <section class="operate config-editor" aria-label="Loop configuration">
            <h2>".ralph/config.json"</h2>
            <form on:submit=move |ev| {
                ev.prevent_default();
                save.dispatch(());
            }>
                {field("cli", cli, "config-cli")}
                {field("flags", flags, "config-flags")}
                {field("max_iterations", max, "config-max")}
                {field("test_command", test, "config-test")}
                <button type="submit" disabled=move || save.pending().get()>
                    "Save config"
                </button>
            </form>
            {move || {
                save.value().get().map(|result| match result {
                    Ok(_) => view! { <p class="muted">"Saved."</p> }.into_any(),
                    Err(error) => {
                        view! { <p class="load-error" role="alert">{error.to_string()}</p> }.into_any()
                    }
                })
            }}
        </section>
    }
    .into_any()
}
