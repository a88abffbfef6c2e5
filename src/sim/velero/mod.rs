//! The Velero server stand-in.

pub mod format;
