//! firedrill: disaster-recovery drills for Kubernetes and etcd.
//!
//! A drill is declared in YAML ([`spec`]), validated into a [`plan`], driven through its phases by
//! the [`engine`], measured ([`measure`]) and recorded in a tamper-evident [`ledger`]. The drills
//! themselves live in [`drills`]; [`etcd`] and [`store`] talk to the real systems; [`notify`] tells
//! people about outcomes.

pub mod cli;
pub mod clock;
pub mod cluster;
pub mod drills;
pub mod engine;
pub mod etcd;
pub mod ledger;
pub mod measure;
pub mod notify;
pub mod plan;
pub mod probes;
pub mod progress;
pub mod quantity;
pub mod report;
pub mod serve;
pub mod sim;
pub mod spec;
pub mod store;
pub mod velero;
