//! The renewal rehearsal: in a scratch namespace labelled with the run id, an Issuer (selfSigned
//! unless the spec names a ClusterIssuer) and a short-lived Certificate; wait by watch for it to
//! be issued, bring on its renewal, wait for the renewal, and check the Secret now holds a new
//! certificate with a later notAfter. Only `tls.crt` of the Secret is read.
//!
//! Against `firedrill sim`, `advanceSimClock` moves the simulator's clock to the renewal time
//! through its admin endpoint; against a real cluster the drill waits until the renewal time.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{ApiResource, DeleteParams, DynamicObject, PostParams};
use kube::core::GroupVersionKind;
use kube::runtime::wait::await_condition;
use kube::{Api, Client};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::chain;
use super::inventory::certificate_resource;
use super::spec::Rehearsal;
use crate::clock::Timestamp;
use crate::engine::{DrillError, RunContext};

/// The label naming the run that created a scratch namespace; cleanup deletes only such a one.
pub const RUN_LABEL: &str = "firedrill.dev/run-id";
/// The annotation saying why the namespace exists.
pub const PURPOSE: &str = "firedrill.dev/purpose";

const CERTIFICATE: &str = "firedrill-rehearsal";
const SECRET: &str = "firedrill-rehearsal-tls";
const SELF_SIGNED: &str = "firedrill-selfsigned";
/// How long cleanup waits for the namespace to go.
const NAMESPACE_GONE: Duration = Duration::from_secs(60);

/// What a run with a rehearsal creates, for cleanup and the janitor.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RehearsalClaim {
    pub namespace: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubeconfig: Option<std::path::PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
}

/// The scratch namespace of a run: its name ends with the random tail of the run id.
pub fn namespace_for(run_id: &str) -> String {
    let tail: String = run_id.chars().filter(char::is_ascii_alphanumeric).collect::<String>().to_ascii_lowercase();
    let tail = &tail[tail.len().saturating_sub(12)..];
    format!("firedrill-cert-{tail}")
}

/// What the rehearsal measured.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    pub namespace: String,
    /// From creating the Certificate to Ready.
    #[serde(with = "crate::measure::ms")]
    pub issuance: Duration,
    /// From the renewal being due to the renewed Certificate Ready.
    #[serde(with = "crate::measure::ms")]
    pub renewal: Duration,
    pub first_not_after: Timestamp,
    pub renewed_not_after: Timestamp,
    pub first_serial: String,
    pub renewed_serial: String,
    /// How far the simulator's clock was advanced (advanceSimClock).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sim_clock_advanced_s: Option<u64>,
}

fn gvk(kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("cert-manager.io", "v1", kind), plural)
}

fn ready(obj: &DynamicObject) -> Option<(String, String, String)> {
    let c = obj.data["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == "Ready")?.clone();
    let text = |k: &str| c[k].as_str().unwrap_or_default().to_string();
    Some((text("status"), text("reason"), text("message")))
}

fn revision(obj: &DynamicObject) -> i64 {
    obj.data["status"]["revision"].as_i64().unwrap_or(0)
}

fn failed(what: &str) -> impl Fn(kube::Error) -> DrillError + '_ {
    move |e| DrillError::Error(format!("{what}: {e}"))
}

async fn create(api: &Api<DynamicObject>, manifest: Value, what: &str) -> Result<(), DrillError> {
    let obj: DynamicObject = serde_json::from_value(manifest).map_err(|e| DrillError::Error(e.to_string()))?;
    api.create(&PostParams::default(), &obj).await.map_err(failed(&format!("cannot create {what}")))?;
    Ok(())
}

/// Waits by watch until `cond` holds for `name`, for at most `limit`.
async fn watch_until(
    ctx: &RunContext,
    api: &Api<DynamicObject>,
    name: &str,
    limit: Duration,
    cond: impl Fn(&DynamicObject) -> bool + Send + 'static,
) -> Result<Option<DynamicObject>, DrillError> {
    let waited = ctx
        .clock
        .timeout(limit, await_condition(api.clone(), name, move |o: Option<&DynamicObject>| o.is_some_and(&cond)))
        .await;
    match waited {
        Ok(Ok(obj)) => Ok(obj),
        Ok(Err(e)) => Err(DrillError::Error(format!("watching {name}: {e}"))),
        Err(_) => Ok(None),
    }
}

/// Waits for the issuer's Ready condition; a False one fails the rehearsal with its message.
async fn issuer_ready(
    ctx: &RunContext,
    api: &Api<DynamicObject>,
    what: &str,
    limit: Duration,
) -> Result<(), DrillError> {
    if api.get_opt(what_name(what)).await.map_err(failed(&format!("cannot read {what}")))?.is_none() {
        return Err(DrillError::Failed(format!("{what} does not exist: create it, or name another issuer")));
    }
    let seen = watch_until(ctx, api, what_name(what), limit, |o| ready(o).is_some_and(|r| r.0 != "Unknown")).await?;
    match seen.as_ref().and_then(ready) {
        Some((s, _, _)) if s == "True" => Ok(()),
        Some((s, reason, message)) => {
            Err(DrillError::Failed(format!("{what} is not Ready ({s}, {reason}): {message}")))
        }
        None => Err(DrillError::Failed(format!("{what} did not report Ready within {}", crate::measure::human(limit)))),
    }
}

