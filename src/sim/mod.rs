//! `firedrill sim`: a local Kubernetes API server and the controllers drills depend on, faithful
//! enough that kube-rs and kubectl cannot tell it from a small cluster.

pub mod admin;
pub mod api;
pub mod certmanager;
pub mod clock;
pub mod config;
pub mod controllers;
pub mod defaults;
pub mod eviction;
pub mod faults;
pub mod patch;
pub use crate::quantity;
pub mod registry;
pub mod selector;
pub mod server;
pub mod status;
pub mod store;
pub mod table;
pub mod velero;

pub use server::{Sim, SimOptions};
