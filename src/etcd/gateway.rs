//! A scratch member's JSON gateway (`POST /v3/kv/range`, `GET /health`), over reqwest.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Deserialize;
use serde_json::json;

use super::EtcdError;

/// A client for one member.
#[derive(Debug, Clone)]
pub struct Gateway {
    http: reqwest::Client,
    base: String,
}

/// int64 fields arrive as JSON strings from the gateway.
fn int(v: &serde_json::Value) -> i64 {
    match v {
        serde_json::Value::String(s) => s.parse().unwrap_or(0),
        serde_json::Value::Number(n) => n.as_i64().unwrap_or(0),
        _ => 0,
    }
}

#[derive(Deserialize)]
struct RangeResponse {
    header: Header,
    #[serde(default)]
    count: serde_json::Value,
    #[serde(default)]
    kvs: Vec<KeyValue>,
}

#[derive(Deserialize)]
struct Header {
    #[serde(default)]
    revision: serde_json::Value,
}

#[derive(Deserialize)]
struct KeyValue {
    #[serde(default)]
    value: String,
}

/// The end of the key range that holds every key starting with `prefix` (etcd's "prefix end":
/// the last byte that is not 0xff, plus one).
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

impl Gateway {
    /// A client for the member at `url` (plain HTTP: the scratch members firedrill starts on
    /// loopback). No root certificates are loaded: tens of milliseconds that would otherwise
    /// land in a measured RTO.
    pub fn new(url: &str) -> Result<Self, EtcdError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .tls_certs_only(Vec::new())
            .build()
            .map_err(|e| EtcdError::Endpoint { endpoint: url.to_string(), message: e.to_string() })?;
        Ok(Self { http, base: url.trim_end_matches('/').to_string() })
    }

    fn error(&self, message: impl Into<String>) -> EtcdError {
        EtcdError::Endpoint { endpoint: self.base.clone(), message: message.into() }
    }

    /// `true` when the member reports itself healthy.
    pub async fn healthy(&self) -> bool {
        let Ok(resp) = self.http.get(format!("{}/health", self.base)).timeout(Duration::from_secs(2)).send().await
        else {
            return false;
        };
        let body: serde_json::Value = resp.json().await.unwrap_or_default();
        body.get("health").is_some_and(|h| h == "true" || h == true)
    }

    async fn range(&self, body: serde_json::Value) -> Result<RangeResponse, EtcdError> {
        let resp = self
            .http
            .post(format!("{}/v3/kv/range", self.base))
            .json(&body)
            .send()
            .await
            .map_err(|e| self.error(e.to_string()))?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| self.error(e.to_string()))?;
        if !status.is_success() {
            return Err(self.error(format!("range request: HTTP {status}: {}", text.trim())));
        }
        serde_json::from_str(&text).map_err(|e| self.error(format!("range response `{}`: {e}", text.trim())))
    }

    /// The number of keys under `prefix` (every key for `None`) at `revision` (the latest for
    /// `None`), and the member's current revision.
    pub async fn count(&self, prefix: Option<&[u8]>, revision: Option<i64>) -> Result<(i64, i64), EtcdError> {
        let (key, end) = match prefix {
            Some(p) if !p.is_empty() => (p.to_vec(), prefix_end(p)),
            _ => (vec![0], vec![0]),
        };
        let mut body = json!({"key": B64.encode(key), "range_end": B64.encode(end), "count_only": true});
        if let Some(rev) = revision {
            body["revision"] = json!(rev);
        }
        let r = self.range(body).await?;
        Ok((int(&r.count), int(&r.header.revision)))
    }

    /// The value of `key`, if it exists.
    pub async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, EtcdError> {
        let r = self.range(json!({"key": B64.encode(key)})).await?;
        match r.kvs.first() {
            None => Ok(None),
            Some(kv) => {
                B64.decode(&kv.value).map(Some).map_err(|e| self.error(format!("value of a key is not base64: {e}")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_increments_the_last_byte_that_can_be() {
        assert_eq!(prefix_end(b"/a/"), b"/a0".to_vec());
        assert_eq!(prefix_end(&[b'a', 0xff]), b"b".to_vec());
        assert_eq!(prefix_end(&[0xff, 0xff]), vec![0]);
    }
}