/// `ClusterIssuer x` → `x`.
fn what_name(what: &str) -> &str {
    what.rsplit(' ').next().unwrap_or(what)
}

/// The leaf of the rehearsal Secret (its `tls.crt` only).
async fn leaf(client: &Client, ns: &str) -> Result<chain::Cert, DrillError> {
    let secret = Api::<Secret>::namespaced(client.clone(), ns)
        .get_opt(SECRET)
        .await
        .map_err(failed("cannot read the rehearsal Secret"))?;
    let crt = secret.and_then(|s| s.data).and_then(|mut d| d.remove("tls.crt")).map(|b| b.0).unwrap_or_default();
    let certs = chain::parse(&crt).map_err(|e| DrillError::Failed(format!("Secret {ns}/{SECRET}: tls.crt {e}")))?;
    certs.into_iter().next().ok_or_else(|| DrillError::Failed(format!("Secret {ns}/{SECRET} holds no certificate")))
}

/// Calls the simulator's admin endpoint; a cluster without it is an error that says so.
async fn sim_admin(client: &Client, method: &str, path: &str) -> Result<Value, DrillError> {
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .body(Vec::new())
        .map_err(|e| DrillError::Error(e.to_string()))?;
    let text = client.request_text(req).await.map_err(|e| {
        DrillError::Error(format!(
            "advanceSimClock is set, but this cluster has no simulator clock ({path}: {e}): it is not `firedrill sim`; remove advanceSimClock to rehearse in real time"
        ))
    })?;
    serde_json::from_str(&text).map_err(|e| DrillError::Error(format!("{path} answered something else than JSON: {e}")))
}

/// Creates the scratch namespace and issuer. Everything it creates lives in the namespace.
pub async fn prepare(client: &Client, ctx: &RunContext, r: &Rehearsal, ns: &str) -> Result<(), DrillError> {
    let namespace: Namespace = serde_json::from_value(json!({
        "metadata": {"name": ns, "labels": {RUN_LABEL: ctx.run_id, "app.kubernetes.io/managed-by": "firedrill"},
                     "annotations": {PURPOSE: "cert-expiry renewal rehearsal; deleted by the run's cleanup"}}
    }))
    .map_err(|e| DrillError::Error(e.to_string()))?;
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .map_err(failed(&format!("cannot create namespace {ns}")))?;
    ctx.log(format!("created scratch namespace {ns}"));
    let limit = r.timeout;
    match &r.issuer_ref {
        None => {
            let api = Api::namespaced_with(client.clone(), ns, &gvk("Issuer", "issuers"));
            create(
                &api,
                json!({"apiVersion": "cert-manager.io/v1", "kind": "Issuer",
                "metadata": {"name": SELF_SIGNED, "namespace": ns}, "spec": {"selfSigned": {}}}),
                "the selfSigned Issuer",
            )
            .await?;
            issuer_ready(ctx, &api, &format!("Issuer {SELF_SIGNED}"), limit).await
        }
        Some(i) if i.group == "cert-manager.io" && i.kind == "ClusterIssuer" => {
            let api = Api::all_with(client.clone(), &gvk("ClusterIssuer", "clusterissuers"));
            issuer_ready(ctx, &api, &format!("ClusterIssuer {}", i.name), limit).await
        }
        // An external issuer's readiness is its own business: the Certificate's wait judges it.
        Some(_) => Ok(()),
    }
}

