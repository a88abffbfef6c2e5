//! How the API server writes a duration in a table cell (`duration.HumanDuration`): two or three
//! significant figures, so `45s`, `5m2s`, `47m`, `3h4m`, `20h`, `2d3h`, `45d`, `3y12d`.

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::Value;

/// `<unknown>`: what a cell says for a timestamp that was never set.
pub(super) const UNKNOWN: &str = "<unknown>";

/// A duration as `HumanDuration` writes it. Up to a second in the future reads `0s` (clock skew);
/// further than that reads `<invalid>`.
pub(super) fn human(d: TimeDelta) -> String {
    // Go truncates towards zero when it turns the duration into whole seconds; so does num_seconds.
    let seconds = d.num_seconds();
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 120 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        return with_remainder(minutes, "m", seconds % 60, "s");
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        return with_remainder(hours, "h", minutes % 60, "m");
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    let days = hours / 24;
    if hours < 24 * 8 {
        return with_remainder(days, "d", hours % 24, "h");
    }
    if hours < 24 * 365 * 2 {
        return format!("{days}d");
    }
    if hours < 24 * 365 * 8 {
        return with_remainder(days / 365, "y", days % 365, "d");
    }
    format!("{}y", days / 365)
}

/// `3h4m`, or `3h` when the smaller unit is zero.
fn with_remainder(big: i64, big_unit: &str, small: i64, small_unit: &str) -> String {
    if small == 0 { format!("{big}{big_unit}") } else { format!("{big}{big_unit}{small}{small_unit}") }
}

/// Parses an RFC 3339 timestamp (`metav1.Time` or `metav1.MicroTime`).
pub(super) fn parse(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text).ok().map(|t| t.with_timezone(&Utc))
}

/// The timestamp in a JSON field; `None` when it is absent, null or empty (Go's zero time).
pub(super) fn time(v: &Value) -> Option<DateTime<Utc>> {
    v.as_str().filter(|s| !s.is_empty()).and_then(parse)
}

/// `translateTimestampSince`: how long ago the timestamp in `v` was, or `<unknown>` when unset.
pub(super) fn since(v: &Value, now: DateTime<Utc>) -> String {
    time(v).map_or_else(|| UNKNOWN.into(), |t| human(now - t))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn secs(s: i64) -> String {
        human(TimeDelta::seconds(s))
    }

    #[test]
    fn ages_are_written_with_two_or_three_significant_figures() {
        assert_eq!(secs(0), "0s");
        assert_eq!(secs(45), "45s");
        assert_eq!(secs(119), "119s", "seconds are kept up to two minutes");
        assert_eq!(secs(5 * 60 + 2), "5m2s");
        assert_eq!(secs(5 * 60), "5m");
        assert_eq!(secs(47 * 60 + 59), "47m");
        assert_eq!(secs(179 * 60), "179m", "minutes are kept up to three hours");
        assert_eq!(secs(3 * 3600 + 4 * 60 + 30), "3h4m");
        assert_eq!(secs(20 * 3600 + 59 * 60), "20h");
        assert_eq!(secs(2 * 86400 + 3 * 3600), "2d3h");
        assert_eq!(secs(7 * 86400), "7d");
        assert_eq!(secs(45 * 86400 + 5 * 3600), "45d");
        assert_eq!(secs(3 * 365 * 86400 + 12 * 86400), "3y12d");
        assert_eq!(secs(9 * 365 * 86400), "9y");
    }

    #[test]
    fn the_future_is_zero_within_a_second_and_invalid_beyond() {
        assert_eq!(human(TimeDelta::milliseconds(-1500)), "0s");
        assert_eq!(secs(-2), "<invalid>");
    }

    #[test]
    fn unset_timestamps_are_unknown() {
        let now = parse("2024-05-01T12:00:00Z").unwrap();
        assert_eq!(since(&json!("2024-05-01T11:55:00Z"), now), "5m");
        assert_eq!(since(&json!("2024-05-01T11:59:59.250000Z"), now), "0s", "MicroTime parses too");
        assert_eq!(since(&Value::Null, now), "<unknown>");
        assert_eq!(since(&json!(""), now), "<unknown>");
    }
}
