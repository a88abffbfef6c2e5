//! The cron dialect of a Velero Schedule's `spec.schedule`: what robfig/cron's `ParseStandard`
//! accepts. Five fields `minute hour day-of-month month day-of-week` with days of the week
//! counted from 0 = Sunday; the descriptors `@yearly` (`@annually`), `@monthly`, `@weekly`,
//! `@daily` (`@midnight`), `@hourly` and `@every <Go duration>`; an optional `CRON_TZ=<zone>` or
//! `TZ=<zone>` prefix (UTC otherwise, the time zone of Velero's container). When both day fields
//! are restricted a day matches either, as in Vixie cron.
//!
//! The `cron` crate does the field arithmetic; it wants seconds first and counts days of the
//! week from 1 = Sunday, so expressions are translated before it sees them.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Timelike, Utc};
use chrono_tz::Tz;

/// A parsed schedule.
#[derive(Debug, Clone)]
pub enum Cron {
    /// `@every <duration>`: a constant delay, whole seconds, at least one.
    Every(Duration),
    /// Field expressions; a time is due when any of them matches.
    Fields { schedules: Vec<cron::Schedule>, zone: Tz },
}

/// Parses a schedule as Velero does; the error is what follows `invalid schedule: ` in the
/// Schedule's validation errors.
pub fn parse(text: &str) -> Result<Cron, String> {
    let mut expr = text.trim();
    let mut zone = Tz::UTC;
    if let Some(rest) = expr.strip_prefix("CRON_TZ=").or_else(|| expr.strip_prefix("TZ=")) {
        let (name, after) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        zone = name.parse().map_err(|_| format!("provided bad location {name}: unknown time zone {name}"))?;
        expr = after.trim();
    }
    if let Some(every) = expr.strip_prefix("@every ") {
        let d = super::duration::parse(every.trim()).map_err(|e| format!("failed to parse duration {expr}: {e}"))?;
        return Ok(Cron::Every(Duration::from_secs(d.as_secs().max(1))));
    }
    let expanded = match expr {
        "@yearly" | "@annually" => "0 0 1 1 *",
        "@monthly" => "0 0 1 * *",
        "@weekly" => "0 0 * * 0",
        "@daily" | "@midnight" => "0 0 * * *",
        "@hourly" => "0 * * * *",
        other if other.starts_with('@') => return Err(format!("unrecognized descriptor: {other}")),
        other => other,
    };
    let fields: Vec<&str> = expanded.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!("expected exactly 5 fields, found {}: [{}]", fields.len(), fields.join(" ")));
    }
    let (minute, hour, dom, month, dow) = (fields[0], fields[1], fields[2], fields[3], fields[4]);
    let dow = shift_days_of_week(dow)?;
    let star = |f: &str| f == "*" || f == "?";
    let variants = if star(dom) || star(&dow) {
        vec![format!("0 {minute} {hour} {dom} {month} {dow}")]
    } else {
        vec![format!("0 {minute} {hour} {dom} {month} *"), format!("0 {minute} {hour} * {month} {dow}")]
    };
    let schedules = variants
        .iter()
        .map(|v| v.parse::<cron::Schedule>().map_err(|e| first_line(&e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Cron::Fields { schedules, zone })
}

fn first_line(message: &str) -> String {
    message.lines().next().unwrap_or_default().trim().to_string()
}

/// Days of the week from crontab's 0 = Sunday to the `cron` crate's 1 = Sunday; names stay.
fn shift_days_of_week(field: &str) -> Result<String, String> {
    let shift = |n: &str| -> Result<String, String> {
        if !n.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(n.to_string());
        }
        let day: u32 = n.parse().map_err(|_| format!("failed to parse int from {n}"))?;
        if day > 6 {
            return Err(format!("end of range ({day}) above maximum (6): {field}"));
        }
        Ok((day + 1).to_string())
    };
    let mut parts = Vec::new();
    for part in field.split(',') {
        let (base, step) = match part.split_once('/') {
            Some((b, s)) => (b, Some(s)),
            None => (part, None),
        };
        let base = match base.split_once('-') {
            Some((a, b)) => format!("{}-{}", shift(a)?, shift(b)?),
            None if base == "*" || base == "?" => base.to_string(),
            None => shift(base)?,
        };
        parts.push(match step {
            Some(s) => format!("{base}/{s}"),
            None => base,
        });
    }
    Ok(parts.join(","))
}

