//! The Kubernetes cluster a drill acts on: the `cluster` block of a drill file, the kube-rs
//! client made from it, and the identity of the cluster that goes into records.
//!
//! Without a `cluster` block, a drill uses what kubectl would: `$KUBECONFIG`, else
//! `~/.kube/config`, else the in-cluster service account.

use std::path::PathBuf;

use k8s_openapi::api::core::v1::Namespace;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::engine::{DrillError, RunContext};
use crate::spec::raw::EnvText;
use crate::spec::{Loc, Validator};

/// Which cluster, and as whom.
#[derive(Deserialize, JsonSchema, Debug, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(rename = "Cluster")]
pub struct Spec {
    /// A kubeconfig file; `$KUBECONFIG` or `~/.kube/config` when unset (in a pod: its service account).
    #[serde(default)]
    pub kubeconfig: Option<Loc<EnvText>>,
    /// A context of that kubeconfig; its current context when unset.
    #[serde(default)]
    pub context: Option<Loc<String>>,
}

/// The validated cluster block.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kubeconfig: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
}

/// Validates a drill file's `cluster` block (absent: the defaults).
pub fn validate(v: &mut Validator, spec: Option<&Loc<Spec>>) -> Target {
    let Some(spec) = spec else { return Target::default() };
    Target {
        kubeconfig: spec.value.kubeconfig.as_ref().and_then(|k| v.expand(k)).map(PathBuf::from),
        context: spec.value.context.as_ref().and_then(|c| v.non_empty(c, "cluster.context")),
    }
}

/// Whether kube-rs may retry 429, 503 and 504 answers by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retries {
    /// kube-rs's default: up to 15 retries with backoff, honouring `Retry-After`.
    Client,
    /// None: the caller sees every 429 (evictions a PDB blocks, which a drill must count and
    /// retry on its own terms).
    Caller,
}

impl Target {
    /// Where the client configuration comes from, in words.
    pub fn describe(&self) -> String {
        let file = match &self.kubeconfig {
            Some(p) => p.display().to_string(),
            None => "the default kubeconfig ($KUBECONFIG, ~/.kube/config or in-cluster)".into(),
        };
        match &self.context {
            Some(c) => format!("{file}, context {c}"),
            None => file,
        }
    }

    async fn config(&self) -> Result<Config, DrillError> {
        let options = KubeConfigOptions { context: self.context.clone(), ..KubeConfigOptions::default() };
        let loaded = match (&self.kubeconfig, &self.context) {
            (Some(path), _) => match Kubeconfig::read_from(path) {
                Ok(kc) => Config::from_custom_kubeconfig(kc, &options).await.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            },
            (None, Some(_)) => Config::from_kubeconfig(&options).await.map_err(|e| e.to_string()),
            (None, None) => Config::infer().await.map_err(|e| e.to_string()),
        };
        loaded.map_err(|e| DrillError::Error(format!("cannot configure a client for {}: {e}", self.describe())))
    }

    /// A client for the cluster. Makes no request. Besides kube-rs's own retries (with
    /// [`Retries::Client`]), it retries idempotent requests answered 500 or 502
    /// ([`ServerErrorRetry`]).
    pub async fn client(&self, retries: Retries) -> Result<Client, DrillError> {
        let mut config = self.config().await?;
        config.default_retry = retries == Retries::Client;
        let builder = kube::client::ClientBuilder::try_from(config)
            .map_err(|e| DrillError::Error(format!("cannot make a client for {}: {e}", self.describe())))?;
        Ok(builder
            .with_layer(&tower::buffer::BufferLayer::new(1024))
            .with_layer(&tower::retry::RetryLayer::new(ServerErrorRetry::default()))
            .build())
    }

