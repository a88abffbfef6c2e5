//! `prometheus` probes: one PromQL instant query (`GET <url>/api/v1/query?query=...`) whose
//! single value must lie within `atLeast` / `atMost`.
//!
//! The answer is Prometheus's documented envelope: `{"status": "success", "data": {"resultType":
//! "vector", "result": [{"metric": {...}, "value": [<unix time>, "<value>"]}]}}` (a `scalar`
//! result is `[<unix time>, "<value>"]`), or `{"status": "error", "errorType": ..., "error": ...}`
//! with a 4xx/5xx status. Values are strings because they may be `NaN`, `+Inf` or `-Inf`. A
//! threshold needs exactly one value: an empty vector or several series fail, saying how many.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Check, ProbeError};
use crate::spec::raw::EnvText;
use crate::spec::{Loc, Validator};

/// A PromQL instant query and the range its value must lie in: `atLeast`, `atMost` or both.
#[derive(Deserialize, JsonSchema, Debug)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(rename = "PrometheusProbe")]
pub struct PrometheusSpec {
    /// Prometheus's base URL, e.g. `http://prometheus.monitoring:9090` (the query goes to
    /// `<url>/api/v1/query`). Credentials belong in `headers`, not here.
    pub url: Loc<EnvText>,
    /// A PromQL expression with one value: a scalar or a vector of one series, e.g.
    /// `sum(up{namespace="$(SCRATCH_NAMESPACE)"})`.
    pub query: Loc<String>,
    /// The value must be at least this.
    #[serde(default)]
    pub at_least: Option<Loc<f64>>,
    /// The value must be at most this.
    #[serde(default)]
    pub at_most: Option<Loc<f64>>,
    /// Request headers (`Authorization: Bearer ${TOKEN}`). Their values are never recorded.
    #[serde(default)]
    pub headers: BTreeMap<String, EnvText>,
}

/// A threshold: a finite number (checked when the spec is validated, so equality is total).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(transparent)]
pub struct Bound(pub f64);

impl Eq for Bound {}

fn bound(v: &mut Validator, b: &Option<Loc<f64>>, what: &str) -> Result<Option<Bound>, ()> {
    match b {
        Some(b) if !b.value.is_finite() => {
            v.error(b.at(), format!("`{what}` is a finite number, e.g. `1` or `0.5`"));
            Err(())
        }
        Some(b) => Ok(Some(Bound(b.value))),
        None => Ok(None),
    }
}