/// Issues, renews and checks the rehearsal Certificate.
pub async fn run(client: &Client, ctx: &RunContext, r: &Rehearsal, ns: &str) -> Result<Outcome, DrillError> {
    let api = Api::namespaced_with(client.clone(), ns, &certificate_resource());
    let issuer = match &r.issuer_ref {
        None => json!({"name": SELF_SIGNED, "kind": "Issuer", "group": "cert-manager.io"}),
        Some(i) => json!({"name": i.name, "kind": i.kind, "group": i.group}),
    };
    let mut spec = json!({"secretName": SECRET, "commonName": "rehearsal.firedrill.invalid",
        "dnsNames": ["rehearsal.firedrill.invalid"], "duration": format!("{}s", r.duration.as_secs()),
        "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"}, "issuerRef": issuer});
    if let Some(rb) = r.renew_before {
        spec["renewBefore"] = json!(format!("{}s", rb.as_secs()));
    }
    let started = ctx.now();
    create(
        &api,
        json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
        "metadata": {"name": CERTIFICATE, "namespace": ns}, "spec": spec}),
        "the rehearsal Certificate",
    )
    .await?;
    ctx.waiting_for(&format!("Certificate {ns}/{CERTIFICATE} to be issued"));
    let issued_cond = |o: &DynamicObject| revision(o) >= 1 && ready(o).is_some_and(|r| r.0 == "True");
    let Some(issued) = watch_until(ctx, &api, CERTIFICATE, r.timeout, issued_cond).await? else {
        return Err(not_done(&api, "issued", r.timeout).await);
    };
    let issued_at = ctx.mark("rehearsal-issued");
    let first = leaf(client, ns).await?;
    let renewal_time = issued.data["status"]["renewalTime"].as_str().and_then(|t| t.parse::<Timestamp>().ok());
    let Some(renewal_time) = renewal_time else {
        return Err(DrillError::Failed(
            "the issued Certificate has no renewalTime: cert-manager schedules no renewal".into(),
        ));
    };

    let (due, advanced, limit) = if r.advance_sim_clock {
        let clock = sim_admin(client, "GET", "/firedrill/v1/clock").await?;
        let sim_now = clock["now"]
            .as_str()
            .and_then(Timestamp::parse_lenient)
            .ok_or_else(|| DrillError::Error(format!("the simulator's clock answered {clock}, without `now`")))?;
        let by = renewal_time.since(sim_now).unwrap_or_default() + Duration::from_secs(1);
        sim_admin(client, "POST", &format!("/firedrill/v1/clock/advance?by={}s", by.as_secs())).await?;
        ctx.log(format!("advanced the simulator's clock by {} to the renewal time", crate::measure::human(by)));
        (ctx.now(), Some(by.as_secs()), r.timeout)
    } else {
        let now = ctx.now();
        let wait = renewal_time.since(now).unwrap_or_default();
        (now.max(renewal_time), None, wait + r.timeout)
    };
    ctx.waiting_for(&format!("Certificate {ns}/{CERTIFICATE} to be renewed (renewalTime {renewal_time})"));
    let renewed_cond = |o: &DynamicObject| revision(o) >= 2 && ready(o).is_some_and(|r| r.0 == "True");
    if watch_until(ctx, &api, CERTIFICATE, limit, renewed_cond).await?.is_none() {
        return Err(not_done(&api, "renewed", limit).await);
    }
    let renewed_at = ctx.mark("rehearsal-renewed");
    let second = leaf(client, ns).await?;
    if second.serial == first.serial || second.not_after <= first.not_after {
        return Err(DrillError::Failed(format!(
            "the Certificate says it was renewed, but Secret {ns}/{SECRET} holds serial {} with notAfter {} (first: serial {}, notAfter {})",
            second.serial, second.not_after, first.serial, first.not_after
        )));
    }
    Ok(Outcome {
        namespace: ns.to_string(),
        issuance: issued_at.since(started).unwrap_or_default(),
        renewal: renewed_at.since(due).unwrap_or_default(),
        first_not_after: first.not_after,
        renewed_not_after: second.not_after,
        first_serial: first.serial,
        renewed_serial: second.serial,
        sim_clock_advanced_s: advanced,
    })
}

/// Why the Certificate did not get `what` in time, from its Ready condition.
async fn not_done(api: &Api<DynamicObject>, what: &str, limit: Duration) -> DrillError {
    let state = match api.get_opt(CERTIFICATE).await {
        Ok(Some(c)) => match ready(&c) {
            Some((s, reason, message)) => format!("Ready is {s} ({reason}): {message}"),
            None => "it has no Ready condition (is cert-manager running?)".into(),
        },
        Ok(None) => "it was deleted".into(),
        Err(e) => format!("it cannot be read: {e}"),
    };
    DrillError::Failed(format!(
        "the rehearsal Certificate was not {what} within {}: {state}",
        crate::measure::human(limit)
    ))
}

/// Deletes the claimed scratch namespace if it carries this run's label, and waits for it to go.
pub async fn cleanup(client: &Client, ctx: &RunContext, ns: &str) -> Result<Vec<String>, DrillError> {
    let api: Api<Namespace> = Api::all(client.clone());
    let Some(current) = api.get_opt(ns).await.map_err(failed(&format!("cannot read namespace {ns}")))? else {
        return Ok(vec![format!("namespace {ns} does not exist: nothing to delete")]);
    };
    let label = current.metadata.labels.as_ref().and_then(|l| l.get(RUN_LABEL));
    if label != Some(&ctx.run_id) {
        return Ok(vec![format!("namespace {ns} does not carry this run's {RUN_LABEL} label: left as it is")]);
    }
    let uid = current.metadata.uid.clone().unwrap_or_default();
    match api.delete(ns, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => return Err(DrillError::Error(format!("cannot delete namespace {ns}: {e}"))),
    }
    let gone =
        ctx.clock.timeout(NAMESPACE_GONE, await_condition(api, ns, kube::runtime::conditions::is_deleted(&uid))).await;
    match gone {
        Ok(Ok(_)) => Ok(vec![format!("deleted scratch namespace {ns}")]),
        Ok(Err(e)) => Err(DrillError::Error(format!("deleted namespace {ns}, but watching it go failed: {e}"))),
        Err(e) => Err(DrillError::Error(format!("deleted namespace {ns}, but it is still there ({e})"))),
    }
}