    /// Connects, checks the cluster answers, and records its identity (API server URL and the
    /// `kube-system` namespace's UID, which survives renames of contexts and servers).
    pub async fn connect(&self, ctx: &RunContext, retries: Retries) -> Result<Client, DrillError> {
        let server = self.config().await?.cluster_url.to_string();
        let client = self.client(retries).await?;
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let kube_system = namespaces.get_opt("kube-system").await.map_err(|e| {
            DrillError::Error(format!("the cluster at {server} does not answer ({}): {e}", self.describe()))
        })?;
        ctx.target("cluster", server.trim_end_matches('/'));
        if let Some(uid) = kube_system.and_then(|ns| ns.metadata.uid) {
            ctx.target("clusterUid", uid);
        }
        Ok(client)
    }
}

/// Creates `obj`, carrying label `key` = `value`. A create answered 500 or 502 may have
/// happened, so it is tried again (up to three times), and a 409 for an object that carries the
/// label is taken as this caller's own create: the label says whose it is.
pub async fn create_labelled<K>(api: &Api<K>, obj: &K, key: &str, value: &str) -> Result<K, kube::Error>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + Serialize + std::fmt::Debug,
{
    let name = obj.meta().name.clone().unwrap_or_default();
    let mut attempt = 0;
    loop {
        match api.create(&kube::api::PostParams::default(), obj).await {
            Err(kube::Error::Api(s)) if matches!(s.code, 500 | 502) && attempt < 3 => {
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_millis(100 << attempt)).await;
            }
            Err(kube::Error::Api(s)) if s.code == 409 && attempt > 0 => {
                let existing = api.get(&name).await?;
                let labels = existing.meta().labels.as_ref();
                return match labels.and_then(|l| l.get(key)) {
                    Some(v) if v == value => Ok(existing),
                    _ => Err(kube::Error::Api(s)),
                };
            }
            other => return other,
        }
    }
}

/// Retries a request the API server answered 500 (InternalError) or 502 when its method is
/// idempotent (GET, HEAD, PUT, DELETE): a transient apiserver or etcd hiccup must not decide a
/// drill's verdict. kube-rs retries only 429, 503 and 504. A POST is never repeated here, since
/// a create that failed late may have happened: its callers decide.
#[derive(Clone, Default)]
pub struct ServerErrorRetry {
    attempt: u32,
}

impl ServerErrorRetry {
    /// Retries after 50 ms, 100 ms, 200 ms, 400 ms, 800 ms.
    const RETRIES: u32 = 5;
    const FIRST_DELAY: std::time::Duration = std::time::Duration::from_millis(50);
}

impl<Res, E> tower::retry::Policy<http::Request<kube::client::Body>, http::Response<Res>, E> for ServerErrorRetry {
    type Future = tokio::time::Sleep;

    fn retry(
        &mut self,
        req: &mut http::Request<kube::client::Body>,
        result: &mut Result<http::Response<Res>, E>,
    ) -> Option<Self::Future> {
        let idempotent =
            matches!(*req.method(), http::Method::GET | http::Method::HEAD | http::Method::PUT | http::Method::DELETE);
        let failed = matches!(result, Ok(r) if matches!(r.status().as_u16(), 500 | 502));
        if !(idempotent && failed) || self.attempt >= Self::RETRIES {
            return None;
        }
        let delay = Self::FIRST_DELAY * 2u32.pow(self.attempt);
        self.attempt += 1;
        tracing::debug!(method = %req.method(), path = req.uri().path(), attempt = self.attempt, "the API server answered 5xx; retrying");
        Some(tokio::time::sleep(delay))
    }

    fn clone_request(&mut self, req: &http::Request<kube::client::Body>) -> Option<http::Request<kube::client::Body>> {
        let body = req.body().try_clone()?;
        let mut copy =
            http::Request::builder().method(req.method().clone()).uri(req.uri().clone()).version(req.version());
        if let Some(headers) = copy.headers_mut() {
            headers.extend(req.headers().clone());
        }
        let mut copy = copy.body(body).ok()?;
        *copy.extensions_mut() = req.extensions().clone();
        Some(copy)
    }
}
