//! The cert-manager stand-in.

pub mod pki;
