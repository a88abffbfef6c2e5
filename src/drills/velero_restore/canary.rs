//! The RPO canary: a ConfigMap `firedrill-canary` whose `timestamp` (UTC, RFC 3339 with
//! milliseconds) `firedrill canary` rewrites in the protected namespaces every interval. A backup
//! captures it; after a restore, the restored copy says how old the restored data is.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

use crate::clock::Timestamp;

pub const NAME: &str = "firedrill-canary";
pub const KEY: &str = "timestamp";

/// The canary's time, from its data.
pub fn parse(data: &BTreeMap<String, String>) -> Option<Timestamp> {
    data.get(KEY).and_then(|t| t.parse::<Timestamp>().ok())
}

/// Writes the canary into `ns` with time `now`.
pub async fn write(client: &Client, ns: &str, now: Timestamp) -> Result<(), kube::Error> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let data = json!({KEY: now.to_string()});
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": NAME, "namespace": ns, "labels": {"app.kubernetes.io/managed-by": "firedrill"}},
        "data": data
    }))
    .map_err(kube::Error::SerdeError)?;
    match api.create(&PostParams::default(), &cm).await {
        Err(kube::Error::Api(s)) if s.code == 409 => {
            api.patch(NAME, &PatchParams::default(), &Patch::Merge(json!({"data": data}))).await.map(drop)
        }
        other => other.map(drop),
    }
}

/// What the canary in `ns` says: `Ok(None)` when there is none, `Err` with a description when it
/// is there but unreadable.
pub async fn read(client: &Client, ns: &str) -> Result<Option<Timestamp>, String> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    match api.get_opt(NAME).await {
        Ok(None) => Ok(None),
        Ok(Some(cm)) => parse(&cm.data.unwrap_or_default())
            .map(Some)
            .ok_or_else(|| format!("ConfigMap {ns}/{NAME} has no RFC 3339 `{KEY}`")),
        Err(e) => Err(format!("cannot read ConfigMap {ns}/{NAME}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_canary_is_read_back_to_the_millisecond() {
        let t: Timestamp = "2026-11-21T02:19:50.961Z".parse().unwrap();
        let data = BTreeMap::from([(KEY.to_string(), t.to_string())]);
        assert_eq!(parse(&data), Some(t));
        assert_eq!(parse(&BTreeMap::from([(KEY.to_string(), "yesterday".to_string())])), None);
        assert_eq!(parse(&BTreeMap::new()), None);
    }
}
