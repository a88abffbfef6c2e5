//! Collecting the certificates to judge: from the cluster (TLS Secrets, cert-manager
//! Certificates, Ingress TLS references, webhook and APIService CA bundles), from files and
//! kubeconfigs, and from live endpoints. Only `tls.crt`, `ca.crt` and CA bundles are parsed;
//! a Secret's `tls.key` is dropped unread with the listed object.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use base64::Engine;
use futures::StreamExt;
use k8s_openapi::api::admissionregistration::v1::{MutatingWebhookConfiguration, ValidatingWebhookConfiguration};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;
use kube::api::{ApiResource, DynamicObject, ListParams};
use kube::core::GroupVersionKind;
use kube::{Api, Client};
use serde::Serialize;
use serde_json::Value;

use super::analysis::{Finding, FindingCode, Inventory, Item, Layout, Managed, Renewer, Unreadable};
use super::chain::{self, Cert};
use super::endpoint;
use super::spec::Params;
use crate::clock::{Clock, Timestamp};
use crate::engine::RunContext;

/// The annotation by which cert-manager's CA injector fills a `caBundle`.
const INJECT_CA_FROM: &str = "cert-manager.io/inject-ca-from";

/// Endpoints fetched at once.
const CONCURRENT_FETCHES: usize = 32;

/// How many objects of each kind were read.
#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    pub tls_secrets: usize,
    pub certificates: usize,
    pub ingresses: usize,
    pub ca_bundles: usize,
    pub files: usize,
    pub endpoints: usize,
    pub certs_parsed: usize,
}

pub fn certificate_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("cert-manager.io", "v1", "Certificate"), "certificates")
}

fn unreadable(e: chain::ChainError) -> Unreadable {
    Unreadable { code: FindingCode::Unreadable, reason: e.to_string() }
}

/// A cert-manager Certificate as JSON → what the analysis needs, and the Secret it fills.
pub fn managed(obj: &Value) -> Option<(Managed, String)> {
    let ns = obj["metadata"]["namespace"].as_str()?.to_string();
    let name = obj["metadata"]["name"].as_str()?;
    let secret = obj["spec"]["secretName"].as_str()?.to_string();
    let r = &obj["spec"]["issuerRef"];
    let kind = r["kind"].as_str().filter(|k| !k.is_empty()).unwrap_or("Issuer");
    let ready =
        obj["status"]["conditions"].as_array().and_then(|cs| cs.iter().find(|c| c["type"] == "Ready")).map(|c| {
            let text = |k: &str| c[k].as_str().unwrap_or_default().to_string();
            (text("status"), text("reason"), text("message"))
        });
    let time = |k: &str| obj["status"][k].as_str().and_then(|t| t.parse::<Timestamp>().ok());
    Some((
        Managed {
            certificate: format!("{ns}/{name}"),
            namespace: ns,
            issuer: format!("{kind} {}", r["name"].as_str().unwrap_or_default()),
            ready,
            renewal_time: time("renewalTime"),
            not_after: time("notAfter"),
        },
        secret,
    ))
}

/// Items for the `tls.crt` and `ca.crt` of every `kubernetes.io/tls` Secret; `renewers` maps
/// `(namespace, name)` of a Secret to the cert-manager Certificate that fills it.
pub fn secret_items(secrets: &[Secret], renewers: &HashMap<(String, String), Renewer>) -> Vec<Item> {
    let mut items = Vec::new();
    for s in secrets.iter().filter(|s| s.type_.as_deref() == Some("kubernetes.io/tls")) {
        let ns = s.metadata.namespace.clone().unwrap_or_default();
        let name = s.metadata.name.clone().unwrap_or_default();
        let renewer = renewers.get(&(ns.clone(), name.clone())).cloned().unwrap_or(Renewer::Person);
        let data = s.data.as_ref();
        let crt = data.and_then(|d| d.get("tls.crt")).map(|b| b.0.as_slice()).unwrap_or_default();
        let object = format!("Secret {ns}/{name}");
        items.push(Item {
            object: object.clone(),
            namespace: Some(ns.clone()),
            field: "tls.crt".into(),
            layout: Layout::Chain,
            certs: chain::parse(crt).map_err(unreadable),
            renewer: renewer.clone(),
            expected_names: Vec::new(),
            served: None,
        });
        if let Some(ca) = data.and_then(|d| d.get("ca.crt")).filter(|b| !b.0.iter().all(u8::is_ascii_whitespace)) {
            items.push(Item {
                object,
                namespace: Some(ns),
                field: "ca.crt".into(),
                layout: Layout::Bundle,
                certs: chain::parse(&ca.0).map_err(unreadable),
                renewer,
                expected_names: Vec::new(),
                served: None,
            });
        }
    }
    items
}

