//! Velero backup format (being written).
