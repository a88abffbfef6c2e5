//! A renderer for the subset of Go templates and Helm functions that `deploy/helm/firedrill` uses,
//! so that the checked-in manifests can be re-rendered and compared without helm (which cannot
//! be installed on the build machines).
//!
//! Faithful to Go's `text/template` for: text and `{{ }}` actions with `{{-`/`-}}` trimming,
//! `{{/* comments */}}`, `if`/`else if`/`else`, `range` (lists; maps in sorted key order; with
//! `$k, $v :=`), `with`, `define` and `include`, `$`, `.` and field chains, pipelines, string
//! and integer literals. Helm/Sprig functions: `include`, `toYaml`, `nindent`, `indent`, `quote`,
//! `default`, `trunc`, `trimSuffix`, `join`, `not`. Anything else is an error, never a guess:
//! printing a missing value (helm would print nothing), a map or a list, or a number that is not
//! a whole number below 2^53 is refused, and `toYaml` refuses strings whose YAML form it cannot
//! be sure of (see [`yaml_scalar`]).

use std::collections::HashMap;

use serde_json::Value;

pub type Result<T> = std::result::Result<T, String>;

#[derive(Debug, Clone)]
enum Arg {
    /// `.a.b` on the dot (an empty path is the dot itself).
    Field(Vec<String>),
    /// `$x.a.b` (`$` alone is named "").
    Var(String, Vec<String>),
    Literal(Value),
    Func(String),
    Sub(Pipeline),
}

#[derive(Debug, Clone, Default)]
struct Pipeline {
    decl: Vec<String>,
    cmds: Vec<Vec<Arg>>,
}

#[derive(Debug, Clone)]
enum Node {
    Text(String),
    Print(Pipeline),
    If(Vec<(Pipeline, Vec<Node>)>, Vec<Node>),
    Range(Pipeline, Vec<Node>, Vec<Node>),
    With(Pipeline, Vec<Node>, Vec<Node>),
}

/// Raw pieces of a template: text, and action bodies with their trim markers already applied.
enum Piece {
    Text(String),
    Action(String),
}

fn split(src: &str) -> Result<Vec<Piece>> {
    let mut out = Vec::new();
    let mut rest = src;
    let mut trim_next = false;
    while let Some(start) = rest.find("{{") {
        let mut text = &rest[..start];
        if trim_next {
            text = text.trim_start();
        }
        let after = &rest[start + 2..];
        let trim_before = after.starts_with("- ") || after.starts_with("-\n");
        if trim_before {
            text = text.trim_end();
        }
        out.push(Piece::Text(text.to_string()));
        let body_start = if trim_before { 2 } else { 0 };
        let end =
            find_close(after).ok_or_else(|| format!("unclosed action near {:?}", &after[..after.len().min(40)]))?;
        let mut body = &after[body_start..end];
        trim_next = body.ends_with(" -") || body.ends_with("\n-");
        if trim_next {
            body = &body[..body.len() - 2];
        }
        let body = body.trim();
        if !(body.starts_with("/*") && body.ends_with("*/")) {
            out.push(Piece::Action(body.to_string()));
        }
        rest = &after[end + 2..];
    }
    let text = if trim_next { rest.trim_start() } else { rest };
    out.push(Piece::Text(text.to_string()));
    Ok(out)
}

/// The offset of the `}}` closing an action, skipping string literals and comments.
fn find_close(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut in_str = false;
    let mut in_comment = false;
    while i + 1 < b.len() {
        if in_comment {
            if b[i] == b'*' && b[i + 1] == b'/' {
                in_comment = false;
                i += 1;
            }
        } else if in_str {
            if b[i] == b'\\' {
                i += 1;
            } else if b[i] == b'"' {
                in_str = false;
            }
        } else if b[i] == b'/' && b[i + 1] == b'*' {
            in_comment = true;
        } else if b[i] == b'"' {
            in_str = true;
        } else if b[i] == b'}' && b[i + 1] == b'}' {
            return Some(i);
        }
        i += 1;
    }
    None
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Pipe,
    Open,
    Close,
    Comma,
    Assign,
}

