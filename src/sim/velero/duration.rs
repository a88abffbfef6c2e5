//! Go durations, as Velero's fields hold them (`ttl: 720h0m0s`, `backupSyncPeriod: 1m`,
//! `@every 1h30m`): a sign, then numbers with units `ns`, `us`/`µs`, `ms`, `s`, `m`, `h`,
//! decimals allowed, as `time.ParseDuration` reads them.

use std::time::Duration;

/// The default backup TTL (`--default-backup-ttl`), as Velero writes it into `spec.ttl`.
pub const DEFAULT_TTL: &str = "720h0m0s";
/// The default item operation timeout of backups and restores (`--item-operation-timeout`).
pub const DEFAULT_ITEM_OPERATION_TIMEOUT: &str = "4h0m0s";
/// The default CSI snapshot timeout of backups (`--csi-snapshot-timeout`).
pub const DEFAULT_CSI_SNAPSHOT_TIMEOUT: &str = "10m0s";

/// Parses a Go duration. Negative durations are refused (no Velero field means one).
pub fn parse(text: &str) -> Result<Duration, String> {
    let invalid = || format!("time: invalid duration \"{text}\"");
    let mut rest = text.trim();
    if let Some(r) = rest.strip_prefix('+') {
        rest = r;
    } else if rest.starts_with('-') {
        return Err(format!("negative duration \"{text}\""));
    }
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let number = &rest[..number_len];
        if number.is_empty() || number == "." {
            return Err(invalid());
        }
        let value: f64 = number.parse().map_err(|_| invalid())?;
        rest = &rest[number_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let seconds = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "" => return Err(format!("time: missing unit in duration \"{text}\"")),
            unit => return Err(format!("time: unknown unit \"{unit}\" in duration \"{text}\"")),
        };
        total += value * seconds;
        rest = &rest[unit_len..];
    }
    Duration::try_from_secs_f64(total).map_err(|_| invalid())
}

/// A duration field of an object: absent, empty or `0` is `None`.
pub fn field(v: &serde_json::Value) -> Result<Option<Duration>, String> {
    match v.as_str().map(str::trim) {
        None | Some("") => Ok(None),
        Some(text) => parse(text).map(|d| (!d.is_zero()).then_some(d)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_parse_as_go_reads_them() {
        assert_eq!(parse("720h0m0s"), Ok(Duration::from_secs(720 * 3600)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
        assert_eq!(parse("0s"), Ok(Duration::ZERO));
        assert!(parse("").is_err());
        assert!(parse("10").unwrap_err().contains("missing unit"));
        assert!(parse("3d").unwrap_err().contains("unknown unit \"d\""));
        assert!(parse("-1h").is_err());
        assert!(parse("1h 30m").is_err(), "Go allows no spaces");
    }

    #[test]
    fn absent_empty_and_zero_fields_mean_unset() {
        assert_eq!(field(&serde_json::json!(null)), Ok(None));
        assert_eq!(field(&serde_json::json!("0s")), Ok(None));
        assert_eq!(field(&serde_json::json!("1m")), Ok(Some(Duration::from_secs(60))));
    }
}
