//! Certificate issuance (being written).
