//! firedrill's integration tests: one binary, real etcd and a real S3 server where a test needs
//! them (started on free loopback ports by `support`), the CLI run as a subprocess where the
//! behaviour is the command's.

mod cert_expiry;
mod cli;
mod deploy;
mod engine;
mod etcd_restore;
mod gameday;
mod ledger;
mod node_drain;
mod notify;
mod pdb_check;
mod probes;
mod serve;
mod sim_certmanager;
mod sim_cli;
mod sim_fidelity;
mod sim_kubectl;
mod sim_velero;
mod specs;
mod support;
mod velero_restore;
