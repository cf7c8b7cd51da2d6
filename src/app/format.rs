//! How numbers, durations and times read on every page. Times render in UTC (with the zone
//! shown) on the server, then in the browser's own zone once the page is hydrated.

use leptos::prelude::*;

use crate::contract::ralph::stats::{parse_timestamp, Health};

pub fn iteration_label(iteration: Option<u32>, max: u32) -> String {
    match (iteration, max) {
        (None, _) => "\u{2014}".to_owned(),
        (Some(n), 0) => format!("{n}"),
        (Some(n), max) => format!("{n} / {max}"),
    }
}

/// Thousands of tokens, shown compactly: `850k`, `1.25M`.
pub fn tokens_label(thousands: f64) -> String {
    if !thousands.is_finite() {
        "\u{2014}".to_owned()
    } else if thousands >= 1000.0 {
        format!("{:.2}M", thousands / 1000.0)
    } else {
        format!("{thousands:.0}k")
    }
}

pub fn cost_label(usd: f64) -> String {
    if usd.is_finite() {
        format!("${usd:.2}")
    } else {
        "\u{2014}".to_owned()
    }
}

/// `42s`, `3m 05s`, `2h 10m`.
pub fn duration_label(seconds: f64) -> String {
    if !seconds.is_finite() || seconds < 0.0 {
        return "\u{2014}".to_owned();
    }
    let total = seconds.round() as u64;
    let (hours, minutes, secs) = (total / 3600, total / 60 % 60, total % 60);
    if hours > 0 {
        format!("{hours}h {minutes:02}m")
    } else if minutes > 0 {
        format!("{minutes}m {secs:02}s")
    } else {
        format!("{secs}s")
    }
}

pub fn percent_label(share: Option<f64>) -> String {
    match share {
        Some(share) if share.is_finite() => format!("{:.0}%", share * 100.0),
        _ => "\u{2014}".to_owned(),
    }
}

pub fn health_name(health: Health) -> &'static str {
    match health {
        Health::Failed => "failed",
        Health::Productive => "productive",
        Health::Partial => "partial",
    }
}

/// Unix seconds as `YYYY-MM-DD HH:MM:SS` (UTC).
pub fn unix_label(seconds: f64) -> String {
    if !seconds.is_finite() {
        return "\u{2014}".to_owned();
    }
    let secs = seconds.floor() as i64;
    let days = secs.div_euclid(86_400);
    let rest = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

/// `unix_label` shifted by a zone's offset, with the zone's name: `2024-02-29 04:34:56 PST`.
pub fn zoned_label(seconds: f64, offset_minutes: i32, zone: &str) -> String {
    format!(
        "{} {zone}",
        unix_label(seconds + f64::from(offset_minutes) * 60.0)
    )
}

/// How long ago `seconds` was at `now` (both Unix seconds): `just now`, `3 min ago`, `2 h ago`,
/// `4 d ago`; `in 5 min` for the future (a clock ahead of the browser's).
pub fn relative_label(seconds: f64, now: f64) -> String {
    let delta = now - seconds;
    if !delta.is_finite() {
        return "\u{2014}".to_owned();
    }
    let amount = |span: f64| {
        let span = span.abs();
        if span < 45.0 {
            None
        } else if span < 3_600.0 {
            Some(format!("{} min", (span / 60.0).round().max(1.0)))
        } else if span < 86_400.0 {
            Some(format!("{} h", (span / 3_600.0).floor()))
        } else {
            Some(format!("{} d", (span / 86_400.0).floor()))
        }
    };
    match amount(delta) {
        None => "just now".to_owned(),
        Some(text) if delta > 0.0 => format!("{text} ago"),
        Some(text) => format!("in {text}"),
    }
}

/// Which zone times are shown in: UTC until the browser has hydrated the page (so the server's
/// render and the first client render agree), then the browser's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Zone {
    Utc,
    /// Set in the browser only.
    #[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
    Browser,
}

/// The page's clock for time labels: the zone, and "now" (ticking, for relative times).
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    pub zone: RwSignal<Zone>,
    /// Unix seconds, moved on every half minute in the browser.
    pub now: RwSignal<f64>,
}

/// Puts the page's [`Clock`] in context (once, at the app root).
pub fn provide_clock() {
    let clock = Clock {
        zone: RwSignal::new(Zone::Utc),
        now: RwSignal::new(now_unix()),
    };
    provide_context(clock);
    #[cfg(feature = "hydrate")]
    {
        // Effects run after hydration, so the server's text is hydrated first, then replaced.
        Effect::new(move |_| {
            clock.zone.set(Zone::Browser);
            clock.now.set(now_unix());
        });
        if let Ok(handle) = leptos::leptos_dom::helpers::set_interval_with_handle(
            move || clock.now.set(now_unix()),
            std::time::Duration::from_secs(30),
        ) {
            on_cleanup(move || handle.clear());
        }
    }
}

fn now_unix() -> f64 {
    #[cfg(feature = "hydrate")]
    {
        js_sys::Date::now() / 1000.0
    }
    #[cfg(not(feature = "hydrate"))]
    {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64())
    }
}

