//! Stage two: every value checked, every error located, a plan built.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono_tz::Tz;

use super::raw::{self, API_VERSION, DurationText, EnvText};
use super::{Loc, SpecError};
use crate::drills::{self, DrillParams};
use crate::measure::{Phase, Targets};
use crate::plan::{DrillPlan, OnFailure, ScenarioPlan, Schedule, Step, Timeouts};

/// Collects located errors for one file while its values are checked.
pub struct Validator {
    file: PathBuf,
    errors: Vec<SpecError>,
}

impl Validator {
    pub fn new(file: &Path) -> Self {
        Self { file: file.to_path_buf(), errors: Vec::new() }
    }

    pub fn file(&self) -> &Path {
        &self.file
    }

    pub fn into_errors(self) -> Vec<SpecError> {
        self.errors
    }

    pub fn is_clean(&self) -> bool {
        self.errors.is_empty()
    }

    /// Records an error at `(line, column)`.
    pub fn error(&mut self, at: (u32, u32), message: impl Into<String>) {
        self.errors.push(SpecError { file: self.file.clone(), line: at.0, column: at.1, message: message.into() });
    }

    /// A positive human duration.
    pub fn duration(&mut self, text: &Loc<DurationText>, what: &str) -> Option<Duration> {
        match humantime::parse_duration(text.value.0.trim()) {
            Ok(d) if d < Duration::from_millis(1) => {
                self.error(
                    text.at(),
                    format!("{what} must be at least 1ms (times are kept in milliseconds), e.g. `90s`, `15m` or `24h`"),
                );
                None
            }
            Ok(d) => Some(d),
            Err(e) => {
                self.error(
                    text.at(),
                    format!(
                        "{what}: `{}` is not a duration ({e}): write a number and a unit, e.g. `90s`, `15m`, `24h`, `7d`",
                        text.value.0
                    ),
                );
                None
            }
        }
    }

    /// Replaces `${NAME}` and `${NAME:-default}` by the environment.
    pub fn expand(&mut self, text: &Loc<EnvText>) -> Option<String> {
        match expand_env(&text.value.0, |name| std::env::var(name).ok()) {
            Ok(s) => Some(s),
            Err(e) => {
                self.error(text.at(), e);
                None
            }
        }
    }

    /// A non-empty string.
    pub fn non_empty(&mut self, text: &Loc<String>, what: &str) -> Option<String> {
        if text.value.trim().is_empty() {
            self.error(text.at(), format!("{what} must not be empty"));
            None
        } else {
            Some(text.value.clone())
        }
    }
}

