//! The tab's favicon says what needs the operator while the tab sits in the background: a red
//! badge counting failed loops and unread alerts, else a green one counting running loops.

use leptos::prelude::*;

use crate::contract::ralph::status::Status;

/// The statuses of the projects the open page shows (every card on the dashboard, the one
/// project on its page); the pages write it, the favicon reads it.
#[derive(Clone, Copy)]
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
pub struct ShownStatuses(RwSignal<Vec<Status>>);

/// What the favicon's badge says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Badge {
    /// Nothing runs and nothing needs the operator: the plain icon.
    Plain,
    /// Loops running, none failed, no unread alert.
    Running(usize),
    /// Failed loops plus unread alerts.
    Attention(usize),
}

/// The badge for the shown statuses and the alerts still waiting for the operator.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
pub fn badge(statuses: &[Status], unread_alerts: usize) -> Badge {
    let count = |wanted: Status| statuses.iter().filter(|s| **s == wanted).count();
    let attention = count(Status::Error) + unread_alerts;
    if attention > 0 {
        Badge::Attention(attention)
    } else if count(Status::Running) > 0 {
        Badge::Running(count(Status::Running))
    } else {
        Badge::Plain
    }
}

/// The favicon's SVG: the app's icon with the badge in its lower right corner.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
pub fn favicon_svg(badge: Badge) -> String {
    const ICON: &str =
        "<rect width='32' height='32' rx='7' fill='#1f6feb'/><path d='M16 7a9 9 0 1 0 9 9' \
         fill='none' stroke='#fff' stroke-width='3' stroke-linecap='round'/><path d='M25 7v6h-6' \
         fill='none' stroke='#fff' stroke-width='3' stroke-linecap='round' \
         stroke-linejoin='round'/>";
    let (fill, count) = match badge {
        Badge::Plain => {
            return format!(
                "<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 32 32'>{ICON}</svg>"
            )
        }
        Badge::Running(n) => ("#1a7f37", n),
        Badge::Attention(n) => ("#cf222e", n),
    };
    // Two digits at most fit; more reads "9+".
    let label = if count > 9 {
        "9+".to_owned()
    } else {
        count.to_string()
    };
    format!(
        "<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 32 32'>{ICON}<circle cx='22' cy='22' \
         r='10' fill='{fill}' stroke='#fff' stroke-width='2'/><text x='22' y='26.5' \
         text-anchor='middle' font-family='sans-serif' font-weight='700' font-size='13' \
         fill='#fff'>{label}</text></svg>"
    )
}

/// Puts the shown statuses in context and, in the browser, keeps the favicon in step with them
/// and with the toasts that wait for the operator.
pub fn provide_tab_badge() {
    let shown = ShownStatuses(RwSignal::new(Vec::new()));
    provide_context(shown);
    #[cfg(feature = "hydrate")]
    {
        use crate::contract::ralph::notification::Severity;
        let store = expect_context::<crate::live::LiveStore>();
        Effect::new(move |_| {
            let unread = store.toasts.with(|toasts| {
                toasts
                    .iter()
                    .filter(|t| {
                        matches!(t.notification.severity, Severity::Warning | Severity::Error)
                    })
                    .count()
            });
            let badge = shown.0.with(|statuses| badge(statuses, unread));
            set_favicon(&favicon_svg(badge), badge);
        });
    }
}

/// Tells the favicon which statuses the open page shows.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
pub fn show_statuses(statuses: Vec<Status>) {
    if let Some(shown) = use_context::<ShownStatuses>() {
        shown.0.try_set(statuses);
    }
}

/// Points the page's icon link at the SVG (kept as a data address: no request per change).
#[cfg(feature = "hydrate")]
fn set_favicon(svg: &str, badge: Badge) {
    let Ok(Some(link)) = document().query_selector("link[rel=icon]") else {
        return;
    };
    let href = format!(
        "data:image/svg+xml,{}",
        String::from(js_sys::encode_uri_component(svg))
    );
    let _ = link.set_attribute("href", &href);
    let _ = link.set_attribute("data-badge", &format!("{badge:?}"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_and_unread_alerts_outrank_running_loops() {
        use Status::*;
        assert_eq!(badge(&[], 0), Badge::Plain);
        assert_eq!(badge(&[Complete, Stopped], 0), Badge::Plain);
        assert_eq!(badge(&[Running, Running, Complete], 0), Badge::Running(2));
        assert_eq!(badge(&[Running, Error], 0), Badge::Attention(1));
        assert_eq!(badge(&[Running], 3), Badge::Attention(3));
        assert_eq!(badge(&[Error, Error], 1), Badge::Attention(3));
    }

    #[test]
    fn the_icon_carries_the_count_and_caps_it() {
        assert!(!favicon_svg(Badge::Plain).contains("<circle"));
        let running = favicon_svg(Badge::Running(2));
        assert!(running.contains("fill='#1a7f37'") && running.contains(">2</text>"));
        let many = favicon_svg(Badge::Attention(12));
        assert!(many.contains("fill='#cf222e'") && many.contains(">9+</text>"));
        assert!(many.starts_with("<svg") && many.ends_with("</svg>"));
    }
}
