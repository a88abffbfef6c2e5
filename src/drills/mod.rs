//! The registry of built-in drills: each registered by name, with its spec block, its
//! validation, its implementation of the [`Drill`] contract and its cleanup.
//!
//! Adding a drill: a module here, one field in [`crate::spec::raw::DrillFile`], and one arm in
//! each function below.

pub mod cert_expiry;
pub mod etcd_restore;
pub mod node_drain;
pub mod pdb_check;
pub mod severity;
pub mod velero_restore;
pub mod workloads;

use serde::Serialize;

use crate::engine::{Claim, Drill, DrillError, RunContext};
use crate::plan::Timeouts;
use crate::spec::Validator;
use crate::spec::raw::DrillFile;

/// The validated parameters of a drill, by type.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum DrillParams {
    EtcdRestore(etcd_restore::Params),
    PdbCheck(pdb_check::Params),
    NodeDrain(node_drain::Params),
    CertExpiry(cert_expiry::Params),
    VeleroRestore(velero_restore::Params),
}

/// `(registered name, spec block)` of every drill type.
pub const KINDS: &[(&str, &str)] = &[
    (etcd_restore::KIND, "etcdRestore"),
    (pdb_check::KIND, "pdbCheck"),
    (node_drain::KIND, "nodeDrain"),
    (cert_expiry::KIND, "certExpiry"),
    (velero_restore::KIND, "veleroRestore"),
];

impl DrillParams {
    pub fn kind(&self) -> &'static str {
        match self {
            DrillParams::EtcdRestore(_) => etcd_restore::KIND,
            DrillParams::PdbCheck(_) => pdb_check::KIND,
            DrillParams::NodeDrain(_) => node_drain::KIND,
            DrillParams::CertExpiry(_) => cert_expiry::KIND,
            DrillParams::VeleroRestore(_) => velero_restore::KIND,
        }
    }

    /// Whether the drill recovers something, so that its time from t0 to verified is a recovery
    /// time. A read-only check (pdb-check) has no RTO, and neither has cert-expiry: its renewal
    /// rehearsal's issuance and renewal times are marks and details, not a recovery.
    pub fn measures_recovery(&self) -> bool {
        !matches!(self, DrillParams::PdbCheck(_) | DrillParams::CertExpiry(_))
    }

    /// The cluster the drill acts on, for the scheduler's per-cluster limit: a Kubernetes
    /// cluster by its kubeconfig and context, or for etcd-restore its source etcd.
    pub fn cluster_key(&self) -> String {
        let kube = |t: &crate::cluster::Target| format!("kubernetes:{}", t.describe());
        match self {
            DrillParams::EtcdRestore(p) => format!("etcd:{:?}", p.source),
            DrillParams::PdbCheck(p) => kube(&p.cluster),
            DrillParams::NodeDrain(p) => kube(&p.cluster),
            DrillParams::CertExpiry(p) => kube(&p.cluster),
            DrillParams::VeleroRestore(p) => kube(&p.cluster),
        }
    }

    pub fn default_timeouts(&self) -> Timeouts {
        match self {
            DrillParams::EtcdRestore(_) => etcd_restore::DEFAULT_TIMEOUTS,
            DrillParams::PdbCheck(_) => pdb_check::DEFAULT_TIMEOUTS,
            DrillParams::NodeDrain(_) => node_drain::DEFAULT_TIMEOUTS,
            DrillParams::CertExpiry(_) => cert_expiry::DEFAULT_TIMEOUTS,
            DrillParams::VeleroRestore(p) => velero_restore::timeouts(p),
        }
    }

    /// A fresh drill for one run.
    pub fn instantiate(&self) -> Box<dyn Drill> {
        match self {
            DrillParams::EtcdRestore(p) => Box::new(etcd_restore::EtcdRestore::new(p.clone())),
            DrillParams::PdbCheck(p) => Box::new(pdb_check::PdbCheck::new(p.clone())),
            DrillParams::NodeDrain(p) => Box::new(node_drain::NodeDrain::new(p.clone())),
            DrillParams::CertExpiry(p) => Box::new(cert_expiry::CertExpiry::new(p.clone())),
            DrillParams::VeleroRestore(p) => Box::new(velero_restore::VeleroRestore::new(p.clone())),
        }
    }
}

