//! Server-side table printing (being written).