fn lex(s: &str) -> Result<Vec<Tok>> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            ' ' | '\t' | '\n' => {
                chars.next();
            }
            '|' | '(' | ')' | ',' => {
                chars.next();
                out.push(match c {
                    '|' => Tok::Pipe,
                    '(' => Tok::Open,
                    ')' => Tok::Close,
                    _ => Tok::Comma,
                });
            }
            ':' => {
                chars.next();
                if chars.next() != Some('=') {
                    return Err(format!("`:` without `=` in {s:?}"));
                }
                out.push(Tok::Assign);
            }
            '"' => {
                chars.next();
                let mut v = String::new();
                loop {
                    match chars.next() {
                        None => return Err(format!("unterminated string in {s:?}")),
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some('n') => v.push('\n'),
                            Some('t') => v.push('\t'),
                            Some('"') => v.push('"'),
                            Some('\\') => v.push('\\'),
                            other => return Err(format!("escape \\{other:?} is not in the subset")),
                        },
                        Some(ch) => v.push(ch),
                    }
                }
                out.push(Tok::Str(v));
            }
            _ => {
                let mut w = String::new();
                while let Some(&ch) = chars.peek() {
                    if ch.is_alphanumeric() || matches!(ch, '.' | '$' | '_' | '-') {
                        w.push(ch);
                        chars.next();
                    } else {
                        break;
                    }
                }
                if w.is_empty() {
                    return Err(format!("unexpected {c:?} in {s:?}"));
                }
                out.push(Tok::Word(w));
            }
        }
    }
    Ok(out)
}

fn parse_pipeline(toks: &[Tok]) -> Result<Pipeline> {
    let mut p = Pipeline::default();
    let mut toks = toks;
    if let Some(i) = toks.iter().position(|t| *t == Tok::Assign) {
        for t in &toks[..i] {
            match t {
                Tok::Word(w) if w.starts_with('$') => p.decl.push(w[1..].to_string()),
                Tok::Comma => {}
                other => return Err(format!("cannot declare {other:?}")),
            }
        }
        toks = &toks[i + 1..];
    }
    let mut i = 0;
    let mut cmd = Vec::new();
    while i < toks.len() {
        match &toks[i] {
            Tok::Pipe => p.cmds.push(std::mem::take(&mut cmd)),
            Tok::Open => {
                let mut depth = 0;
                let start = i + 1;
                loop {
                    match toks.get(i) {
                        Some(Tok::Open) => depth += 1,
                        Some(Tok::Close) => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        None => return Err("unbalanced parentheses".into()),
                        _ => {}
                    }
                    i += 1;
                }
                cmd.push(Arg::Sub(parse_pipeline(&toks[start..i])?));
            }
            Tok::Str(s) => cmd.push(Arg::Literal(Value::String(s.clone()))),
            Tok::Word(w) => cmd.push(parse_word(w)?),
            other => return Err(format!("unexpected {other:?}")),
        }
        i += 1;
    }
    p.cmds.push(cmd);
    if p.cmds.iter().any(Vec::is_empty) {
        return Err("an empty command in a pipeline".into());
    }
    Ok(p)
}

fn parse_word(w: &str) -> Result<Arg> {
    let path = |s: &str| s.split('.').filter(|p| !p.is_empty()).map(str::to_string).collect::<Vec<_>>();
    if let Some(rest) = w.strip_prefix('$') {
        let (name, fields) = rest.split_once('.').unwrap_or((rest, ""));
        return Ok(Arg::Var(name.to_string(), path(fields)));
    }
    if w.starts_with('.') {
        return Ok(Arg::Field(path(w)));
    }
    match w {
        "true" => return Ok(Arg::Literal(Value::Bool(true))),
        "false" => return Ok(Arg::Literal(Value::Bool(false))),
        _ => {}
    }
    if let Ok(n) = w.parse::<i64>() {
        return Ok(Arg::Literal(Value::from(n)));
    }
    if w.chars().all(|c| c.is_alphanumeric()) {
        return Ok(Arg::Func(w.to_string()));
    }
    Err(format!("`{w}` is not in the subset"))
}

