//! Checking a chain: every record present, in its place, unedited and linked to the one before.
//!
//! Pure: it takes each stored record's [`Digest`] (computed where the bytes are read, in
//! parallel) and returns the problems, so every kind of tampering can be tested without a store.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::record::{GENESIS, Record, sha256_hex};

/// The two fields that link a record into the chain.
#[derive(Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub seq: u64,
    pub prev: String,
}

/// What verification needs of one stored record: its hash and its link. The rest of the record
/// needs no reading: any change to it changes the hash, which the next record (or the head
/// anchor) holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest {
    pub key_seq: u64,
    pub sha256: String,
    /// `Err` says why the bytes are not a ledger record.
    pub link: Result<Link, String>,
}

/// Digests one stored record.
pub fn digest(key_seq: u64, bytes: &[u8]) -> Digest {
    Digest { key_seq, sha256: sha256_hex(bytes), link: serde_json::from_slice(bytes).map_err(|e| e.to_string()) }
}

/// `true` when `bytes` are a record in canonical form. Used to explain a broken link: a record
/// rewritten with other spacing or key order has the same content and another hash.
pub fn is_canonical(bytes: &[u8]) -> bool {
    serde_json::from_slice::<Record>(bytes).is_ok_and(|r| r.canonical() == bytes)
}

/// The head anchor the ledger writes after every append.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Head {
    pub seq: u64,
    pub sha256: String,
}

/// Something wrong with the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "problem", rename_all = "camelCase")]
pub enum Problem {
    /// Records `from..=to` are not in the store.
    Missing { from: u64, to: u64 },
    /// The object at `key_seq` holds the record numbered `record_seq`: records were moved or reordered.
    Misplaced { key_seq: u64, record_seq: u64 },
    /// Record `seq` does not name the hash of the record before it: that record was changed,
    /// or a record was inserted or removed between them.
    BrokenLink { seq: u64, expected: String, found: String },
    /// Record `seq` is valid JSON but not in canonical form: it was rewritten by hand.
    NotCanonical { seq: u64 },
    /// Record `seq` is not a ledger record at all.
    Unreadable { seq: u64, error: String },
    /// An object under `records/` that is not named like a record.
    Foreign { key: String },
    /// The head anchor names record `head_seq`, but the chain ends at `last_seq`: records were
    /// removed from the end.
    TailRemoved { head_seq: u64, last_seq: Option<u64> },
    /// The head anchor's hash for record `seq` differs from the record: it was changed.
    HeadMismatch { seq: u64, expected: String, found: String },
    /// The hash given with `--expect-head` is not the hash of any record in the chain.
    AnchorNotFound { sha256: String },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Missing { from, to } if from == to => write!(f, "record {from} is missing"),
            Problem::Missing { from, to } => write!(f, "records {from} to {to} are missing"),
            Problem::Misplaced { key_seq, record_seq } => {
                write!(f, "record {key_seq} holds record number {record_seq}: records were moved or reordered")
            }
            Problem::BrokenLink { seq, expected, found } => write!(
                f,
                "record {seq} names {found} as the hash of record {}, which hashes to {expected}: record {} was changed, or a record was inserted or removed before {seq}",
                seq.saturating_sub(1),
                seq.saturating_sub(1)
            ),
            Problem::NotCanonical { seq } => {
                write!(f, "record {seq} is not in canonical form: it was rewritten")
            }
            Problem::Unreadable { seq, error } => {
                write!(f, "record {seq} is not a ledger record: {error}")
            }
            Problem::Foreign { key } => {
                write!(f, "object {key} under records/ is not a ledger record")
            }
            Problem::TailRemoved { head_seq, last_seq } => match last_seq {
                Some(last) => write!(
                    f,
                    "the head anchor names record {head_seq}, but the chain ends at record {last}: records were removed from the end"
                ),
                None => {
                    write!(f, "the head anchor names record {head_seq}, but the chain is empty: records were removed")
                }
            },
            Problem::HeadMismatch { seq, expected, found } => write!(
                f,
                "the head anchor holds {expected} for record {seq}, which hashes to {found}: record {seq} (or the anchor) was changed"
            ),
            Problem::AnchorNotFound { sha256 } => {
                write!(f, "no record hashes to the expected head {sha256}: the chain was rewritten")
            }
        }
    }
}

/// The result of checking a chain.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub records: u64,
    /// The last record's sequence number and hash: the value to keep as an external anchor.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head: Option<Head>,
    pub problems: Vec<Problem>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Checks the digests (sorted by key) against each other, the head anchor and an optional