/// `seconds` in `zone`, with the zone's name.
pub fn clock_label(seconds: f64, zone: Zone) -> String {
    match zone {
        Zone::Utc => zoned_label(seconds, 0, "UTC"),
        Zone::Browser => {
            let (offset, name) = browser_zone(seconds);
            zoned_label(seconds, offset, &name)
        }
    }
}

/// The browser's offset from UTC (minutes) at `seconds`, and the zone's short name there.
#[cfg(feature = "hydrate")]
fn browser_zone(seconds: f64) -> (i32, String) {
    use wasm_bindgen::JsValue;
    let date = js_sys::Date::new(&JsValue::from_f64(seconds * 1000.0));
    // getTimezoneOffset is UTC minus local time.
    let offset = -(date.get_timezone_offset() as i32);
    let options = js_sys::Object::new();
    let _ = js_sys::Reflect::set(
        &options,
        &JsValue::from_str("timeZoneName"),
        &JsValue::from_str("short"),
    );
    let text = String::from(date.to_locale_time_string_with_options("en-US", &options));
    let name = text.rsplit(' ').next().unwrap_or("").to_owned();
    let name = if name.is_empty() {
        utc_offset_name(offset)
    } else {
        name
    };
    (offset, name)
}

#[cfg(not(feature = "hydrate"))]
fn browser_zone(_seconds: f64) -> (i32, String) {
    (0, "UTC".to_owned())
}

/// `UTC+05:30` for an offset without a short name.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
fn utc_offset_name(offset_minutes: i32) -> String {
    let sign = if offset_minutes < 0 { '-' } else { '+' };
    let minutes = offset_minutes.unsigned_abs();
    format!("UTC{sign}{:02}:{:02}", minutes / 60, minutes % 60)
}

/// How a [`When`] reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Reading {
    /// The date and time in the page's zone.
    #[default]
    Absolute,
    /// "3 min ago", the absolute time in its tooltip.
    Relative,
}

/// A timestamp as a `<time>` element in the page's zone; the text itself when unreadable.
#[component]
pub fn When(
    #[prop(into)] timestamp: Signal<Option<String>>,
    #[prop(optional)] reading: Reading,
) -> impl IntoView {
    let clock = use_context::<Clock>().unwrap_or(Clock {
        zone: RwSignal::new(Zone::Utc),
        now: RwSignal::new(now_unix()),
    });
    let parsed =
        move || timestamp.with(|t| t.as_deref().map(|t| (t.to_owned(), parse_timestamp(t))));
    let absolute = move || match parsed() {
        Some((_, Some(seconds))) => clock_label(seconds, clock.zone.get()),
        Some((text, None)) => text,
        None => "\u{2014}".to_owned(),
    };
    let text = move || match (reading, parsed()) {
        (Reading::Relative, Some((_, Some(seconds)))) => relative_label(seconds, clock.now.get()),
        _ => absolute(),
    };
    view! {
        <time datetime=move || timestamp.get().unwrap_or_default() title=absolute>
            {text}
        </time>
    }
}

/// Days since 1970-01-01 to a calendar date (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert_eq!(iteration_label(None, 5), "\u{2014}");
        assert_eq!(iteration_label(Some(3), 0), "3");
        assert_eq!(iteration_label(Some(3), 50), "3 / 50");
        assert_eq!(tokens_label(850.4), "850k");
        assert_eq!(tokens_label(1250.0), "1.25M");
        assert_eq!(cost_label(3.456), "$3.46");
        assert_eq!(duration_label(42.0), "42s");
        assert_eq!(duration_label(185.0), "3m 05s");
        assert_eq!(duration_label(7_800.0), "2h 10m");
        assert_eq!(duration_label(f64::NAN), "\u{2014}");
        assert_eq!(percent_label(Some(0.756)), "76%");
        assert_eq!(percent_label(None), "\u{2014}");
    }

    #[test]
    fn zoned_and_relative() {
        assert_eq!(
            zoned_label(1_709_210_096.0, 0, "UTC"),
            "2024-02-29 12:34:56 UTC"
        );
        assert_eq!(
            zoned_label(1_709_210_096.0, -480, "PST"),
            "2024-02-29 04:34:56 PST"
        );
        assert_eq!(utc_offset_name(330), "UTC+05:30");
        assert_eq!(utc_offset_name(-150), "UTC-02:30");
        assert_eq!(clock_label(0.0, Zone::Utc), "1970-01-01 00:00:00 UTC");
        assert_eq!(relative_label(1_000.0, 1_010.0), "just now");
        assert_eq!(relative_label(1_000.0, 1_000.0 + 180.0), "3 min ago");
        assert_eq!(relative_label(0.0, 7_300.0), "2 h ago");
        assert_eq!(relative_label(0.0, 3.0 * 86_400.0 + 5.0), "3 d ago");
        assert_eq!(relative_label(600.0, 0.0), "in 10 min");
        assert_eq!(relative_label(f64::NAN, 0.0), "\u{2014}");
    }

    #[test]
    fn dates() {
        assert_eq!(unix_label(0.0), "1970-01-01 00:00:00");
        assert_eq!(unix_label(1_709_210_096.0), "2024-02-29 12:34:56");
        assert_eq!(unix_label(-86_400.0), "1969-12-31 00:00:00");
    }
}