/// A parsed chart: its named templates (from every file) and its manifest templates.
#[derive(Default)]
pub struct Templates {
    defines: HashMap<String, Vec<Node>>,
    files: Vec<(String, Vec<Node>)>,
}

enum Block {
    If(Vec<(Pipeline, Vec<Node>)>, Option<Vec<Node>>),
    Range(Pipeline, Vec<Node>, Option<Vec<Node>>),
    With(Pipeline, Vec<Node>, Option<Vec<Node>>),
    Define(String),
}

impl Templates {
    /// Parses one file; its `define`s join the set, and the rest is a template named `name`.
    pub fn add(&mut self, name: &str, src: &str) -> Result<()> {
        let mut stack: Vec<(Block, Vec<Node>)> = Vec::new();
        let mut cur: Vec<Node> = Vec::new();
        for piece in split(src).map_err(|e| format!("{name}: {e}"))? {
            let body = match piece {
                Piece::Text(t) => {
                    if !t.is_empty() {
                        cur.push(Node::Text(t));
                    }
                    continue;
                }
                Piece::Action(a) => a,
            };
            let err = |e: String| format!("{name}: {{{{ {body} }}}}: {e}");
            let toks = lex(&body).map_err(err)?;
            let keyword = match toks.first() {
                Some(Tok::Word(w)) => w.as_str(),
                _ => "",
            };
            let rest = toks.get(1..).unwrap_or_default();
            match keyword {
                "if" | "range" | "with" => {
                    let p = parse_pipeline(rest).map_err(err)?;
                    let block = match keyword {
                        "if" => Block::If(vec![(p, Vec::new())], None),
                        "range" => Block::Range(p, Vec::new(), None),
                        _ => Block::With(p, Vec::new(), None),
                    };
                    stack.push((block, std::mem::take(&mut cur)));
                }
                "define" => match rest {
                    [Tok::Str(n)] => stack.push((Block::Define(n.clone()), std::mem::take(&mut cur))),
                    _ => return Err(err("define takes one string".into())),
                },
                "else" => {
                    let Some((block, _)) = stack.last_mut() else { return Err(err("else outside a block".into())) };
                    let body = std::mem::take(&mut cur);
                    match block {
                        Block::If(arms, els @ None) => {
                            arms.last_mut().expect("an if has an arm").1 = body;
                            if let Some(Tok::Word(w)) = rest.first()
                                && w == "if"
                            {
                                arms.push((parse_pipeline(&rest[1..]).map_err(err)?, Vec::new()));
                            } else {
                                *els = Some(Vec::new());
                            }
                        }
                        Block::Range(_, b, els @ None) | Block::With(_, b, els @ None) if rest.is_empty() => {
                            *b = body;
                            *els = Some(Vec::new());
                        }
                        _ => return Err(err("this else is not in the subset".into())),
                    }
                }
                "end" => {
                    let Some((block, outer)) = stack.pop() else { return Err(err("end outside a block".into())) };
                    let body = std::mem::replace(&mut cur, outer);
                    let node = match block {
                        Block::If(mut arms, els) => match els {
                            Some(_) => Node::If(arms, body),
                            None => {
                                arms.last_mut().expect("an if has an arm").1 = body;
                                Node::If(arms, Vec::new())
                            }
                        },
                        Block::Range(p, b, els) => match els {
                            Some(_) => Node::Range(p, b, body),
                            None => Node::Range(p, body, Vec::new()),
                        },
                        Block::With(p, b, els) => match els {
                            Some(_) => Node::With(p, b, body),
                            None => Node::With(p, body, Vec::new()),
                        },
                        Block::Define(n) => {
                            self.defines.insert(n, body);
                            continue;
                        }
                    };
                    cur.push(node);
                }
                "template" | "block" | "break" | "continue" => return Err(err("not in the subset".into())),
                _ => cur.push(Node::Print(parse_pipeline(&toks).map_err(err)?)),
            }
        }
        if !stack.is_empty() {
            return Err(format!("{name}: a block without end"));
        }
        self.files.push((name.to_string(), cur));
        Ok(())
    }