fn expand_env(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or_else(|| {
            format!("`${{` without a closing `}}` in `{text}`: write `${{NAME}}` or `${{NAME:-default}}`")
        })?;
        let inner = &after[..end];
        let (name, default) = match inner.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (inner, None),
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!(
                "`${{{inner}}}` does not name an environment variable: write `${{NAME}}` or `${{NAME:-default}}`"
            ));
        }
        match lookup(name).filter(|v| !v.is_empty()).or_else(|| default.map(str::to_string)) {
            Some(v) => out.push_str(&v),
            None => {
                return Err(format!(
                    "environment variable `{name}` is not set: set it, or give a default as `${{{name}:-value}}`"
                ));
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn header(v: &mut Validator, api_version: &Loc<String>, name: &Loc<String>) -> Option<String> {
    if api_version.value != API_VERSION {
        v.error(api_version.at(), format!("unsupported apiVersion `{}`: expected `{API_VERSION}`", api_version.value));
    }
    let n = &name.value;
    let valid = !n.is_empty()
        && n.len() <= 63
        && n.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !n.starts_with('-')
        && !n.ends_with('-');
    if valid {
        Some(n.clone())
    } else {
        v.error(name.at(), format!("invalid name `{n}`: use 1 to 63 lowercase letters, digits and `-`, starting and ending with a letter or digit"));
        None
    }
}

/// Validates a drill file into a plan; errors go to `v`.
pub fn drill(v: &mut Validator, spec_sha256: String, raw: raw::DrillFile) -> Option<DrillPlan> {
    let name = header(v, &raw.api_version, &raw.name);
    let targets = targets(v, raw.targets.as_ref());
    let schedule = raw.schedule.as_ref().and_then(|s| schedule(v, s));
    let params = drills::validate(v, &raw);
    let overrides = timeout_overrides(v, raw.timeouts.as_ref());
    let timeouts = params.as_ref().map(|p| timeouts(p, &overrides));
    if !v.is_clean() {
        return None;
    }
    Some(DrillPlan {
        name: name?,
        description: raw.description,
        labels: raw.labels,
        file: v.file().to_path_buf(),
        spec_sha256,
        targets,
        schedule,
        timeouts: timeouts?,
        params: params?,
    })
}

fn targets(v: &mut Validator, spec: Option<&raw::TargetsSpec>) -> Targets {
    let Some(spec) = spec else {
        return Targets::default();
    };
    Targets {
        rto_ms: spec.rto.as_ref().and_then(|d| v.duration(d, "targets.rto")),
        rpo_ms: spec.rpo.as_ref().and_then(|d| v.duration(d, "targets.rpo")),
    }
}

/// The per-phase limits a drill file sets, checked whether or not its drill block is valid.
fn timeout_overrides(v: &mut Validator, spec: Option<&raw::TimeoutsSpec>) -> Vec<(Phase, Duration)> {
    let Some(spec) = spec else { return Vec::new() };
    let given = [
        (Phase::Preflight, &spec.preflight),
        (Phase::Setup, &spec.setup),
        (Phase::Act, &spec.act),
        (Phase::Wait, &spec.wait),
        (Phase::Verify, &spec.verify),
        (Phase::Cleanup, &spec.cleanup),
    ];
    given
        .into_iter()
        .filter_map(|(phase, text)| {
            Some((phase, text.as_ref().and_then(|t| v.duration(t, &format!("timeouts.{phase}")))?))
        })
        .collect()
}

/// The drill type's defaults with the file's overrides.
fn timeouts(params: &DrillParams, overrides: &[(Phase, Duration)]) -> Timeouts {
    let mut t = params.default_timeouts();
    for (phase, d) in overrides {
        t.set(*phase, *d);
    }
    t
}

/// The `cron` crate counts days of the week from 1 = Sunday, crontab from 0/7 = Sunday and
/// 1 = Monday: a number there would silently run on the wrong day, so names are required.
fn day_of_week_field(expr: &str) -> Option<&str> {
    let fields: Vec<&str> = expr.split_whitespace().collect();
    match fields.len() {
        5 => Some(fields[4]),
        6 | 7 => Some(fields[5]),
        _ => None,
    }
}

pub fn schedule(v: &mut Validator, spec: &Loc<raw::ScheduleSpec>) -> Option<Schedule> {
    let s = &spec.value;
    let expr = s.cron.value.trim();
    let with_seconds = if expr.split_whitespace().count() == 5 { format!("0 {expr}") } else { expr.to_string() };
    let mut parsed = None;
    if day_of_week_field(expr).is_some_and(|f| f.chars().any(|c| c.is_ascii_digit())) {
        v.error(
            s.cron.at(),
            format!("`{expr}`: write days of the week as names (`MON`, `MON-FRI`, `SAT,SUN`): cron dialects disagree on what the numbers mean"),
        );
    } else {
        match with_seconds.parse::<cron::Schedule>() {
            Ok(p) => parsed = Some(p),
            Err(e) => {
                // The cron crate's message may draw a caret under the input over several lines.
                let why = e.to_string();
                let why = if why.contains('\n') { String::new() } else { format!(" ({why})") };
                v.error(
                    s.cron.at(),
                    format!(
                        "`{expr}` is not a cron expression{why}: write five fields `minute hour day-of-month month day-of-week` such as `0 3 1 * *`, six or seven with seconds first and year last, or @daily/@weekly/@monthly"
                    ),
                )
            }
        }
    }
    let time_zone = match &s.time_zone {
        None => Some(Tz::UTC),
        Some(tz) => match tz.value.parse::<Tz>() {
            Ok(z) => Some(z),
            Err(_) => {
                v.error(tz.at(), format!("unknown time zone `{}`: write an IANA name such as `UTC`, `Europe/Berlin` or `America/New_York`", tz.value));
                None
            }
        },
    };
    let jitter = s.jitter.as_ref().map(|j| v.duration(j, "schedule.jitter"));
    let window = s.window.as_ref().map(|w| v.duration(w, "schedule.window"));
    if let (Some(Some(j)), Some(Some(w)), Some(at)) = (jitter, window, s.window.as_ref())
        && j >= w
    {
        v.error(
            at.at(),
            "schedule.window must be longer than schedule.jitter, or every jittered start would fall outside it",
        );
    }
    let schedule = Schedule {
        cron: expr.to_string(),
        parsed: parsed?,
        time_zone: time_zone?,
        jitter: jitter.unwrap_or(Some(Duration::ZERO))?,
        window: window.flatten(),
        missed_runs: s.missed_runs.unwrap_or(raw::MissedRuns::Skip),
    };
    if schedule.upcoming(crate::clock::Timestamp::from_millis(0), 1).is_empty() {
        v.error(s.cron.at(), format!("`{expr}` never fires (a date that does not exist?)"));
        return None;
    }
    Some(schedule)
}

/// Finds the drill a scenario step names, given the name or path and where it was written.
pub type Resolver<'a> = dyn FnMut(&Path, (&Path, u32, u32)) -> Result<Arc<DrillPlan>, Vec<SpecError>> + 'a;

/// Validates a scenario; `resolve` finds the drill a step names.
pub fn scenario(
    v: &mut Validator,
    spec_sha256: String,
    raw: raw::ScenarioFile,
    resolve: &mut Resolver<'_>,
) -> Option<ScenarioPlan> {
    let name = header(v, &raw.api_version, &raw.name);
    let schedule = raw.schedule.as_ref().and_then(|s| schedule(v, s));
    if raw.steps.value.is_empty() {
        v.error(raw.steps.at(), "a scenario needs at least one step: `- drill: <drill name or file>`");
    }
    let mut steps = Vec::new();
    for step in &raw.steps.value {
        let file = v.file().to_path_buf();
        match resolve(Path::new(step.drill.value.trim()), (&file, step.drill.line, step.drill.column)) {
            Ok(drill) => steps.push(Step { drill, required: step.required.unwrap_or(true) }),
            Err(errors) => v.errors.extend(errors),
        }
    }
    let min_passed = raw.pass.as_ref().and_then(|p| p.min_passed.as_ref());
    if let Some(m) = min_passed
        && m.value as usize > raw.steps.value.len()
    {
        v.error(
            m.at(),
            format!("pass.minPassed is {}, but the scenario has only {} steps", m.value, raw.steps.value.len()),
        );
    }
    if !v.is_clean() {
        return None;
    }
    Some(ScenarioPlan {
        name: name?,
        description: raw.description,
        labels: raw.labels,
        operator: raw.operator,
        file: v.file().to_path_buf(),
        spec_sha256,
        schedule,
        steps,
        min_passed: min_passed.map(|m| m.value),
        on_failure: raw.on_failure.unwrap_or(OnFailure::Continue),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOME" => Some("/root".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn env_expansion_replaces_names_and_defaults() {
        assert_eq!(expand_env("${HOME}/x", env).unwrap(), "/root/x");
        assert_eq!(expand_env("a${NOPE:-b}c", env).unwrap(), "abc");
        assert_eq!(expand_env("${EMPTY:-d}", env).unwrap(), "d");
        assert_eq!(expand_env("plain", env).unwrap(), "plain");
    }

    #[test]
    fn env_expansion_says_what_to_write_when_it_cannot() {
        assert!(expand_env("${NOPE}", env).unwrap_err().contains("`NOPE` is not set"));
        assert!(expand_env("${HOME", env).unwrap_err().contains("without a closing"));
        assert!(expand_env("${a b}", env).unwrap_err().contains("does not name"));
    }

    #[test]
    fn numeric_days_of_week_are_found_in_every_form() {
        assert_eq!(day_of_week_field("0 3 * * 1"), Some("1"));
        assert_eq!(day_of_week_field("0 0 3 * * MON"), Some("MON"));
        assert_eq!(day_of_week_field("@daily"), None);
    }
}