fn bundle_item(object: String, field: String, bundle: &[u8], annotations: Option<&BTreeMap<String, String>>) -> Item {
    let renewer = match annotations.and_then(|a| a.get(INJECT_CA_FROM)) {
        Some(from) => Renewer::CaInjector { from: from.clone() },
        None => Renewer::Person,
    };
    Item {
        object,
        namespace: None,
        field,
        layout: Layout::Bundle,
        certs: chain::parse(bundle).map_err(unreadable),
        renewer,
        expected_names: Vec::new(),
        served: None,
    }
}

/// Lists an optional kind: a cluster without it (404) or without permission is logged, not fatal.
async fn optional<K>(ctx: &RunContext, api: Api<K>, what: &str) -> Vec<K>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.list(&ListParams::default()).await {
        Ok(l) => l.items,
        Err(kube::Error::Api(s)) if s.code == 404 => {
            ctx.log(format!("{what} are not served by this cluster: none checked"));
            Vec::new()
        }
        Err(e) => {
            ctx.warn(format!("cannot list {what} ({e}): they were not checked"));
            Vec::new()
        }
    }
}

/// Everything the cluster holds.
pub async fn from_cluster(
    client: &Client,
    ctx: &RunContext,
    inv: &mut Inventory,
    counts: &mut Counts,
) -> Result<(), kube::Error> {
    let certificates: Vec<DynamicObject> =
        optional(ctx, Api::all_with(client.clone(), &certificate_resource()), "cert-manager Certificates").await;
    let mut renewers = HashMap::new();
    for c in certificates.iter().filter_map(|c| serde_json::to_value(c).ok()) {
        if let Some((m, secret)) = managed(&c) {
            renewers.insert(
                (m.namespace.clone(), secret),
                Renewer::CertManager { certificate: m.certificate.clone(), issuer: m.issuer.clone() },
            );
            inv.certificates.push(m);
        }
    }
    counts.certificates = inv.certificates.len();
    let secrets = Api::<Secret>::all(client.clone()).list(&ListParams::default()).await?.items;
    let mut items = secret_items(&secrets, &renewers);
    counts.tls_secrets = secrets.iter().filter(|s| s.type_.as_deref() == Some("kubernetes.io/tls")).count();
    drop(secrets);

    let ingresses: Vec<Ingress> = optional(ctx, Api::all(client.clone()), "Ingresses").await;
    counts.ingresses = ingresses.len();
    for ing in &ingresses {
        let ns = ing.metadata.namespace.clone().unwrap_or_default();
        let name = ing.metadata.name.clone().unwrap_or_default();
        for tls in ing.spec.as_ref().and_then(|s| s.tls.as_ref()).into_iter().flatten() {
            let Some(secret) = &tls.secret_name else { continue };
            let object = format!("Secret {ns}/{secret}");
            match items.iter_mut().find(|i| i.object == object && i.field == "tls.crt") {
                Some(item) => item.expected_names.extend(tls.hosts.clone().unwrap_or_default()),
                None => inv.found.push(Finding::new(
                    FindingCode::SecretMissing,
                    &format!("Ingress {ns}/{name}"),
                    Some(&ns),
                    &Renewer::Person,
                    format!("its TLS entry names Secret {secret}, which is not a kubernetes.io/tls Secret in {ns}"),
                )),
            }
        }
    }

    let validating: Vec<ValidatingWebhookConfiguration> =
        optional(ctx, Api::all(client.clone()), "ValidatingWebhookConfigurations").await;
    for w in &validating {
        let name = w.metadata.name.clone().unwrap_or_default();
        for hook in w.webhooks.iter().flatten() {
            if let Some(b) = &hook.client_config.ca_bundle {
                items.push(bundle_item(
                    format!("ValidatingWebhookConfiguration {name}"),
                    format!("caBundle of webhook {}", hook.name),
                    &b.0,
                    w.metadata.annotations.as_ref(),
                ));
                counts.ca_bundles += 1;
            }
        }
    }
    let mutating: Vec<MutatingWebhookConfiguration> =
        optional(ctx, Api::all(client.clone()), "MutatingWebhookConfigurations").await;
    for w in &mutating {
        let name = w.metadata.name.clone().unwrap_or_default();
        for hook in w.webhooks.iter().flatten() {
            if let Some(b) = &hook.client_config.ca_bundle {
                items.push(bundle_item(
                    format!("MutatingWebhookConfiguration {name}"),
                    format!("caBundle of webhook {}", hook.name),
                    &b.0,
                    w.metadata.annotations.as_ref(),
                ));
                counts.ca_bundles += 1;
            }
        }
    }
    let services: Vec<APIService> = optional(ctx, Api::all(client.clone()), "APIServices").await;
    for s in &services {
        if let Some(b) = s.spec.as_ref().and_then(|sp| sp.ca_bundle.as_ref()) {
            let name = s.metadata.name.clone().unwrap_or_default();
            items.push(bundle_item(
                format!("APIService {name}"),
                "caBundle".into(),
                &b.0,
                s.metadata.annotations.as_ref(),
            ));
            counts.ca_bundles += 1;
        }
    }
    inv.items.extend(items);
    Ok(())
}