    /// Renders the template of file `name` with `root` as `.` and `$`.
    pub fn render(&self, name: &str, root: &Value) -> Result<String> {
        let nodes = &self.files.iter().find(|(n, _)| n == name).ok_or_else(|| format!("no template {name}"))?.1;
        let mut out = String::new();
        let mut vars = vec![(String::new(), root.clone())];
        self.exec(nodes, root, &mut vars, &mut out).map_err(|e| format!("{name}: {e}"))?;
        Ok(out)
    }

    fn exec(&self, nodes: &[Node], dot: &Value, vars: &mut Vec<(String, Value)>, out: &mut String) -> Result<()> {
        for node in nodes {
            let depth = vars.len();
            match node {
                Node::Text(t) => out.push_str(t),
                Node::Print(p) => {
                    let v = self.pipeline(p, dot, vars)?;
                    if p.decl.is_empty() {
                        out.push_str(&print(&v)?);
                    }
                    // A declaration lives until the end of the enclosing block.
                    continue;
                }
                Node::If(arms, els) => {
                    let mut done = false;
                    for (p, body) in arms {
                        if truthy(&self.pipeline(p, dot, vars)?) {
                            self.exec(body, dot, vars, out)?;
                            done = true;
                            break;
                        }
                    }
                    if !done {
                        self.exec(els, dot, vars, out)?;
                    }
                }
                Node::With(p, body, els) => {
                    let v = self.pipeline(p, dot, vars)?;
                    if truthy(&v) {
                        self.exec(body, &v, vars, out)?;
                    } else {
                        self.exec(els, dot, vars, out)?;
                    }
                }
                Node::Range(p, body, els) => {
                    let v = self.pipeline(&Pipeline { decl: Vec::new(), cmds: p.cmds.clone() }, dot, vars)?;
                    let items: Vec<(Value, Value)> = match &v {
                        Value::Array(a) => a.iter().enumerate().map(|(i, x)| (Value::from(i), x.clone())).collect(),
                        Value::Object(m) => {
                            let mut keys: Vec<&String> = m.keys().collect();
                            keys.sort();
                            keys.into_iter().map(|k| (Value::String(k.clone()), m[k].clone())).collect()
                        }
                        Value::Null => Vec::new(),
                        other => return Err(format!("cannot range over {other}")),
                    };
                    if items.is_empty() {
                        self.exec(els, dot, vars, out)?;
                    }
                    for (k, x) in items {
                        match p.decl.as_slice() {
                            [] => {}
                            [v] => vars.push((v.clone(), x.clone())),
                            [kn, vn] => {
                                vars.push((kn.clone(), k));
                                vars.push((vn.clone(), x.clone()));
                            }
                            _ => return Err("range declares at most two variables".into()),
                        }
                        self.exec(body, &x, vars, out)?;
                        vars.truncate(depth);
                    }
                }
            }
            vars.truncate(depth);
        }
        Ok(())
    }

    fn pipeline(&self, p: &Pipeline, dot: &Value, vars: &mut Vec<(String, Value)>) -> Result<Value> {
        let mut last: Option<Value> = None;
        for cmd in &p.cmds {
            last = Some(self.command(cmd, dot, vars, last)?);
        }
        let v = last.unwrap_or(Value::Null);
        for name in &p.decl {
            vars.push((name.clone(), v.clone()));
        }
        Ok(v)
    }

    fn command(
        &self,
        cmd: &[Arg],
        dot: &Value,
        vars: &mut Vec<(String, Value)>,
        piped: Option<Value>,
    ) -> Result<Value> {
        if let Arg::Func(f) = &cmd[0] {
            let mut args = Vec::new();
            for a in &cmd[1..] {
                args.push(self.arg(a, dot, vars)?);
            }
            args.extend(piped);
            return self.call(f, args);
        }
        if cmd.len() != 1 || piped.is_some() {
            return Err("only a function takes arguments".into());
        }
        self.arg(&cmd[0], dot, vars)
    }

    fn arg(&self, a: &Arg, dot: &Value, vars: &mut Vec<(String, Value)>) -> Result<Value> {
        match a {
            Arg::Field(path) => walk(dot, path),
            Arg::Var(name, path) => {
                let v = vars.iter().rev().find(|(n, _)| n == name).ok_or_else(|| format!("undefined ${name}"))?;
                walk(&v.1.clone(), path)
            }
            Arg::Literal(v) => Ok(v.clone()),
            Arg::Func(f) => self.call(f, Vec::new()),
            Arg::Sub(p) => self.pipeline(p, dot, vars),
        }
    }

