//! Patch application (being written).