pub(super) fn validate(v: &mut Validator, spec: &Loc<PrometheusSpec>) -> Option<Check> {
    let p = &spec.value;
    let url = super::http_url(v, &p.url, "a prometheus probe's url", "http://prometheus.monitoring:9090");
    let headers = super::header_values(v, spec, &p.headers);
    let query = v.non_empty(&p.query, "prometheus.query");
    let (at_least, at_most) = (bound(v, &p.at_least, "atLeast").ok()?, bound(v, &p.at_most, "atMost").ok()?);
    match (at_least, at_most) {
        (None, None) => {
            v.error(
                spec.at(),
                "a prometheus probe compares its value with `atLeast`, `atMost` or both: add one, e.g. `atLeast: 1`",
            );
            return None;
        }
        (Some(low), Some(high)) if low.0 > high.0 => {
            let at = p.at_most.as_ref().map_or(spec.at(), Loc::at);
            v.error(at, format!("`atMost` ({}) is below `atLeast` ({}): no value can pass", high.0, low.0));
            return None;
        }
        _ => {}
    }
    let (shown, full_url) = url?;
    let headers = headers?;
    Some(Check::Prometheus {
        url: shown,
        full_url,
        query: query?,
        at_least,
        at_most,
        header_names: headers.iter().map(|(k, _)| k.clone()).collect(),
        headers,
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Answer {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default)]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Data {
    result_type: String,
    result: serde_json::Value,
}

/// `[<unix time>, "<value>"]`: the time is not needed.
type Sample = (serde::de::IgnoredAny, String);

#[derive(Deserialize)]
struct Series {
    value: Sample,
}

fn malformed(e: serde_json::Error) -> ProbeError {
    ProbeError::Prometheus(format!("the answer is not Prometheus's query API JSON ({e})"))
}

/// The one value of a query's answer, as Prometheus wrote it (`"1"`, `"NaN"`, `"+Inf"`).
pub fn value_of(body: &[u8]) -> Result<String, ProbeError> {
    let answer: Answer = serde_json::from_slice(body).map_err(malformed)?;
    if answer.status != "success" {
        return Err(ProbeError::Prometheus(format!(
            "query failed: {}: {}",
            answer.error_type.as_deref().unwrap_or("no errorType"),
            answer.error.as_deref().unwrap_or("no error given"),
        )));
    }
    let Some(data) = answer.data else {
        return Err(ProbeError::Prometheus("the answer has no data".into()));
    };
    match data.result_type.as_str() {
        "scalar" => Ok(serde_json::from_value::<Sample>(data.result).map_err(malformed)?.1),
        "vector" => {
            let mut series: Vec<Series> = serde_json::from_value(data.result).map_err(malformed)?;
            match series.len() {
                1 => Ok(series.remove(0).value.1),
                0 => Err(ProbeError::Prometheus(
                    "the query returned no series (an empty vector): nothing to compare".into(),
                )),
                n => Err(ProbeError::Prometheus(format!(
                    "the query returned {n} series, a threshold needs one: aggregate them, e.g. `sum(...)`"
                ))),
            }
        }
        "matrix" => {
            Err(ProbeError::Prometheus("the query returned a range vector (matrix): drop its `[...]` range".into()))
        }
        other => Err(ProbeError::Prometheus(format!("the query returned a {other}, not a number"))),
    }
}

/// Whether `value` (Prometheus's text) lies within the bounds; `NaN` never does.
pub fn within(value: &str, at_least: Option<Bound>, at_most: Option<Bound>) -> Result<(), ProbeError> {
    let n: f64 = value
        .parse()
        .map_err(|_| ProbeError::Prometheus(format!("the query returned `{value}`, which is not a number")))?;
    let ok = at_least.is_none_or(|b| n >= b.0) && at_most.is_none_or(|b| n <= b.0);
    if ok {
        return Ok(());
    }
    let expected = match (at_least, at_most) {
        (Some(l), Some(h)) => format!("between {} and {}", l.0, h.0),
        (Some(l), None) => format!("at least {}", l.0),
        (None, Some(h)) => format!("at most {}", h.0),
        (None, None) => "any value".into(),
    };
    Err(ProbeError::Threshold { value: value.to_string(), expected })
}

/// The query URL: `<base>/api/v1/query?query=<query>` (a base with a path prefix keeps it).
pub fn query_url(base: &str, query: &str) -> Result<url::Url, ProbeError> {
    let mut url = url::Url::parse(&format!("{}/api/v1/query", base.trim_end_matches('/')))
        .map_err(|_| ProbeError::Unreachable("the url is not a URL".into()))?;
    url.query_pairs_mut().append_pair("query", query);
    Ok(url)
}

/// One attempt: the query, its one value, the comparison.
pub(super) async fn attempt(
    http: &reqwest::Client,
    base: &str,
    query: &str,
    headers: &[(String, String)],
    at_least: Option<Bound>,
    at_most: Option<Bound>,
) -> Result<(), ProbeError> {
    let mut req = http.get(query_url(base, query)?);
    for (k, v) in headers {
        req = req.header(k, v);
    }
    let resp = req.send().await.map_err(super::request_error)?;
    let status = resp.status().as_u16();
    let body = resp.bytes().await.map_err(super::request_error)?;
    // Prometheus answers errors with a 4xx/5xx status and its JSON envelope, whose `error` says
    // more than the status; a proxy in front of it may answer with anything else.
    if !(200..300).contains(&status) && serde_json::from_slice::<Answer>(&body).is_err() {
        return Err(ProbeError::Status { got: status, expected: "2xx".into() });
    }
    within(&value_of(&body)?, at_least, at_most)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(body: &str) -> String {
        value_of(body.as_bytes()).unwrap_err().to_string()
    }

    #[test]
    fn the_value_of_a_one_series_vector_or_a_scalar_is_read() {
        let vector = r#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"job":"prometheus"},"value":[1435781451.781,"3"]}]}}"#;
        assert_eq!(value_of(vector.as_bytes()), Ok("3".into()));
        let scalar = r#"{"status":"success","data":{"resultType":"scalar","result":[1795242705.151,"NaN"]}}"#;
        assert_eq!(value_of(scalar.as_bytes()), Ok("NaN".into()));
    }

    #[test]
    fn empty_and_multi_series_answers_fail_saying_how_many_series() {
        assert!(err(r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#).contains("no series"));
        let two = r#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"instance":"a"},"value":[1,"1"]},{"metric":{"instance":"b"},"value":[1,"0"]}]}}"#;
        assert!(err(two).contains("returned 2 series"), "{}", err(two));
        let matrix = r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#;
        assert!(err(matrix).contains("range vector"), "{}", err(matrix));
    }

    #[test]
    fn an_error_answer_reports_prometheus_s_error_type_and_error() {
        let body = r#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"query\": 1:6: parse error: unclosed left parenthesis"}"#;
        assert_eq!(
            err(body),
            "Prometheus: query failed: bad_data: invalid parameter \"query\": 1:6: parse error: unclosed left parenthesis"
        );
        assert!(err("<html>502 Bad Gateway</html>").contains("not Prometheus's query API JSON"));
    }

    #[test]
    fn thresholds_are_inclusive_and_nan_never_passes() {
        let (one, five) = (Some(Bound(1.0)), Some(Bound(5.0)));
        assert_eq!(within("1", one, None), Ok(()));
        assert_eq!(within("5", one, five), Ok(()));
        assert_eq!(within("+Inf", one, None), Ok(()));
        assert_eq!(
            within("0", one, None),
            Err(ProbeError::Threshold { value: "0".into(), expected: "at least 1".into() })
        );
        assert_eq!(within("6", one, five).unwrap_err().to_string(), "the query returned 6, expected between 1 and 5");
        assert_eq!(
            within("0.5", None, Some(Bound(0.25))).unwrap_err().to_string(),
            "the query returned 0.5, expected at most 0.25"
        );
        assert!(within("NaN", one, None).is_err() && within("NaN", None, five).is_err());
    }

    #[test]
    fn a_prometheus_probe_needs_a_threshold_that_some_value_can_meet_and_never_records_headers() {
        let yaml = "name: up\nprometheus:\n  url: http://user:pw@prom:9090\n  query: sum(up{namespace=\"$(SCRATCH_NAMESPACE)\"})\n  atLeast: 1\n  headers: {Authorization: Bearer hunter2}\n";
        let p = crate::probes::validated(yaml, false).unwrap();
        let shown = serde_json::to_string(&p).unwrap();
        assert!(!shown.contains("hunter2") && !shown.contains("pw@"), "{shown}");
        assert!(shown.contains("\"atLeast\":1.0") && shown.contains("Authorization"), "{shown}");
        let Check::Prometheus { query, full_url, .. } = &p.in_namespace("fd-x").check else { panic!("{p:?}") };
        assert_eq!((query.as_str(), full_url.as_str()), ("sum(up{namespace=\"fd-x\"})", "http://user:pw@prom:9090"));

        let none = crate::probes::validated("name: up\nprometheus: {url: \"http://p:9090\", query: up}\n", false);
        assert!(
            none.unwrap_err()[0]
                .starts_with("2:13: a prometheus probe compares its value with `atLeast`, `atMost` or both")
        );
        let empty = crate::probes::validated(
            "name: up\nprometheus: {url: \"http://p:9090\", query: up, atLeast: 2, atMost: 1}\n",
            false,
        );
        assert_eq!(empty.unwrap_err(), ["2:67: `atMost` (1) is below `atLeast` (2): no value can pass"]);
        let url = crate::probes::validated("name: up\nprometheus: {url: \"prom:9090\", query: up, atMost: 1}\n", false);
        assert!(url.unwrap_err()[0].starts_with("2:19: a prometheus probe's url is an http:// or https:// URL"));
    }

    #[test]
    fn the_query_is_url_encoded_under_the_base_path() {
        let url = query_url("http://prom.example:9090/prometheus/", "sum(up{namespace=\"x\"})").unwrap();
        assert_eq!(url.path(), "/prometheus/api/v1/query");
        let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        assert_eq!(pairs, [("query".to_string(), "sum(up{namespace=\"x\"})".to_string())]);
    }
}