/// expected hash.
pub fn verify(digests: &[Digest], foreign: &[String], head: Option<&Head>, expect: Option<&str>) -> Report {
    let mut problems: Vec<Problem> = foreign.iter().map(|key| Problem::Foreign { key: key.clone() }).collect();
    let mut next = 0u64;
    let mut prev: Option<&str> = Some(GENESIS);
    for d in digests {
        if d.key_seq > next {
            problems.push(Problem::Missing { from: next, to: d.key_seq - 1 });
            prev = None;
        }
        match &d.link {
            Err(error) => problems.push(Problem::Unreadable { seq: d.key_seq, error: error.clone() }),
            Ok(link) => {
                if link.seq != d.key_seq {
                    problems.push(Problem::Misplaced { key_seq: d.key_seq, record_seq: link.seq });
                }
                if let Some(expected) = prev
                    && link.prev != expected
                {
                    problems.push(Problem::BrokenLink {
                        seq: d.key_seq,
                        expected: expected.to_string(),
                        found: link.prev.clone(),
                    });
                }
            }
        }
        prev = Some(&d.sha256);
        next = d.key_seq + 1;
    }
    let last = digests.last().map(|d| Head { seq: d.key_seq, sha256: d.sha256.clone() });
    if let Some(h) = head {
        match digests.iter().find(|d| d.key_seq == h.seq) {
            Some(d) if d.sha256 != h.sha256 => {
                problems.push(Problem::HeadMismatch { seq: h.seq, expected: h.sha256.clone(), found: d.sha256.clone() })
            }
            Some(_) => {}
            None if last.as_ref().is_some_and(|l| l.seq > h.seq) => {}
            None => problems.push(Problem::TailRemoved { head_seq: h.seq, last_seq: last.as_ref().map(|l| l.seq) }),
        }
    }
    if let Some(sha) = expect
        && !digests.iter().any(|d| d.sha256 == sha)
    {
        problems.push(Problem::AnchorNotFound { sha256: sha.to_string() });
    }
    Report { records: digests.len() as u64, head: last, problems }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    /// A record as read from the store: the sequence number its key names, and its bytes.
    #[derive(Debug, Clone)]
    struct Stored {
        key_seq: u64,
        bytes: Bytes,
    }
    use crate::clock::Timestamp;
    use crate::ledger::record::ScenarioOutcome;
    use crate::ledger::record::{Entry, Trigger};
    use crate::measure::Verdict;

    fn entry(n: u64) -> Entry {
        Entry::Scenario(Box::new(ScenarioOutcome {
            run_id: format!("run-{n}"),
            name: "s".into(),
            spec_sha256: "x".into(),
            trigger: Trigger { by: "cli".into(), operator: None },
            tool_version: "0".into(),
            labels: Default::default(),
            started: Timestamp::from_millis(n as i64),
            ended: Timestamp::from_millis(n as i64 + 1),
            verdict: Verdict::Passed,
            reason: String::new(),
            steps: vec![],
        }))
    }

    /// A valid chain of `n` records and its head anchor.
    fn chain(n: u64) -> (Vec<Stored>, Head) {
        let mut prev = GENESIS.to_string();
        let mut out = Vec::new();
        for seq in 0..n {
            let r =
                Record { seq, prev: prev.clone(), appended_at: Timestamp::from_millis(seq as i64), entry: entry(seq) };
            let bytes = r.canonical();
            prev = sha256_hex(&bytes);
            out.push(Stored { key_seq: seq, bytes: bytes.into() });
        }
        (out, Head { seq: n - 1, sha256: prev })
    }

    fn digests(stored: &[Stored]) -> Vec<Digest> {
        stored.iter().map(|s| digest(s.key_seq, &s.bytes)).collect()
    }

    fn check(stored: &[Stored], foreign: &[String], head: Option<&Head>, expect: Option<&str>) -> Report {
        verify(&digests(stored), foreign, head, expect)
    }

    fn rewrite(s: &Stored, f: impl FnOnce(&mut Record)) -> Stored {
        let mut r: Record = serde_json::from_slice(&s.bytes).unwrap();
        f(&mut r);
        Stored { key_seq: s.key_seq, bytes: r.canonical().into() }
    }

    #[test]
    fn an_untouched_chain_verifies() {
        let (c, head) = chain(5);
        let report = check(&c, &[], Some(&head), Some(&head.sha256));
        assert!(report.ok(), "{:?}", report.problems);
        assert_eq!(report.head, Some(head));
        assert!(check(&[], &[], None, None).ok());
    }

    #[test]
    fn an_edited_record_breaks_the_next_link() {
        let (mut c, head) = chain(5);
        c[2] = rewrite(&c[2], |r| r.appended_at = Timestamp::from_millis(999));
        let p = check(&c, &[], Some(&head), None).problems;
        assert!(matches!(p.as_slice(), [Problem::BrokenLink { seq: 3, .. }]), "{p:?}");
    }

    #[test]
    fn an_edited_last_record_disagrees_with_the_head_anchor() {
        let (mut c, head) = chain(3);
        c[2] = rewrite(&c[2], |r| r.appended_at = Timestamp::from_millis(999));
        let p = check(&c, &[], Some(&head), None).problems;
        assert!(matches!(p.as_slice(), [Problem::HeadMismatch { seq: 2, .. }]), "{p:?}");
    }

    #[test]
    fn a_hand_formatted_record_breaks_the_link_and_is_not_canonical() {
        let (mut c, head) = chain(3);
        assert!(is_canonical(&c[1].bytes));
        let value: serde_json::Value = serde_json::from_slice(&c[1].bytes).unwrap();
        c[1].bytes = serde_json::to_vec_pretty(&value).unwrap().into();
        assert!(!is_canonical(&c[1].bytes));
        let p = check(&c, &[], Some(&head), None).problems;
        assert!(matches!(p.as_slice(), [Problem::BrokenLink { seq: 2, .. }]), "{p:?}");
    }

    #[test]
    fn a_head_anchor_that_lags_is_still_checked_against_its_record() {
        let (mut c, _) = chain(4);
        let lagging = Head { seq: 1, sha256: sha256_hex(&c[1].bytes) };
        assert!(check(&c, &[], Some(&lagging), None).ok());
        c[1] = rewrite(&c[1], |r| r.appended_at = Timestamp::from_millis(999));
        let p = check(&c, &[], Some(&lagging), None).problems;
        assert!(p.iter().any(|x| matches!(x, Problem::HeadMismatch { seq: 1, .. })), "{p:?}");
    }

    #[test]
    fn a_removed_record_is_missing() {
        let (mut c, head) = chain(5);
        c.remove(1);
        let p = check(&c, &[], Some(&head), None).problems;
        assert_eq!(p, vec![Problem::Missing { from: 1, to: 1 }]);
    }

    #[test]
    fn records_removed_from_the_end_are_caught_by_the_head_anchor() {
        let (mut c, head) = chain(5);
        c.truncate(3);
        let p = check(&c, &[], Some(&head), None).problems;
        assert_eq!(p, vec![Problem::TailRemoved { head_seq: 4, last_seq: Some(2) }]);
        let p = check(&[], &[], Some(&head), None).problems;
        assert_eq!(p, vec![Problem::TailRemoved { head_seq: 4, last_seq: None }]);
    }

    #[test]
    fn reordered_records_are_misplaced() {
        let (mut c, head) = chain(5);
        let (a, b) = (c[1].bytes.clone(), c[2].bytes.clone());
        c[1].bytes = b;
        c[2].bytes = a;
        let p = check(&c, &[], Some(&head), None).problems;
        assert!(p.contains(&Problem::Misplaced { key_seq: 1, record_seq: 2 }), "{p:?}");
        assert!(p.contains(&Problem::Misplaced { key_seq: 2, record_seq: 1 }), "{p:?}");
    }

    #[test]
    fn an_inserted_record_shifts_the_rest_out_of_place() {
        let (c, _) = chain(4);
        // A forger writes a well-linked record 2 and shifts the old 2 and 3 to 3 and 4.
        let forged =
            Record { seq: 2, prev: sha256_hex(&c[1].bytes), appended_at: Timestamp::from_millis(5), entry: entry(77) };
        let mut tampered = c[..2].to_vec();
        tampered.push(Stored { key_seq: 2, bytes: forged.canonical().into() });
        tampered.extend(c[2..].iter().map(|s| Stored { key_seq: s.key_seq + 1, bytes: s.bytes.clone() }));
        let p = check(&tampered, &[], None, None).problems;
        assert!(p.contains(&Problem::Misplaced { key_seq: 3, record_seq: 2 }), "{p:?}");
        assert!(
            matches!(
                p.iter().find(|p| matches!(p, Problem::BrokenLink { .. })),
                Some(Problem::BrokenLink { seq: 3, .. })
            ),
            "{p:?}"
        );
    }

    #[test]
    fn foreign_objects_garbage_and_unknown_anchors_are_reported() {
        let (mut c, head) = chain(2);
        c[0].bytes = Bytes::from_static(b"not json");
        let p = check(&c, &["records/notes.txt".into()], Some(&head), Some("abc")).problems;
        assert!(matches!(p[0], Problem::Foreign { .. }));
        assert!(matches!(p[1], Problem::Unreadable { seq: 0, .. }));
        assert_eq!(p.last(), Some(&Problem::AnchorNotFound { sha256: "abc".into() }));
        // Each problem reads as a sentence naming the record.
        assert!(p[1].to_string().starts_with("record 0 is not a ledger record"));
    }
}