/// Validates the one drill block of a drill file, and its `cluster` block for the drills that
/// act on Kubernetes.
pub fn validate(v: &mut Validator, raw: &DrillFile) -> Option<DrillParams> {
    let blocks = KINDS.iter().map(|(_, block)| format!("`{block}`")).collect::<Vec<_>>().join(", ");
    let given = [
        raw.etcd_restore.as_ref().map(|b| ("etcdRestore", b.at())),
        raw.pdb_check.as_ref().map(|b| ("pdbCheck", b.at())),
        raw.node_drain.as_ref().map(|b| ("nodeDrain", b.at())),
        raw.cert_expiry.as_ref().map(|b| ("certExpiry", b.at())),
        raw.velero_restore.as_ref().map(|b| ("veleroRestore", b.at())),
    ];
    let given: Vec<(&str, (u32, u32))> = given.into_iter().flatten().collect();
    if let [_, (second, at), ..] = given.as_slice() {
        v.error(
            *at,
            format!(
                "a Drill has exactly one drill block; `{}` and `{second}` are both here: put each in its own file",
                given[0].0
            ),
        );
        return None;
    }
    let cluster = crate::cluster::validate(v, raw.cluster.as_ref());
    if let (Some(c), Some(_)) = (&raw.cluster, &raw.etcd_restore) {
        v.error(
            c.at(),
            "`cluster` is for drills that act on Kubernetes; etcd-restore talks to etcd directly: remove it",
        );
    }
    if let Some(spec) = &raw.etcd_restore {
        return etcd_restore::validate(v, spec).map(DrillParams::EtcdRestore);
    }
    if let Some(spec) = &raw.pdb_check {
        refuse_targets(v, raw, pdb_check::KIND);
        return pdb_check::validate(v, spec, cluster).map(DrillParams::PdbCheck);
    }
    if let Some(spec) = &raw.node_drain {
        return node_drain::validate(v, spec, cluster).map(DrillParams::NodeDrain);
    }
    if let Some(spec) = &raw.cert_expiry {
        refuse_targets(v, raw, cert_expiry::KIND);
        return cert_expiry::validate(v, spec, cluster).map(DrillParams::CertExpiry);
    }
    if let Some(spec) = &raw.velero_restore {
        // Checked (with its error) among the targets; here only to refuse a backup too old.
        let rpo = raw
            .targets
            .as_ref()
            .and_then(|t| t.rpo.as_ref())
            .and_then(|d| humantime::parse_duration(d.value.0.trim()).ok());
        return velero_restore::validate(v, spec, cluster, &raw.name.value, rpo).map(DrillParams::VeleroRestore);
    }
    v.error(raw.kind.at(), format!("a Drill needs one drill block saying what to drill: one of {blocks}"));
    None
}

/// A drill that recovers nothing (a check) has no RTO or RPO: a recovery target on it could never
/// be met, so it is refused where it is written.
fn refuse_targets(v: &mut Validator, raw: &DrillFile, kind: &str) {
    for target in raw.targets.iter().flat_map(|t| [&t.rto, &t.rpo]).flatten() {
        v.error(
            target.at(),
            format!("{kind} recovers nothing, so it has no RTO or RPO to hold to a target: remove `targets`"),
        );
    }
}

/// Removes what a run of drill type `kind` claimed. Idempotent: safe to run again, and after a
/// crash at any point. Returns what it did, in words.
pub async fn cleanup(kind: &str, claim: &Claim, ctx: &RunContext) -> Result<Vec<String>, DrillError> {
    match kind {
        etcd_restore::KIND => etcd_restore::cleanup(claim, ctx).await,
        pdb_check::KIND => pdb_check::cleanup(claim, ctx).await,
        node_drain::KIND => node_drain::cleanup(claim, ctx).await,
        cert_expiry::KIND => cert_expiry::cleanup(claim, ctx).await,
        velero_restore::KIND => velero_restore::cleanup(claim, ctx).await,
        other => {
            Err(DrillError::Error(format!("unknown drill type `{other}`: this firedrill cannot clean up after it")))
        }
    }
}
