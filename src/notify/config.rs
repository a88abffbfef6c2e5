//! Reading the notification settings from the environment: the only place they come from, so a
//! webhook URL (the credential itself) never sits in a drill file. A Kubernetes Secret reaches
//! firedrill as an environment variable or as a mounted file, so each URL may come either way.
//!
//! Errors name the variable and what would be valid; they never print a URL.

use std::path::PathBuf;

use super::NotifyError;

/// Slack-compatible incoming webhook URL.
pub const SLACK_URL: &str = "FIREDRILL_SLACK_WEBHOOK_URL";
/// A file holding [`SLACK_URL`] (a mounted Secret key).
pub const SLACK_URL_FILE: &str = "FIREDRILL_SLACK_WEBHOOK_URL_FILE";
/// Generic JSON webhook URL.
pub const WEBHOOK_URL: &str = "FIREDRILL_WEBHOOK_URL";
/// A file holding [`WEBHOOK_URL`].
pub const WEBHOOK_URL_FILE: &str = "FIREDRILL_WEBHOOK_URL_FILE";
/// `changes` (default) or `always`.
pub const NOTIFY_ON: &str = "FIREDRILL_NOTIFY_ON";

/// Which runs are announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NotifyOn {
    /// Failures, and the first pass after a failure.
    #[default]
    Changes,
    /// Every run: failures, recoveries, and passes too.
    Always,
}

/// The settings as read, before the URLs are checked.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Settings {
    pub slack: Option<String>,
    pub webhook: Option<String>,
    pub on: NotifyOn,
}

/// Reads the settings through `var` (the process environment in production, a map in tests).
/// An empty variable counts as unset: templates often render an absent value as `""`.
pub fn read(var: impl Fn(&str) -> Option<String>) -> Result<Settings, NotifyError> {
    let get = |name: &str| var(name).filter(|v| !v.trim().is_empty());
    let on = match get(NOTIFY_ON).as_deref().map(str::trim) {
        None | Some("changes") => NotifyOn::Changes,
        Some("always") => NotifyOn::Always,
        Some(other) => {
            return Err(NotifyError::Config {
                variable: NOTIFY_ON,
                problem: format!(
                    "`{other}` is not valid: write `changes` (failures and recoveries, the default) or `always` (every run)"
                ),
            });
        }
    };
    Ok(Settings {
        slack: url(&get, SLACK_URL, SLACK_URL_FILE)?,
        webhook: url(&get, WEBHOOK_URL, WEBHOOK_URL_FILE)?,
        on,
    })
}

/// The URL from `direct` or from the file `file` names; never both.
fn url(
    get: &impl Fn(&str) -> Option<String>,
    direct: &'static str,
    file: &'static str,
) -> Result<Option<String>, NotifyError> {
    match (get(direct), get(file)) {
        (Some(_), Some(_)) => Err(NotifyError::Config {
            variable: direct,
            problem: format!("both {direct} and {file} are set: set only one"),
        }),
        (Some(url), None) => Ok(Some(url.trim().to_string())),
        (None, Some(path)) => {
            let path = PathBuf::from(path.trim());
            // The file's contents are the secret: an error says only where and what kind.
            let text = std::fs::read_to_string(&path).map_err(|e| NotifyError::Config {
                variable: file,
                problem: format!("cannot read {}: {}", path.display(), e.kind()),
            })?;
            let text = text.trim();
            if text.is_empty() {
                return Err(NotifyError::Config {
                    variable: file,
                    problem: format!("{} is empty: it should hold the webhook URL", path.display()),
                });
            }
            Ok(Some(text.to_string()))
        }
        (None, None) => Ok(None),
    }
}

/// Checks that `url` is an absolute http(s) URL with a host. The error names `variable` and
/// never repeats the URL.
pub fn check_url(variable: &'static str, url: &str) -> Result<reqwest::Url, NotifyError> {
    let bad = |problem: String| NotifyError::Config { variable, problem };
    // url's parse errors describe the problem without quoting the input.
    let parsed = reqwest::Url::parse(url).map_err(|e| bad(format!("not a URL ({e}): write https://host/path")))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none_or(str::is_empty) {
        return Err(bad("not an http(s) URL with a host: write https://host/path".into()));
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| map.get(k).cloned()
    }

    fn error(pairs: &[(&str, &str)]) -> String {
        read(env(pairs)).unwrap_err().to_string()
    }

    #[test]
    fn nothing_set_reads_as_no_urls_and_changes() {
        assert_eq!(read(env(&[])).unwrap(), Settings::default());
        assert_eq!(read(env(&[(WEBHOOK_URL, ""), (NOTIFY_ON, "")])).unwrap(), Settings::default(), "empty = unset");
    }

    #[test]
    fn urls_come_from_the_variable_or_from_the_file_it_names() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("slack-url");
        std::fs::write(&file, "https://hooks.example/T000/secret\n").unwrap();
        let s = read(env(&[
            (SLACK_URL_FILE, file.to_str().unwrap()),
            (WEBHOOK_URL, " http://127.0.0.1:9/hook "),
            (NOTIFY_ON, "always"),
        ]))
        .unwrap();
        assert_eq!(s.slack.as_deref(), Some("https://hooks.example/T000/secret"), "the trailing newline is dropped");
        assert_eq!(s.webhook.as_deref(), Some("http://127.0.0.1:9/hook"));
        assert_eq!(s.on, NotifyOn::Always);
    }

    #[test]
    fn a_bad_notify_on_names_the_variable_and_the_valid_values() {
        let e = error(&[(NOTIFY_ON, "failures")]);
        assert!(e.contains(NOTIFY_ON) && e.contains("`failures`"), "{e}");
        assert!(e.contains("`changes`") && e.contains("`always`"), "{e}");
    }

    #[test]
    fn both_forms_of_one_url_are_refused() {
        let e = error(&[(WEBHOOK_URL, "https://a.example/x"), (WEBHOOK_URL_FILE, "/run/secrets/url")]);
        assert!(e.contains(WEBHOOK_URL) && e.contains(WEBHOOK_URL_FILE) && e.contains("only one"), "{e}");
        assert!(!e.contains("a.example"), "{e}");
    }

    #[test]
    fn an_unreadable_or_empty_url_file_names_the_variable_and_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let e = error(&[(SLACK_URL_FILE, missing.to_str().unwrap())]);
        assert!(e.contains(SLACK_URL_FILE) && e.contains(missing.to_str().unwrap()) && e.contains("not found"), "{e}");
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").unwrap();
        let e = error(&[(SLACK_URL_FILE, empty.to_str().unwrap())]);
        assert!(e.contains(SLACK_URL_FILE) && e.contains("is empty"), "{e}");
    }

    #[test]
    fn a_url_that_is_not_http_is_refused_without_repeating_it() {
        for url in [
            "hooks.example/T000-secret-token",
            "ftp://hooks.example/T000-secret-token",
            "mailto:T000-secret-token@example.com",
        ] {
            let e = check_url(WEBHOOK_URL, url).unwrap_err().to_string();
            assert!(e.contains(WEBHOOK_URL) && e.contains("https://host/path"), "{e}");
            assert!(!e.contains("secret-token"), "the URL is a credential: {e}");
        }
        assert!(check_url(WEBHOOK_URL, "https://hooks.example/T000").is_ok());
    }
}