fn file_item(object: String, field: &str, certs: Result<Vec<Cert>, Unreadable>) -> Item {
    Item {
        object,
        namespace: None,
        field: field.to_string(),
        layout: Layout::Chain,
        certs,
        renewer: Renewer::Person,
        expected_names: Vec::new(),
        served: None,
    }
}

fn read(path: &Path) -> Result<Vec<Cert>, Unreadable> {
    let bytes = std::fs::read(path).map_err(|e| Unreadable {
        code: FindingCode::Unreadable,
        reason: format!("cannot read {}: {e}", path.display()),
    })?;
    chain::parse(&bytes).map_err(unreadable)
}

/// Certificate files and kubeconfigs named in the spec.
pub fn from_files(params: &Params, inv: &mut Inventory, counts: &mut Counts) {
    for path in &params.files {
        inv.items.push(file_item(format!("file {}", path.display()), "certificate", read(path)));
        counts.files += 1;
    }
    for path in &params.kubeconfigs {
        counts.files += 1;
        let object = format!("kubeconfig {}", path.display());
        let kc = match kube::config::Kubeconfig::read_from(path) {
            Ok(kc) => kc,
            Err(e) => {
                let u = Unreadable { code: FindingCode::Unreadable, reason: format!("not a kubeconfig: {e}") };
                inv.items.push(file_item(object, "kubeconfig", Err(u)));
                continue;
            }
        };
        let base = path.parent().unwrap_or(Path::new("."));
        let pick = |data: &Option<String>, file: &Option<String>| -> Option<Result<Vec<Cert>, Unreadable>> {
            if let Some(d) = data {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(d.trim())
                    .map_err(|e| Unreadable { code: FindingCode::Unreadable, reason: format!("not base64: {e}") });
                return Some(bytes.and_then(|b| chain::parse(&b).map_err(unreadable)));
            }
            file.as_ref().map(|f| read(&base.join(f)))
        };
        for user in &kc.auth_infos {
            let Some(a) = &user.auth_info else { continue };
            if let Some(certs) = pick(&a.client_certificate_data, &a.client_certificate) {
                inv.items.push(file_item(object.clone(), &format!("client certificate of user {}", user.name), certs));
            }
        }
        for cluster in &kc.clusters {
            let Some(c) = &cluster.cluster else { continue };
            if let Some(certs) = pick(&c.certificate_authority_data, &c.certificate_authority) {
                let mut item =
                    file_item(object.clone(), &format!("certificate authority of cluster {}", cluster.name), certs);
                item.layout = Layout::Bundle;
                inv.items.push(item);
            }
        }
    }
}

/// The chains the endpoints serve, fetched concurrently.
pub async fn from_endpoints(params: &Params, clock: Clock, inv: &mut Inventory, counts: &mut Counts) {
    let limit = params.endpoint_timeout;
    // Owned endpoints: a stream of futures borrowing them is not `Send` for every lifetime.
    let fetched = futures::stream::iter(params.endpoints.clone())
        .map(move |e| async move {
            let served = endpoint::fetch(&e, clock, limit).await;
            let certs = served.and_then(|chain| {
                chain
                    .iter()
                    .map(|der| chain::parse(der).map(|mut c| c.remove(0)))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(unreadable)
            });
            let (anchors, ca_item) = match e.ca.as_ref().map(|p| (p, read(p))) {
                Some((_, Ok(a))) => (a, None),
                Some((p, Err(u))) => {
                    (Vec::new(), Some(file_item(format!("file {}", p.display()), "endpoint CA", Err(u))))
                }
                None => (Vec::new(), None),
            };
            let item = Item {
                object: format!("endpoint {}", e.address()),
                namespace: None,
                field: match &e.sni {
                    Some(s) => format!("served chain (SNI {s})"),
                    None => "served chain".into(),
                },
                layout: Layout::Chain,
                certs,
                renewer: Renewer::Unknown,
                expected_names: vec![e.expected_name().to_string()],
                served: Some(anchors),
            };
            std::iter::once(item).chain(ca_item).collect::<Vec<Item>>()
        })
        .buffer_unordered(CONCURRENT_FETCHES)
        .collect::<Vec<Vec<Item>>>()
        .await;
    counts.endpoints = params.endpoints.len();
    inv.items.extend(fetched.into_iter().flatten());
}
