//! `firedrill serve`: the scheduler daemon. It runs every drill and scenario on its schedule,
//! unattended, on the replica that holds the Lease, and says how they went on `/metrics`.
//!
//! [`scheduler`] decides when (pure rules over instants), [`lease`] who (leader election on a
//! `coordination.k8s.io/v1` Lease), [`metrics`] what is exported, [`daemon`] ties them to the
//! engine's runner, the spec files, signals and the HTTP endpoints.

pub mod daemon;
pub mod lease;
pub mod metrics;
pub mod scheduler;
