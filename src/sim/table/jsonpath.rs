//! The JSONPath subset that CRD printer columns use (`.status.phase`, `.spec.items[0].name`,
//! `.status.conditions[?(@.type == "Ready")].status`, `['dotted.key']`, `[*]`), evaluated the way
//! client-go's jsonpath does with missing keys allowed: a missing field yields no result, not an error.

use serde_json::Value;

/// One step of a path.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Field(String),
    Index(i64),
    All,
    /// `[?(@.path op literal)]`, or `[?(@.path)]` (exists) when `op` is empty.
    Filter {
        path: Vec<Step>,
        op: String,
        literal: Value,
    },
}

/// A parsed path.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Path(Vec<Step>);

impl Path {
    /// Parses a column's `jsonPath`; `None` for syntax outside the subset.
    pub(super) fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let text = text.strip_prefix('{').and_then(|t| t.strip_suffix('}')).unwrap_or(text);
        let text = text.strip_prefix('$').unwrap_or(text);
        parse_steps(text).map(Path)
    }

    /// The values the path selects in `obj`, in document order.
    pub(super) fn find<'a>(&self, obj: &'a Value) -> Result<Vec<&'a Value>, ()> {
        walk(&self.0, vec![obj])
    }
}

fn parse_steps(mut text: &str) -> Option<Vec<Step>> {
    let mut steps = Vec::new();
    while !text.is_empty() {
        if let Some(rest) = text.strip_prefix('[') {
            let end = closing_bracket(rest)?;
            steps.push(parse_bracket(&rest[..end])?);
            text = &rest[end + 1..];
        } else if let Some(rest) = text.strip_prefix('.') {
            if rest.starts_with('.') {
                return None; // recursive descent is outside the subset
            }
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            if end > 0 {
                steps.push(Step::Field(rest[..end].to_string()));
            }
            text = &rest[end..];
        } else {
            return None;
        }
    }
    Some(steps)
}

/// Where the `]` closing a bracket starts, skipping quoted text and nested brackets.
fn closing_bracket(text: &str) -> Option<usize> {
    let (mut depth, mut quote) = (0usize, None);
    for (i, c) in text.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '[') => depth += 1,
            (None, ']') if depth == 0 => return Some(i),
            (None, ']') => depth -= 1,
            _ => {}
        }
    }
    None
}

fn parse_bracket(inner: &str) -> Option<Step> {
    let inner = inner.trim();
    if inner == "*" {
        return Some(Step::All);
    }
    if let Some(filter) = inner.strip_prefix("?(").and_then(|f| f.strip_suffix(')')) {
        return parse_filter(filter.trim());
    }
    if let Some(key) = unquote(inner) {
        return Some(Step::Field(key.to_string()));
    }
    inner.parse().ok().map(Step::Index)
}

fn parse_filter(filter: &str) -> Option<Step> {
    let relative = filter.strip_prefix('@')?;
    let ops = ["==", "!=", "<=", ">=", "<", ">"];
    // The leftmost operator; at one position the longer one (`<=` rather than `<`).
    let found = ops.iter().filter_map(|op| relative.find(op).map(|at| (at, *op)));
    let Some((at, op)) = found.min_by_key(|(at, op)| (*at, std::cmp::Reverse(op.len()))) else {
        return Some(Step::Filter { path: parse_steps(relative.trim())?, op: String::new(), literal: Value::Null });
    };
    let path = parse_steps(relative[..at].trim())?;
    let right = relative[at + op.len()..].trim();
    let literal = match unquote(right) {
        Some(s) => Value::String(s.to_string()),
        None => serde_json::from_str(right).ok()?,
    };
    Some(Step::Filter { path, op: op.to_string(), literal })
}

fn unquote(text: &str) -> Option<&str> {
    ['"', '\''].iter().find_map(|q| text.strip_prefix(*q).and_then(|t| t.strip_suffix(*q)))
}

fn walk<'a>(steps: &[Step], mut current: Vec<&'a Value>) -> Result<Vec<&'a Value>, ()> {
    for step in steps {
        let mut next = Vec::new();
        for v in current {
            apply(step, v, &mut next)?;
        }
        current = next;
    }
    Ok(current)
}

fn apply<'a>(step: &Step, v: &'a Value, out: &mut Vec<&'a Value>) -> Result<(), ()> {
    match step {
        Step::Field(name) => out.extend(v.get(name.as_str())),
        Step::Index(i) => {
            let items = v.as_array().ok_or(())?;
            let len = i64::try_from(items.len()).map_err(|_| ())?;
            let at = if *i < 0 { len + i } else { *i };
            out.extend(usize::try_from(at).ok().and_then(|at| items.get(at)));
        }
        Step::All => match v {
            Value::Array(items) => out.extend(items),
            Value::Object(m) => out.extend(m.values()),
            _ => {}
        },
        Step::Filter { path, op, literal } => {
            let items = v.as_array().ok_or(())?;
            for item in items {
                if matches(&walk(path, vec![item])?, op, literal) {
                    out.push(item);
                }
            }
        }
    }
    Ok(())
}

/// Whether a filter's left-hand values satisfy `op literal`.
fn matches(found: &[&Value], op: &str, literal: &Value) -> bool {
    let Some(left) = found.first() else { return false };
    if op.is_empty() {
        return true;
    }
    let ordering = match (left, literal) {
        (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
        (Value::Number(a), Value::Number(b)) => a.as_f64().zip(b.as_f64()).and_then(|(a, b)| a.partial_cmp(&b)),
        _ => None,
    };
    match (op, ordering) {
        ("==", o) => o.is_some_and(|o| o.is_eq()) || *left == literal,
        ("!=", o) => !o.is_some_and(|o| o.is_eq()) && *left != literal,
        ("<", Some(o)) => o.is_lt(),
        ("<=", Some(o)) => o.is_le(),
        (">", Some(o)) => o.is_gt(),
        (">=", Some(o)) => o.is_ge(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn find(path: &str, obj: &Value) -> Vec<Value> {
        Path::parse(path).unwrap().find(obj).unwrap().into_iter().cloned().collect()
    }

    #[test]
    fn fields_indexes_and_filters_select_values() {
        let obj = json!({"metadata": {"labels": {"app.kubernetes.io/name": "web"}},
            "status": {"conditions": [{"type": "Issuing", "status": "False"}, {"type": "Ready", "status": "True"}]}});
        assert_eq!(find(r#".status.conditions[?(@.type == "Ready")].status"#, &obj), [json!("True")]);
        assert_eq!(find(".status.conditions[0].type", &obj), [json!("Issuing")]);
        assert_eq!(find(".status.conditions[?(@.status != 'True')].type", &obj), [json!("Issuing")]);
        assert_eq!(find(".status.conditions[-1].type", &obj), [json!("Ready")]);
        assert_eq!(find(".status.conditions[*].status", &obj), [json!("False"), json!("True")]);
        assert_eq!(find(".metadata.labels['app.kubernetes.io/name']", &obj), [json!("web")]);
        assert!(find(".status.phase", &obj).is_empty(), "a missing key is no result, not an error");
        assert!(find(r#".spec.conditions[?(@.type=="Ready")].status"#, &obj).is_empty());
    }

    #[test]
    fn unsupported_or_ill_typed_paths_fail() {
        assert!(Path::parse("..status").is_none());
        assert!(Path::parse(".a[").is_none());
        let obj = json!({"status": {"phase": "Ready"}});
        assert!(Path::parse(".status[0]").unwrap().find(&obj).is_err(), "indexing a map is an error");
    }
}
