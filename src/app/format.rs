//! How numbers, durations and times read on every page.

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

/// An RFC 3339 (or loop-written) timestamp as `YYYY-MM-DD HH:MM:SS` UTC; the text itself when
/// it cannot be read.
pub fn time_label(timestamp: &str) -> String {
    match parse_timestamp(timestamp) {
        Some(seconds) => unix_label(seconds),
        None => timestamp.to_owned(),
    }
}

/// Unix seconds as `YYYY-MM-DD HH:MM UTC`.
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
    fn dates() {
        assert_eq!(unix_label(0.0), "1970-01-01 00:00:00");
        assert_eq!(unix_label(1_709_210_096.0), "2024-02-29 12:34:56");
        assert_eq!(unix_label(-86_400.0), "1969-12-31 00:00:00");
        assert_eq!(time_label("2024-02-29T12:34:56Z"), "2024-02-29 12:34:56");
        assert_eq!(time_label("not a time"), "not a time");
    }
}