    fn call(&self, f: &str, args: Vec<Value>) -> Result<Value> {
        let want = |n: usize| {
            if args.len() == n { Ok(()) } else { Err(format!("{f} takes {n} arguments, got {}", args.len())) }
        };
        let int = |v: &Value| v.as_i64().ok_or_else(|| format!("{f}: {v} is not an integer"));
        let string = |v: &Value| match v {
            Value::String(s) => Ok(s.clone()),
            Value::Number(_) | Value::Bool(_) => print(v),
            other => Err(format!("{f}: {other} is not a string")),
        };
        match f {
            "include" => {
                want(2)?;
                let name = args[0].as_str().ok_or("include takes a template name")?;
                let nodes = self.defines.get(name).ok_or_else(|| format!("no template {name:?} is defined"))?;
                let mut out = String::new();
                let mut vars = vec![(String::new(), args[1].clone())];
                self.exec(nodes, &args[1], &mut vars, &mut out)?;
                Ok(Value::String(out))
            }
            "toYaml" => {
                want(1)?;
                Ok(Value::String(to_yaml(&args[0])?.trim_end_matches('\n').to_string()))
            }
            "nindent" | "indent" => {
                want(2)?;
                let pad = " ".repeat(usize::try_from(int(&args[0])?).map_err(|e| e.to_string())?);
                let text = format!("{pad}{}", string(&args[1])?.replace('\n', &format!("\n{pad}")));
                Ok(Value::String(if f == "nindent" { format!("\n{text}") } else { text }))
            }
            "quote" => {
                want(1)?;
                match &args[0] {
                    Value::Null => Ok(Value::String(String::new())),
                    v => Ok(Value::String(go_quote(&string(v)?)?)),
                }
            }
            "default" => {
                want(2)?;
                Ok(if truthy(&args[1]) { args[1].clone() } else { args[0].clone() })
            }
            "trunc" => {
                want(2)?;
                let n = usize::try_from(int(&args[0])?).map_err(|_| "trunc: a negative length is not in the subset")?;
                Ok(Value::String(string(&args[1])?.chars().take(n).collect()))
            }
            "trimSuffix" => {
                want(2)?;
                let (suffix, s) = (string(&args[0])?, string(&args[1])?);
                Ok(Value::String(s.strip_suffix(suffix.as_str()).unwrap_or(&s).to_string()))
            }
            "join" => {
                want(2)?;
                let items = args[1].as_array().ok_or("join takes a list")?;
                let parts = items.iter().map(string).collect::<Result<Vec<_>>>()?;
                Ok(Value::String(parts.join(&string(&args[0])?)))
            }
            "not" => {
                want(1)?;
                Ok(Value::Bool(!truthy(&args[0])))
            }
            other => Err(format!("function {other} is not in the subset")),
        }
    }
}

fn walk(v: &Value, path: &[String]) -> Result<Value> {
    let mut cur = v.clone();
    for (i, key) in path.iter().enumerate() {
        cur = match &cur {
            Value::Object(m) => m.get(key).cloned().unwrap_or(Value::Null),
            Value::Null => return Err(format!("nil pointer evaluating .{}", path[..=i].join("."))),
            other => return Err(format!("cannot read .{key} of {other}")),
        };
    }
    Ok(cur)
}

/// Go templates' truth: false, 0, nil and empty strings, lists and maps are false.
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(m) => !m.is_empty(),
    }
}

/// How `{{ }}` prints a value. Helm reads values as JSON numbers (float64), which Go prints
/// without a fraction for whole numbers below 1e21: only those are in the subset.
fn print(v: &Value) -> Result<String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) if i.unsigned_abs() < 1 << 53 => Ok(i.to_string()),
            (_, Some(u)) if u < 1 << 53 => Ok(u.to_string()),
            _ => Err(format!("the number {n} is not in the subset (whole numbers below 2^53)")),
        },
        Value::Null => Err("printing a missing value (helm would print nothing): check the values' names".into()),
        other => Err(format!("printing {other} is not in the subset: use toYaml")),
    }
}

