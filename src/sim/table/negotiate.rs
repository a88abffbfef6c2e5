//! Content negotiation for Tables: which media range of an Accept header the real server would pick,
//! and whether that range asks for a `meta.k8s.io` Table.
//!
//! The server sorts the ranges by `q` (then concrete types before wildcards, keeping the client's
//! order otherwise) and serves the first one it can. A range naming a conversion (`as`, `g`, `v`)
//! is servable only for the conversions it knows: Table and PartialObjectMetadata(List) in
//! `meta.k8s.io/v1` or `v1beta1`. The simulator answers JSON only, so other media types are skipped.

/// One media range of an Accept header.
struct MediaRange<'a> {
    kind: &'a str,
    subtype: &'a str,
    q: f64,
    params: Vec<(&'a str, &'a str)>,
}

impl<'a> MediaRange<'a> {
    fn parse(range: &'a str) -> Option<Self> {
        let mut parts = range.split(';').map(str::trim);
        let (kind, subtype) = parts.next()?.split_once('/')?;
        let mut params = Vec::new();
        let mut q = 1.0;
        for p in parts {
            let Some((k, v)) = p.split_once('=') else { continue };
            let (k, v) = (k.trim(), v.trim().trim_matches('"'));
            if k == "q" {
                q = v.parse().unwrap_or(0.0);
            } else {
                params.push((k, v));
            }
        }
        Some(Self { kind, subtype, q, params })
    }

    fn param(&self, name: &str) -> Option<&'a str> {
        self.params.iter().find(|(k, _)| *k == name).map(|(_, v)| *v)
    }

    /// `Some(true)` for a Table, `Some(false)` for the object itself (or a PartialObjectMetadata
    /// conversion, which is not a Table), `None` when the server would pass over this range.
    fn serves(&self) -> Option<bool> {
        let json = matches!((self.kind, self.subtype), ("application", "json" | "*") | ("*", "*"));
        if !json {
            return None;
        }
        let (kind, group, version) = (self.param("as"), self.param("g"), self.param("v"));
        if kind.is_none() && group.is_none() && version.is_none() {
            return Some(false);
        }
        let meta = group == Some("meta.k8s.io") && matches!(version, Some("v1" | "v1beta1"));
        match kind {
            Some("Table") if meta => Some(true),
            Some("PartialObjectMetadata" | "PartialObjectMetadataList") if meta => Some(false),
            _ => None,
        }
    }

    /// Wildcards sort after concrete types at equal `q`.
    fn specificity(&self) -> u8 {
        u8::from(self.kind != "*") + u8::from(self.subtype != "*")
    }
}

/// Whether a request's Accept header asks for a Table: the range the server would serve is
/// `application/json;as=Table;g=meta.k8s.io;v=v1` (or `v1beta1`).
pub fn wants_table(accept: &str) -> bool {
    let mut ranges: Vec<MediaRange> = accept.split(',').filter_map(MediaRange::parse).collect();
    ranges.sort_by(|a, b| b.q.total_cmp(&a.q).then(b.specificity().cmp(&a.specificity())));
    ranges.iter().find_map(MediaRange::serves).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KUBECTL_GET: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";

    #[test]
    fn kubectl_get_asks_for_a_table_and_plain_json_does_not() {
        assert!(wants_table(KUBECTL_GET));
        assert!(wants_table("application/json;as=Table;v=v1beta1;g=meta.k8s.io"));
        assert!(!wants_table("application/json"));
        assert!(!wants_table("*/*"));
        assert!(!wants_table(""));
    }

    #[test]
    fn the_first_range_the_server_can_serve_wins() {
        assert!(!wants_table("application/json,application/json;as=Table;v=v1;g=meta.k8s.io"));
        assert!(wants_table("application/json;q=0.5,application/json;as=Table;v=v1;g=meta.k8s.io"));
        assert!(wants_table(
            "application/json;as=Table;v=v2;g=meta.k8s.io,application/json;as=Table;v=v1;g=meta.k8s.io"
        ));
        assert!(!wants_table("application/json;as=Table,application/json"), "a Table without g and v is skipped");
        assert!(!wants_table("application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io"));
        assert!(wants_table(
            "application/yaml;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1;g=meta.k8s.io"
        ));
    }
}
