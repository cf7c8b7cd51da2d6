//! Budgets on the page: a progress bar of the measure furthest into its limit (on the card and
//! the overview), and the operator's form that sets the limits and the pause at 100 %.

use leptos::prelude::*;

use crate::api::set_budget;
use crate::contract::ralph::budget::{amount, furthest, spent, AtLimit, Budget, Level, Usage};
use crate::live::LiveStore;

/// Fetches every budget the tab may see into the store (in the browser; the stream keeps them
/// current after that).
pub fn fetch_budgets() {
    #[cfg(feature = "hydrate")]
    {
        let store = expect_context::<LiveStore>();
        leptos::task::spawn_local(async move {
            if let Ok(budgets) = crate::api::load_budgets().await {
                store.set_budgets(budgets);
            }
        });
    }
}

/// The budget's bar: the measure furthest into its limit; nothing when no limit is set.
#[component]
pub fn BudgetBar(project: String, #[prop(into)] usage: Signal<Usage>) -> impl IntoView {
    let store = expect_context::<LiveStore>();
    let worst = move || furthest(&spent(&store.budget(&project), &usage.get()));
    move || {
        worst().map(|s| {
            let percent = (s.share * 100.0).floor();
            let level = match Level::of(s.share) {
                Level::Under => "under",
                Level::Warning => "warning",
                Level::Exceeded => "exceeded",
            };
            let label = format!(
                "Budget: {} {percent}% ({} of {})",
                s.measure.label(),
                amount(s.measure, s.used),
                amount(s.measure, s.limit)
            );
            let text = label.clone();
            view! {
                <div
                    class=format!("budget-bar budget-{level}")
                    data-testid="budget-bar"
                    data-level=level
                    role="progressbar"
                    aria-label=label
                    aria-valuemin="0"
                    aria-valuemax="100"
                    aria-valuenow=percent.min(100.0).to_string()
                >
                    <span class="budget-fill" style=format!("width: {}%", percent.min(100.0)) />
                    <span class="budget-label">{text}</span>
                </div>
            }
        })
    }
}

/// A number field's value: `None` when empty.
fn limit(text: &str) -> Result<Option<f64>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    text.parse::<f64>()
        .map(Some)
        .map_err(|_| format!("{text:?} is not a number"))
}

fn shown(value: Option<f64>) -> String {
    value.map(|v| v.to_string()).unwrap_or_default()
}

/// The operator's form for the project's budget.
#[component]
pub fn BudgetForm(project: String) -> impl IntoView {
    let store = expect_context::<LiveStore>();
    let current = {
        let project = project.clone();
        move || store.budget(&project)
    };
    let cost = RwSignal::new(String::new());
    let tokens = RwSignal::new(String::new());
    let iterations = RwSignal::new(String::new());
    let minutes = RwSignal::new(String::new());
    let pause = RwSignal::new(false);
    // The fields follow the budget as it is known (fetched, or set in another tab).
    Effect::new(move |_| {
        let budget = current();
        cost.set(shown(budget.max_cost_usd));
        tokens.set(shown(budget.max_tokens));
        iterations.set(shown(budget.max_iterations.map(f64::from)));
        minutes.set(shown(budget.max_minutes));
        pause.set(budget.at_limit == AtLimit::Pause);
    });
    let save = Action::new(move |budget: &Budget| set_budget(project.clone(), *budget));
    let problem = RwSignal::new(None::<String>);
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let read = || -> Result<Budget, String> {
            Ok(Budget {
                max_cost_usd: limit(&cost.get_untracked())?,
                max_tokens: limit(&tokens.get_untracked())?,
                max_iterations: limit(&iterations.get_untracked())?
                    .map(|n| n.round().clamp(0.0, f64::from(u32::MAX)) as u32),
                max_minutes: limit(&minutes.get_untracked())?,
                at_limit: if pause.get_untracked() {
                    AtLimit::Pause
                } else {
                    AtLimit::AlertOnly
                },
            })
        };
        match read().and_then(|budget| budget.check().map(|()| budget)) {
            Ok(budget) => {
                problem.set(None);
                save.dispatch(budget);
            }
            Err(why) => problem.set(Some(why)),
        }
    };
    let field = |label: &'static str, testid: &'static str, value: RwSignal<String>| {
        view! {
            <label>
                {label}
                <input
                    type="number"
                    min="0"
                    step="any"
                    data-testid=testid
                    prop:value=move || value.get()
                    on:input=move |ev| value.set(event_target_value(&ev))
                />
            </label>
        }
    };
    let error = move || {
        problem.get().or_else(|| {
            save.value()
                .get()
                .and_then(Result::err)
                .map(|e| e.to_string())
        })
    };
    view! {
        <details class="budget-form" data-testid="budget-form">
            <summary>"Budget"</summary>
            <form on:submit=submit>
                {field("Max cost (USD) ", "budget-cost", cost)}
                {field("Max tokens (thousands) ", "budget-tokens", tokens)}
                {field("Max iterations ", "budget-iterations", iterations)}
                {field("Max wall-clock (minutes) ", "budget-minutes", minutes)}
                <label>
                    <input
                        type="checkbox"
                        data-testid="budget-pause"
                        prop:checked=move || pause.get()
                        on:change=move |ev| pause.set(event_target_checked(&ev))
                    />
                    " Pause the loop at 100 %"
                </label>
                <button type="submit" data-testid="budget-save" disabled=move || save.pending().get()>
                    "Save budget"
                </button>
                {move || error().map(|e| view! { <p class="load-error" role="alert">{e}</p> })}
            </form>
        </details>
    }
}