/// Go's `%q` for the strings the subset allows (printable ASCII, newline and tab).
fn go_quote(s: &str) -> Result<String> {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            ' '..='~' => out.push(c),
            other => return Err(format!("quote: {other:?} is not in the subset")),
        }
    }
    out.push('"');
    Ok(out)
}

/// Helm's `toYaml` (sigs.k8s.io/yaml over go-yaml v2): keys sorted, block style, lists in a map
/// not indented, empty collections as `{}` and `[]`.
pub fn to_yaml(v: &Value) -> Result<String> {
    let mut out = String::new();
    match v {
        Value::Object(m) if m.is_empty() => out.push_str("{}\n"),
        Value::Array(a) if a.is_empty() => out.push_str("[]\n"),
        Value::Object(_) | Value::Array(_) => block(v, 0, &mut out)?,
        scalar => {
            out.push_str(&yaml_scalar(scalar)?);
            out.push('\n');
        }
    }
    Ok(out)
}

fn block(v: &Value, indent: usize, out: &mut String) -> Result<()> {
    let pad = " ".repeat(indent);
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            for k in keys {
                out.push_str(&format!("{pad}{}:", yaml_scalar(&Value::String(k.clone()))?));
                child(&m[k], indent, false, out)?;
            }
        }
        Value::Array(a) => {
            for x in a {
                out.push_str(&format!("{pad}-"));
                child(x, indent, true, out)?;
            }
        }
        _ => unreachable!("block is called on collections"),
    }
    Ok(())
}

/// A value after `key:` or `-`. go-yaml v2 writes a map in a list on the dash's line, and a list
/// in a map at the map's own indentation.
fn child(v: &Value, indent: usize, in_list: bool, out: &mut String) -> Result<()> {
    match v {
        Value::Object(m) if !m.is_empty() => {
            if in_list {
                let mut inner = String::new();
                block(v, indent + 2, &mut inner)?;
                out.push(' ');
                out.push_str(inner.trim_start());
            } else {
                out.push('\n');
                block(v, indent + 2, out)?;
            }
        }
        Value::Array(a) if !a.is_empty() => {
            if in_list {
                let mut inner = String::new();
                block(v, indent + 2, &mut inner)?;
                out.push(' ');
                out.push_str(inner.trim_start());
            } else {
                out.push('\n');
                block(v, indent, out)?;
            }
        }
        Value::Object(_) => out.push_str(" {}\n"),
        Value::Array(_) => out.push_str(" []\n"),
        scalar => {
            out.push(' ');
            out.push_str(&yaml_scalar(scalar)?);
            out.push('\n');
        }
    }
    Ok(())
}

/// A scalar as go-yaml v2 writes it, for the strings whose form is certain: plain when the
/// string cannot be read as anything else, double-quoted when YAML 1.1 would read it as a
/// bool, number or null. Other strings (spaces, quotes, `: `, `#`, leading indicators,
/// multi-line) are refused rather than guessed.
pub fn yaml_scalar(v: &Value) -> Result<String> {
    match v {
        Value::Null => Ok("null".into()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Number(_) => print(v),
        Value::String(s) => {
            let lower = s.to_ascii_lowercase();
            let special =
                ["", "~", "null", "true", "false", "yes", "no", "on", "off", "y", "n", ".inf", "-.inf", ".nan"];
            let numeric = s.parse::<f64>().is_ok() || s.starts_with("0x") || s.starts_with("0o");
            if special.contains(&lower.as_str()) || numeric {
                return go_quote(s);
            }
            let first_ok = s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric() || c == '/');
            let all_ok = s.chars().all(|c| c.is_ascii_alphanumeric() || "._/-:@=+".contains(c));
            if first_ok && all_ok && !s.ends_with(':') && !s.contains("://") {
                Ok(s.clone())
            } else {
                Err(format!("toYaml: the string {s:?} is not in the subset this renderer writes faithfully"))
            }
        }
        _ => unreachable!("yaml_scalar is called on scalars"),
    }
}