impl Cron {
    /// The first time strictly after `t` that the schedule fires (robfig's `Next`).
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Cron::Every(d) => {
                let whole = t.with_nanosecond(0).unwrap_or(t);
                Some(whole + TimeDelta::from_std(*d).ok()?)
            }
            Cron::Fields { schedules, zone } => {
                let local = t.with_timezone(zone);
                schedules.iter().filter_map(|s| s.after(&local).next()).map(|n| n.with_timezone(&Utc)).min()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn next(expr: &str, after: &str) -> String {
        parse(expr).unwrap().next_after(at(after)).unwrap().to_rfc3339()
    }

    #[test]
    fn five_fields_fire_as_crontab_says() {
        assert_eq!(next("0 3 * * *", "2026-05-01T10:00:00Z"), "2026-05-02T03:00:00+00:00");
        assert_eq!(next("*/15 * * * *", "2026-05-01T10:07:30Z"), "2026-05-01T10:15:00+00:00");
        assert_eq!(next("@hourly", "2026-05-01T10:00:00Z"), "2026-05-01T11:00:00+00:00");
    }

    #[test]
    fn days_of_week_count_from_sunday_zero() {
        // 2026-05-01 is a Friday.
        assert_eq!(next("0 2 * * 0", "2026-05-01T10:00:00Z"), "2026-05-03T02:00:00+00:00");
        assert_eq!(next("0 2 * * 1-5", "2026-05-01T10:00:00Z"), "2026-05-04T02:00:00+00:00");
        assert_eq!(next("0 2 * * SAT", "2026-05-01T10:00:00Z"), "2026-05-02T02:00:00+00:00");
        assert_eq!(next("0 2 * * */2", "2026-05-01T10:00:00Z"), "2026-05-02T02:00:00+00:00", "Sun, Tue, Thu, Sat");
        assert!(parse("0 2 * * 7").unwrap_err().contains("above maximum (6)"));
    }

    #[test]
    fn both_day_fields_restricted_means_either() {
        // The 15th, or any Monday: Monday 4 May comes first.
        assert_eq!(next("0 0 15 * 1", "2026-05-01T10:00:00Z"), "2026-05-04T00:00:00+00:00");
    }

    #[test]
    fn every_is_a_constant_delay_from_the_whole_second() {
        assert_eq!(next("@every 1h30m", "2026-05-01T10:00:00.700Z"), "2026-05-01T11:30:00+00:00");
        assert!(matches!(parse("@every 200ms").unwrap(), Cron::Every(d) if d == Duration::from_secs(1)));
        assert!(parse("@every soon").unwrap_err().starts_with("failed to parse duration"));
    }

    #[test]
    fn time_zones_and_bad_expressions() {
        assert_eq!(next("CRON_TZ=Europe/Berlin 0 3 * * *", "2026-05-01T10:00:00Z"), "2026-05-02T01:00:00+00:00");
        assert_eq!(parse("0 3 * *").unwrap_err(), "expected exactly 5 fields, found 4: [0 3 * *]");
        assert_eq!(parse("0 0 3 * * *").unwrap_err(), "expected exactly 5 fields, found 6: [0 0 3 * * *]");
        assert!(parse("TZ=Mars/Olympus 0 3 * * *").unwrap_err().contains("unknown time zone"));
        assert!(parse("@fortnightly").is_err());
        assert!(parse("61 * * * *").is_err());
    }
}
