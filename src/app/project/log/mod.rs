//! The live log: ANSI colours, search, errors-only filter, jumps between iteration headers, and
//! auto-scroll with a pin. Only the visible lines are in the DOM, so 100,000+ lines stay smooth.

mod download;
mod window;

use leptos::{html::Div, prelude::*};

use super::project_view;
use crate::app::controls::SearchBox;
use crate::contract::ansi::{spans, Style};
use crate::live::log::search::{Lines, Query};
use window::{at_bottom, jump_target, window, Direction};

/// Every line is one fixed-height row (CSS `.log-line` uses the same value).
const LINE_PX: f64 = 18.0;
/// Lines rendered above and below the viewport.
const OVERSCAN: usize = 30;
/// Assumed viewport height until the browser measures the real one (server and first client
/// render agree on it, so hydration matches).
const INITIAL_VIEWPORT_PX: f64 = 540.0;

#[component]
pub fn LogTab() -> impl IntoView {
    let view = project_view();
    let log = view.log;
    let query = RwSignal::new(String::new());
    let errors_only = RwSignal::new(false);
    let pinned = RwSignal::new(true);
    let wrap = RwSignal::new(false);
    // `f64::MAX` reads as "the bottom" until the pane reports a real position.
    let scroll_top = RwSignal::new(f64::MAX);
    let viewport = RwSignal::new(INITIAL_VIEWPORT_PX);
    let pane = NodeRef::<Div>::new();

    // The page arrived with the end of the log; the tab loads the rest (up to the server's cap).
    #[cfg(feature = "hydrate")]
    if log.want_full() {
        let store = expect_context::<crate::live::LiveStore>();
        store.request(crate::live::Refetch::Log(view.id.get_value()));
    }

    // Indices of the shown lines; `None` while no filter is on (all lines, no copy).
    let matches = Memo::new(move |_| {
        log.version.track();
        let query = Query::new(&query.get());
        let lines = if errors_only.get() {
            Lines::ErrorsOnly
        } else {
            Lines::All
        };
        (lines == Lines::ErrorsOnly || !query.matches_everything())
            .then(|| log.matching(&query, lines))
    });
    let count = move || {
        log.version.track();
        matches.with(|m| m.as_ref().map_or_else(|| log.len(), Vec::len))
    };
    let visible =
        Memo::new(move |_| window(count(), LINE_PX, scroll_top.get(), viewport.get(), OVERSCAN));

    let scroll_to = move |top: f64| {
        scroll_top.set(top);
        if let Some(pane) = pane.get_untracked() {
            pane.set_scroll_top(top.clamp(0.0, i32::MAX as f64) as i32);
        }
    };
    let to_bottom = move || {
        // Called from a later frame too: the tab may be gone by then.
        let Some(len) =
            matches.try_with_untracked(|m| m.as_ref().map_or_else(|| log.len(), Vec::len))
        else {
            return;
        };
        scroll_to(len as f64 * LINE_PX);
    };
    // Follow new lines while pinned (after the DOM has grown).
    Effect::new(move |_| {
        log.version.track();
        matches.track();
        if pinned.get_untracked() {
            #[cfg(feature = "hydrate")]
            request_animation_frame(to_bottom);
        }
    });
    let on_scroll = move |_| {
        if let Some(el) = pane.get_untracked() {
            let top = f64::from(el.scroll_top());
            let height = f64::from(el.client_height());
            scroll_top.set(top);
            viewport.set(height);
            pinned.set(at_bottom(top, height, count() as f64 * LINE_PX, LINE_PX));
        }
    };
    // Measure the real pane once mounted.
    Effect::new(move |_| {
        if let Some(el) = pane.get() {
            viewport.set(f64::from(el.client_height()).max(LINE_PX));
            if pinned.get_untracked() {
                untrack(to_bottom);
            }
        }
    });

    let jump = move |direction: Direction| {
        let top = (scroll_top.get_untracked().min(count() as f64 * LINE_PX) / LINE_PX)
            .floor()
            .max(0.0) as usize;
        let headers = log.headers();
        let target = matches
            .with_untracked(|m| jump_target(&headers, m.as_deref(), log.len(), top, direction));
        if let Some(position) = target {
            pinned.set(false);
            scroll_to(position as f64 * LINE_PX);
        }
    };

    let rows = move || {
        let w = visible.get();
        log.version.track();
        log.with_lines(|lines| {
            matches.with(|m| {
                (w.first..w.last)
                    .filter_map(|position| {
                        let index = match m {
                            Some(m) => *m.get(position)?,
                            None => position,
                        };
                        let line = lines.get(index)?;
                        let mut style = Style::default();
                        let parts = spans(&line.raw, &mut style)
                            .into_iter()
                            .map(|s| view! { <span class=s.class style=s.style>{s.text}</span> })
                            .collect_view();
                        Some(view! {
                            <div
                                class="log-line"
                                class:log-header=line.header
                                class:log-error=line.error
                                data-line=index + 1
                            >
                                {parts}
                            </div>
                        })
                    })
                    .collect_view()
            })
        })
    };

    view! {
        <section class="tab-panel log" aria-label="Live log">
            <div class="toolbar log-toolbar">
                <SearchBox label="Search the log" value=query />
                <label>
                    <input
                        type="checkbox"
                        prop:checked=errors_only
                        on:change=move |ev| errors_only.set(event_target_checked(&ev))
                    />
                    " Errors only"
                </label>
                <button type="button" on:click=move |_| jump(Direction::Previous) title="Previous iteration header">
                    "\u{2191} Previous iteration"
                </button>
                <button type="button" on:click=move |_| jump(Direction::Next) title="Next iteration header">
                    "\u{2193} Next iteration"
                </button>
                <label>
                    <input
                        type="checkbox"
                        prop:checked=pinned
                        on:change=move |ev| {
                            let on = event_target_checked(&ev);
                            pinned.set(on);
                            if on {
                                to_bottom();
                            }
                        }
                    />
                    " Follow"
                </label>
                <label>
                    <input
                        type="checkbox"
                        prop:checked=wrap
                        on:change=move |ev| wrap.set(event_target_checked(&ev))
                    />
                    " Wrap lines"
                </label>
                // The address is filled in on click, from what the page holds at that moment.
                <a
                    class="button-link"
                    href="#"
                    download="ralph.log"
                    on:click=move |ev| {
                        #[cfg(feature = "hydrate")]
                        set_download(&ev, log.with_lines(download::plain_text));
                        #[cfg(not(feature = "hydrate"))]
                        let _ = ev;
                    }
                >
                    "Download log"
                </a>
                <a
                    class="button-link"
                    href="#"
                    download="ralph-iteration.log"
                    title="The iteration at the top of the pane"
                    on:click=move |ev| {
                        // Where the pane really is (a pane too short to scroll never reports).
                        let scrolled = pane
                            .get_untracked()
                            .map_or_else(|| scroll_top.get_untracked(), |el| f64::from(el.scroll_top()));
                        let top = (scrolled.min(count() as f64 * LINE_PX) / LINE_PX)
                            .floor()
                            .max(0.0) as usize;
                        // The top row's line in the whole log (the pane may show a filter).
                        let top = matches
                            .with_untracked(|m| m.as_ref().and_then(|m| m.get(top).copied()))
                            .unwrap_or(top);
                        let range = download::iteration_range(&log.headers(), log.len(), top);
                        let text = log
                            .with_lines(|lines| download::plain_text(lines.get(range).unwrap_or_default()));
                        #[cfg(feature = "hydrate")]
                        set_download(&ev, text);
                        #[cfg(not(feature = "hydrate"))]
                        let _ = (ev, text);
                    }
                >
                    "Download iteration"
                </a>
                <span class="muted" data-testid="log-count">
                    {move || {
                        let total = {
                            log.version.track();
                            log.len()
                        };
                        match matches.get() {
                            Some(m) => format!("{} of {total} lines", m.len()),
                            None => format!("{total} lines"),
                        }
                    }}
                </span>
            </div>
            <Show when=move || log.truncated.get()>
                <p class="muted">"Showing the end of a long log."</p>
            </Show>
            <div
                class="log-pane ansi"
                class:log-wrap=wrap
                node_ref=pane
                on:scroll=on_scroll
                tabindex="0"
                role="log"
                aria-label="Log lines"
                data-testid="log-pane"
            >
                <div class="log-spacer" style:height=move || format!("{}px", visible.get().total_px)>
                    <div
                        class="log-rows"
                        style:transform=move || format!("translateY({}px)", visible.get().offset_px)
                    >
                        {rows}
                    </div>
                </div>
            </div>
        </section>
    }
}

/// Points the clicked download link at `text` just before the browser follows it.
#[cfg(feature = "hydrate")]
fn set_download(ev: &leptos::ev::MouseEvent, text: String) {
    use wasm_bindgen::JsCast;
    let link = ev
        .current_target()
        .and_then(|target| target.dyn_into::<web_sys::Element>().ok());
    if let Some(link) = link {
        let _ = link.set_attribute("href", &download::data_url(&text));
    }
}
