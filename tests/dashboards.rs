//! The dashboards ask only for metrics and labels that longwave emits.
//!
//! Every JSON file under `dashboards/` is read. Grafana dashboards (they have `panels`): every
//! PromQL query (panel targets, annotations, query variables) is tokenised and parsed just enough
//! to find its metric names, the labels of its selectors and the labels of its `by (…)`,
//! `without (…)`, `on (…)`, `ignoring (…)` and `group_left/right (…)` clauses; each is checked
//! against [`longwave::telemetry::names::CATALOGUE`]. CloudWatch dashboards (they have
//! `widgets`): every metric of the `Longwave` namespace (plain rows and `SEARCH` expressions) must
//! be in the catalogue, must not be a histogram (the CloudWatch agent drops histograms), may use
//! only the metric's labels plus the dimensions the agent adds, and must be one of the metric and
//! dimension sets the agent's `metric_declaration` in `deploy/longwave.yaml` actually emits.
//!
//! The checker is small on purpose: it knows PromQL's shape (selectors, functions, aggregations,
//! binary operators and their modifiers), not its full grammar. Anything it does not understand
//! is an error, never a silent pass. Tests at the end prove it fails on a misspelled metric, a
//! wrong label and the other mistakes it exists to catch.

#![allow(clippy::unwrap_used)] // test code: a panic is a test failure, which is what we want

use longwave::telemetry::names::{lookup, MetricDef, MetricKind};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Labels Prometheus attaches to every scraped series (target labels), whatever the metric.
const TARGET_LABELS: &[&str] = &["job", "instance"];
/// The CloudWatch namespace the agent writes longwave's metrics to (`emf_processor`).
const CW_NAMESPACE: &str = "Longwave";
/// Dimensions the agent's scrape config adds to every longwave series (static target labels).
const CW_TARGET_DIMENSIONS: &[&str] = &["ClusterName", "ServiceName"];

/// PromQL aggregation operators (space-separated): they may take `by (…)`/`without (…)` before
/// or after their arguments.
const AGGREGATIONS: &str = "\
    sum min max avg group stddev stdvar count count_values bottomk topk quantile limitk \
    limit_ratio";
/// PromQL functions of Prometheus 2.x/3.x (space-separated); a name followed by `(` that is not
/// here is an error.
const FUNCTIONS: &str = "\
    abs absent absent_over_time ceil changes clamp clamp_max clamp_min day_of_month \
    day_of_week day_of_year days_in_month delta deriv exp floor histogram_avg \
    histogram_count histogram_fraction histogram_quantile histogram_stddev histogram_stdvar \
    histogram_sum holt_winters hour idelta increase irate label_join label_replace ln log2 \
    log10 minute month predict_linear rate resets round scalar sgn sort sort_desc \
    sort_by_label sort_by_label_desc sqrt time timestamp vector year avg_over_time \
    min_over_time max_over_time sum_over_time count_over_time quantile_over_time \
    stddev_over_time stdvar_over_time last_over_time present_over_time mad_over_time acos \
    acosh asin asinh atan atanh cos cosh sin sinh tan tanh deg rad pi";

/// Whether `word` is in the space-separated `list`.
fn is_one_of(list: &str, word: &str) -> bool {
    list.split_whitespace().any(|w| w == word)
}

/// Binary operators spelled as words.
const WORD_OPERATORS: &[&str] = &["and", "or", "unless", "atan2"];

// ---------------------------------------------------------------------------------------------
// Catalogue lookups
// ---------------------------------------------------------------------------------------------

/// A series name as a query writes it: a catalogue metric, or a histogram's `_bucket`, `_sum` or
/// `_count` series.
#[derive(Debug, Clone, Copy)]
struct Series {
    def: &'static MetricDef,
    /// `_bucket` series carry the `le` label.
    bucket: bool,
}

impl Series {
    fn resolve(name: &str) -> Result<Series, String> {
        if let Some(def) = lookup(name) {
            return Ok(Series { def, bucket: false });
        }
        for suffix in ["_bucket", "_sum", "_count"] {
            if let Some(base) = name.strip_suffix(suffix) {
                match lookup(base) {
                    Some(def) if def.kind == MetricKind::Histogram => {
                        return Ok(Series {
                            def,
                            bucket: suffix == "_bucket",
                        })
                    }
                    Some(_) => {
                        return Err(format!(
                            "`{name}`: `{base}` is not a histogram, it has no `{suffix}` series"
                        ))
                    }
                    None => {}
                }
            }
        }
        Err(format!("metric `{name}` is not in the catalogue"))
    }

    fn has_label(&self, label: &str) -> bool {
        self.def.labels.contains(&label)
            || TARGET_LABELS.contains(&label)
            || (self.bucket && label == "le")
    }
}

// ---------------------------------------------------------------------------------------------
// PromQL: tokens
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str,
    Num,
    /// A Grafana variable (`$job`, `${job}`, `$__rate_interval`) outside a string.
    Var,
    /// `[5m]`, `[$__rate_interval]`, `[1h:5m]`: a range or subquery, skipped whole.
    Range,
    Op(String),
    LParen,
    RParen,
    LBrace,
    RBrace,
    Comma,
}

fn tokenize(expr: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    let ident_start = |c: char| c.is_ascii_alphabetic() || c == '_' || c == ':';
    let ident_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    while i < chars.len() {
        let c = chars[i];
        match c {
            _ if c.is_whitespace() => i += 1,
            '#' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '"' | '\'' | '`' => {
                i += 1;
                while i < chars.len() && chars[i] != c {
                    if chars[i] == '\\' && c != '`' {
                        i += 1;
                    }
                    i += 1;
                }
                if i >= chars.len() {
                    return Err("unterminated string".into());
                }
                i += 1;
                toks.push(Tok::Str);
            }
            '[' => {
                while i < chars.len() && chars[i] != ']' {
                    i += 1;
                }
                if i >= chars.len() {
                    return Err("unterminated `[`".into());
                }
                i += 1;
                toks.push(Tok::Range);
            }
            '$' => {
                i += 1;
                if chars.get(i) == Some(&'{') {
                    while i < chars.len() && chars[i] != '}' {
                        i += 1;
                    }
                    i += 1;
                } else {
                    while i < chars.len() && ident_char(chars[i]) {
                        i += 1;
                    }
                }
                toks.push(Tok::Var);
            }
            _ if c.is_ascii_digit()
                || (c == '.' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit())) =>
            {
                // Numbers, exponents and durations (`0.95`, `1e-9`, `0x1f`, `5m`, `1h30m`).
                while i < chars.len() {
                    let d = chars[i];
                    if (d == 'e' || d == 'E') && matches!(chars.get(i + 1), Some('+') | Some('-')) {
                        i += 2;
                    } else if d.is_ascii_alphanumeric() || d == '.' || d == '_' {
                        i += 1;
                    } else {
                        break;
                    }
                }
                toks.push(Tok::Num);
            }
            _ if ident_start(c) => {
                let start = i;
                while i < chars.len() && ident_char(chars[i]) {
                    i += 1;
                }
                toks.push(Tok::Ident(chars[start..i].iter().collect()));
            }
            '(' => {
                toks.push(Tok::LParen);
                i += 1;
            }
            ')' => {
                toks.push(Tok::RParen);
                i += 1;
            }
            '{' => {
                toks.push(Tok::LBrace);
                i += 1;
            }
            '}' => {
                toks.push(Tok::RBrace);
                i += 1;
            }
            ',' => {
                toks.push(Tok::Comma);
                i += 1;
            }
            _ => {
                let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
                if ["==", "!=", "=~", "!~", ">=", "<="].contains(&two.as_str()) {
                    toks.push(Tok::Op(two));
                    i += 2;
                } else if "=<>+-*/%^@".contains(c) {
                    toks.push(Tok::Op(c.to_string()));
                    i += 1;
                } else {
                    return Err(format!("unexpected character `{c}`"));
                }
            }
        }
    }
    Ok(toks)
}

// ---------------------------------------------------------------------------------------------
// PromQL: a parser that only collects and checks names
// ---------------------------------------------------------------------------------------------

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
    errors: Vec<String>,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn peek_ident(&self, words: &[&str]) -> bool {
        matches!(self.peek(), Some(Tok::Ident(w)) if words.contains(&w.as_str()))
    }

    fn next(&mut self) -> Option<Tok> {
        let tok = self.toks.get(self.pos).cloned();
        self.pos += 1;
        tok
    }

    fn expect(&mut self, want: Tok) -> Result<(), String> {
        match self.next() {
            Some(tok) if tok == want => Ok(()),
            other => Err(format!("expected {want:?}, found {other:?}")),
        }
    }

    /// `expr := unary (binary-operator modifiers unary)*`; returns the series it reads.
    fn expr(&mut self) -> Result<Vec<Series>, String> {
        let mut used = self.unary()?;
        loop {
            let binary = match self.peek() {
                Some(Tok::Op(op)) => !["=", "=~", "!~", "@"].contains(&op.as_str()),
                Some(Tok::Ident(w)) => WORD_OPERATORS.contains(&w.as_str()),
                _ => false,
            };
            if !binary {
                return Ok(used);
            }
            self.next();
            let mut matching = Vec::new();
            if self.peek_ident(&["bool"]) {
                self.next();
            }
            if self.peek_ident(&["on", "ignoring"]) {
                self.next();
                matching.extend(self.label_list()?);
            }
            if self.peek_ident(&["group_left", "group_right"]) {
                self.next();
                if self.peek() == Some(&Tok::LParen) {
                    matching.extend(self.label_list()?);
                }
            }
            used.extend(self.unary()?);
            self.check_grouping("on/ignoring/group", &matching, &used);
        }
    }

    fn unary(&mut self) -> Result<Vec<Series>, String> {
        while matches!(self.peek(), Some(Tok::Op(op)) if op == "-" || op == "+") {
            self.next();
        }
        let used = self.primary()?;
        loop {
            match self.peek() {
                Some(Tok::Range) => {
                    self.next();
                }
                Some(Tok::Ident(w)) if w == "offset" => {
                    self.next();
                    if matches!(self.peek(), Some(Tok::Op(op)) if op == "-") {
                        self.next();
                    }
                    match self.next() {
                        Some(Tok::Num) | Some(Tok::Var) => {}
                        other => {
                            return Err(format!("expected a duration after offset: {other:?}"))
                        }
                    }
                }
                Some(Tok::Op(op)) if op == "@" => {
                    self.next();
                    match self.next() {
                        Some(Tok::Num) | Some(Tok::Var) => {}
                        Some(Tok::Ident(w)) if w == "start" || w == "end" => {
                            self.expect(Tok::LParen)?;
                            self.expect(Tok::RParen)?;
                        }
                        other => return Err(format!("expected a time after @: {other:?}")),
                    }
                }
                _ => return Ok(used),
            }
        }
    }

    fn primary(&mut self) -> Result<Vec<Series>, String> {
        match self.next() {
            Some(Tok::Num) | Some(Tok::Str) | Some(Tok::Var) => Ok(Vec::new()),
            Some(Tok::LParen) => {
                let used = self.expr()?;
                self.expect(Tok::RParen)?;
                Ok(used)
            }
            Some(Tok::LBrace) => Err("a selector without a metric name ({…}) cannot be checked; \
                 name the metric"
                .into()),
            Some(Tok::Ident(name)) if is_one_of(AGGREGATIONS, &name) => {
                let mut grouping = Vec::new();
                if self.peek_ident(&["by", "without"]) {
                    self.next();
                    grouping = self.label_list()?;
                }
                self.expect(Tok::LParen)?;
                let used = self.args()?;
                if grouping.is_empty() && self.peek_ident(&["by", "without"]) {
                    self.next();
                    grouping = self.label_list()?;
                }
                self.check_grouping(&format!("{name} by/without"), &grouping, &used);
                Ok(used)
            }
            Some(Tok::Ident(name)) if is_one_of(FUNCTIONS, &name) => {
                self.expect(Tok::LParen)?;
                self.args()
            }
            Some(Tok::Ident(name)) if self.peek() == Some(&Tok::LParen) => {
                Err(format!("unknown function `{name}`"))
            }
            Some(Tok::Ident(name))
                if [
                    "by",
                    "without",
                    "on",
                    "ignoring",
                    "group_left",
                    "group_right",
                    "bool",
                    "offset",
                ]
                .contains(&name.as_str())
                    || WORD_OPERATORS.contains(&name.as_str()) =>
            {
                Err(format!("unexpected keyword `{name}`"))
            }
            Some(Tok::Ident(name)) => self.selector(&name),
            other => Err(format!("unexpected {other:?}")),
        }
    }

    /// `name` or `name{label op "value", …}`.
    fn selector(&mut self, name: &str) -> Result<Vec<Series>, String> {
        let series = match Series::resolve(name) {
            Ok(series) => Some(series),
            Err(error) => {
                self.errors.push(error);
                None
            }
        };
        if self.peek() == Some(&Tok::LBrace) {
            self.next();
            loop {
                match self.next() {
                    Some(Tok::RBrace) => break,
                    Some(Tok::Ident(label)) => {
                        match self.next() {
                            Some(Tok::Op(op)) if ["=", "!=", "=~", "!~"].contains(&op.as_str()) => {
                            }
                            other => {
                                return Err(format!(
                                    "expected a matcher after `{label}`: {other:?}"
                                ))
                            }
                        }
                        self.expect(Tok::Str)?;
                        if let Some(series) = series {
                            if !series.has_label(&label) {
                                self.errors.push(format!(
                                    "`{name}` has no label `{label}` (it has: {})",
                                    label_list_text(series)
                                ));
                            }
                        }
                        if self.peek() == Some(&Tok::Comma) {
                            self.next();
                        }
                    }
                    other => {
                        return Err(format!("unexpected {other:?} in the selector of `{name}`"))
                    }
                }
            }
        }
        Ok(series.into_iter().collect())
    }

    /// `( expr, expr, … )` after the opening parenthesis has been taken.
    fn args(&mut self) -> Result<Vec<Series>, String> {
        let mut used = Vec::new();
        if self.peek() == Some(&Tok::RParen) {
            self.next();
            return Ok(used);
        }
        loop {
            used.extend(self.expr()?);
            match self.next() {
                Some(Tok::Comma) => {}
                Some(Tok::RParen) => return Ok(used),
                other => return Err(format!("expected `,` or `)`, found {other:?}")),
            }
        }
    }

    /// `(label, label, …)`.
    fn label_list(&mut self) -> Result<Vec<String>, String> {
        self.expect(Tok::LParen)?;
        let mut labels = Vec::new();
        loop {
            match self.next() {
                Some(Tok::RParen) => return Ok(labels),
                Some(Tok::Ident(label)) => labels.push(label),
                Some(Tok::Comma) => {}
                other => return Err(format!("unexpected {other:?} in a label list")),
            }
        }
    }

    /// A grouping or matching label must be carried by at least one series it applies to.
    fn check_grouping(&mut self, clause: &str, labels: &[String], used: &[Series]) {
        for label in labels {
            if !used.is_empty() && !used.iter().any(|s| s.has_label(label)) {
                let names: Vec<&str> = used.iter().map(|s| s.def.name).collect();
                self.errors.push(format!(
                    "`{clause} ({label})`: no series here has the label `{label}` ({})",
                    names.join(", ")
                ));
            }
        }
    }
}

fn label_list_text(series: Series) -> String {
    let mut labels: Vec<&str> = series.def.labels.to_vec();
    labels.extend(TARGET_LABELS);
    if series.bucket {
        labels.push("le");
    }
    labels.join(", ")
}

/// Every problem with one PromQL expression (empty when it only names catalogue metrics and
/// their labels).
fn check_promql(expr: &str) -> Vec<String> {
    let toks = match tokenize(expr) {
        Ok(toks) => toks,
        Err(error) => return vec![error],
    };
    let mut parser = Parser {
        toks,
        pos: 0,
        errors: Vec::new(),
    };
    match parser.expr() {
        Ok(used) => {
            if parser.pos < parser.toks.len() {
                parser.errors.push(format!(
                    "unparsed rest from token {:?}",
                    parser.toks[parser.pos]
                ));
            } else if used.is_empty() {
                parser
                    .errors
                    .push("the query reads no longwave metric".into());
            }
        }
        Err(error) => parser.errors.push(error),
    }
    parser.errors
}

/// A Grafana Prometheus variable query: `label_values(expr, label)`, `label_values(label)`,
/// `query_result(expr)` or plain PromQL.
fn check_variable_query(query: &str) -> Vec<String> {
    let query = query.trim();
    if let Some(inner) = query
        .strip_prefix("label_values(")
        .and_then(|q| q.strip_suffix(')'))
    {
        let Some((expr, label)) = inner.rsplit_once(',') else {
            return vec![format!(
                "`{query}`: name the metric so the label can be checked"
            )];
        };
        let mut errors = check_promql(expr);
        let label = label.trim();
        let carried = tokenize(expr).ok().into_iter().flatten().any(|t| match t {
            Tok::Ident(name) => Series::resolve(&name).is_ok_and(|s| s.has_label(label)),
            _ => false,
        });
        if !carried {
            errors.push(format!("`{query}`: the metric has no label `{label}`"));
        }
        errors
    } else if let Some(inner) = query
        .strip_prefix("query_result(")
        .and_then(|q| q.strip_suffix(')'))
    {
        check_promql(inner)
    } else {
        check_promql(query)
    }
}

// ---------------------------------------------------------------------------------------------
// Grafana
// ---------------------------------------------------------------------------------------------

/// Built-in Grafana datasource UIDs (not instance UIDs, the same in every Grafana).
const BUILTIN_DATASOURCE_UIDS: &[&str] = &[
    "-- Grafana --",
    "-- Mixed --",
    "-- Dashboard --",
    "__expr__",
    "grafana",
];

fn check_grafana(dashboard: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    // Structure: importable anywhere, datasources only through variables.
    if dashboard.get("__inputs").is_some() {
        errors.push("`__inputs`: use datasource variables, not export inputs".into());
    }
    let schema = dashboard["schemaVersion"].as_u64().unwrap_or(0);
    if schema < 39 {
        errors.push(format!(
            "schemaVersion {schema} is older than Grafana 11 (39)"
        ));
    }
    let variables = dashboard["templating"]["list"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let has_prometheus_variable = variables.iter().any(|v| {
        v["name"] == "datasource" && v["type"] == "datasource" && v["query"] == "prometheus"
    });
    if !has_prometheus_variable {
        errors.push("no `datasource` variable of type datasource for Prometheus".into());
    }
    walk_datasources(dashboard, &mut errors);

    let mut check = |place: String, expr: &str| {
        for error in check_promql(expr) {
            errors.push(format!("{place}: {error}\n    in: {expr}"));
        }
    };
    let mut panels = Vec::new();
    collect_panels(&dashboard["panels"], &mut panels);
    let mut queries = 0;
    for panel in &panels {
        let title = panel["title"].as_str().unwrap_or("(untitled)");
        for target in panel["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = target["expr"].as_str() {
                queries += 1;
                check(format!("panel `{title}` target {}", target["refId"]), expr);
            }
        }
    }
    for annotation in dashboard["annotations"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if let Some(expr) = annotation["expr"].as_str() {
            queries += 1;
            check(format!("annotation `{}`", annotation["name"]), expr);
        }
    }
    for variable in &variables {
        if variable["type"] != "query" {
            continue;
        }
        let query = match &variable["query"] {
            Value::String(q) => q.clone(),
            q => q["query"].as_str().unwrap_or_default().to_string(),
        };
        queries += 1;
        for error in check_variable_query(&query) {
            errors.push(format!("variable `{}`: {error}", variable["name"]));
        }
    }
    if queries == 0 {
        errors.push("no PromQL query found".into());
    }
    errors
}

/// Panels, including those inside collapsed rows.
fn collect_panels<'a>(panels: &'a Value, out: &mut Vec<&'a Value>) {
    for panel in panels.as_array().into_iter().flatten() {
        out.push(panel);
        collect_panels(&panel["panels"], out);
    }
}

/// Every `datasource` object must name its UID through a variable (or be a built-in one).
fn walk_datasources(value: &Value, errors: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                if key == "datasource" {
                    if let Some(uid) = child.get("uid").and_then(Value::as_str) {
                        let variable = uid.starts_with('$');
                        if !variable && !BUILTIN_DATASOURCE_UIDS.contains(&uid) {
                            errors.push(format!("hard-coded datasource uid `{uid}`"));
                        }
                    }
                }
                walk_datasources(child, errors);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| walk_datasources(v, errors)),
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------------
// CloudWatch
// ---------------------------------------------------------------------------------------------

/// What the CloudWatch agent emits: per metric name, the dimension sets declared for it.
#[derive(Debug, Default)]
struct Declarations(Vec<(String, Vec<Vec<String>>)>);

impl Declarations {
    fn emits(&self, metric: &str, dimensions: &[String]) -> bool {
        let mut want: Vec<&str> = dimensions.iter().map(String::as_str).collect();
        want.sort_unstable();
        self.0.iter().any(|(name, sets)| {
            name == metric
                && sets.iter().any(|set| {
                    let mut have: Vec<&str> = set.iter().map(String::as_str).collect();
                    have.sort_unstable();
                    have == want
                })
        })
    }
}

/// Checks one metric of the `Longwave` namespace with its dimension names.
fn check_cw_metric(name: &str, dimensions: &[String], declared: &Declarations) -> Vec<String> {
    let Some(def) = lookup(name) else {
        return vec![format!("metric `{name}` is not in the catalogue")];
    };
    let mut errors = Vec::new();
    if def.kind == MetricKind::Histogram {
        errors.push(format!(
            "`{name}` is a histogram: the CloudWatch agent drops histograms, it never arrives"
        ));
    }
    for dimension in dimensions {
        if !def.labels.contains(&dimension.as_str())
            && !CW_TARGET_DIMENSIONS.contains(&dimension.as_str())
        {
            errors.push(format!("`{name}` has no label or dimension `{dimension}`"));
        }
    }
    if errors.is_empty() && !declared.emits(name, dimensions) {
        errors.push(format!(
            "`{name}` with dimensions [{}] is not declared in the agent's metric_declaration \
             (deploy/longwave.yaml): CloudWatch would have no such metric",
            dimensions.join(", ")
        ));
    }
    errors
}

/// `SEARCH('{Longwave,ClusterName,ServiceName,outcome} MetricName="…" …', 'Sum', 60)`.
fn check_cw_expression(expression: &str, declared: &Declarations) -> Vec<String> {
    if !expression.contains(CW_NAMESPACE) {
        return Vec::new();
    }
    let Some(start) = expression.find("SEARCH(") else {
        return vec![format!(
            "`{expression}`: only SEARCH expressions may name {CW_NAMESPACE}"
        )];
    };
    let rest = &expression[start..];
    let search = rest.split('\'').nth(1).unwrap_or_default();
    let Some(schema) = search
        .split_once('{')
        .and_then(|(_, s)| s.split_once('}'))
        .map(|(s, _)| s)
    else {
        return vec![format!(
            "`{search}`: use the {{{CW_NAMESPACE},dim,…}} schema form"
        )];
    };
    let mut parts = schema.split(',').map(str::trim);
    if parts.next() != Some(CW_NAMESPACE) {
        return vec![format!(
            "`{search}`: the schema's namespace is not {CW_NAMESPACE}"
        )];
    }
    let dimensions: Vec<String> = parts.map(str::to_string).collect();
    let Some(name) = search.split("MetricName=").nth(1).map(|n| {
        n.trim_start_matches('"')
            .split(|c: char| c == '"' || c.is_whitespace())
            .next()
            .unwrap_or_default()
    }) else {
        return vec![format!("`{search}`: name the metric (MetricName=\"…\")")];
    };
    check_cw_metric(name, &dimensions, declared)
}

fn check_cloudwatch(body: &Value, declared: &Declarations) -> Vec<String> {
    let mut errors = Vec::new();
    let mut longwave_metrics = 0;
    for widget in body["widgets"].as_array().into_iter().flatten() {
        let title = widget["properties"]["title"]
            .as_str()
            .unwrap_or("(untitled)");
        let mut previous: Vec<Value> = Vec::new();
        for row in widget["properties"]["metrics"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let Some(row) = row.as_array() else {
                errors.push(format!("widget `{title}`: a metrics row is not an array"));
                continue;
            };
            // `"."` repeats the value at the same position in the previous row.
            let resolved: Vec<Value> = row
                .iter()
                .enumerate()
                .map(|(i, v)| match (v.as_str(), previous.get(i)) {
                    (Some("."), Some(prev)) => prev.clone(),
                    _ => v.clone(),
                })
                .collect();
            let strings: Vec<&str> = resolved.iter().map_while(Value::as_str).collect();
            let options = resolved.iter().find(|v| v.is_object());
            if strings.is_empty() {
                if let Some(expression) = options.and_then(|o| o["expression"].as_str()) {
                    if expression.contains(CW_NAMESPACE) {
                        longwave_metrics += 1;
                    }
                    for error in check_cw_expression(expression, declared) {
                        errors.push(format!("widget `{title}`: {error}"));
                    }
                }
                continue;
            }
            if strings.len() < 2 || !strings.len().is_multiple_of(2) {
                errors.push(format!(
                    "widget `{title}`: row {strings:?} is not [namespace, name, dim, value, …]"
                ));
                continue;
            }
            if strings[0] == CW_NAMESPACE {
                longwave_metrics += 1;
                let dimensions: Vec<String> = strings[2..]
                    .iter()
                    .step_by(2)
                    .map(|d| d.to_string())
                    .collect();
                for error in check_cw_metric(strings[1], &dimensions, declared) {
                    errors.push(format!("widget `{title}`: {error}"));
                }
            }
            previous = resolved;
        }
    }
    if longwave_metrics == 0 {
        errors.push(format!("no metric of the {CW_NAMESPACE} namespace found"));
    }
    errors
}

/// The CloudWatch agent's configuration: the JSON block scalar under `CW_CONFIG_CONTENT` in the
/// CloudFormation template, with `${…}` substitutions replaced by placeholders.
fn agent_config(template: &str) -> Value {
    let lines: Vec<&str> = template.lines().collect();
    let name_at = lines
        .iter()
        .position(|l| l.contains("Name: CW_CONFIG_CONTENT"))
        .expect("the template sets CW_CONFIG_CONTENT");
    let value_line = lines[name_at + 1];
    assert!(
        value_line.trim_end().ends_with('|'),
        "CW_CONFIG_CONTENT's value is a block scalar: {value_line}"
    );
    let indent = |l: &str| l.len() - l.trim_start().len();
    let value_indent = indent(value_line);
    let mut json = String::new();
    for line in &lines[name_at + 2..] {
        if !line.trim().is_empty() && indent(line) <= value_indent {
            break;
        }
        json.push_str(line);
        json.push('\n');
    }
    // `${Param}` → a placeholder string's content (always inside a JSON string here).
    let mut plain = String::new();
    let mut rest = json.as_str();
    while let Some(at) = rest.find("${") {
        plain.push_str(&rest[..at]);
        plain.push('X');
        rest = &rest[at..];
        rest = &rest[rest.find('}').map_or(rest.len(), |e| e + 1)..];
    }
    plain.push_str(rest);
    serde_json::from_str(&plain).unwrap_or_else(|e| panic!("CW_CONFIG_CONTENT is not JSON: {e}"))
}

/// The agent's declarations, checked against the catalogue on the way.
fn declarations(config: &Value) -> (Declarations, Vec<String>) {
    let processor = &config["logs"]["metrics_collected"]["prometheus"]["emf_processor"];
    let mut errors = Vec::new();
    if processor["metric_namespace"] != CW_NAMESPACE {
        errors.push(format!(
            "emf_processor.metric_namespace is not {CW_NAMESPACE}"
        ));
    }
    let mut declared = Declarations::default();
    for declaration in processor["metric_declaration"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let sets: Vec<Vec<String>> = declaration["dimensions"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|set| {
                set.as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|d| d.as_str().map(str::to_string))
                    .collect()
            })
            .collect();
        for selector in declaration["metric_selectors"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let selector = selector.as_str().unwrap_or_default();
            // Literal selectors only, so this test can read them without a regex engine.
            let Some(name) = selector.strip_prefix('^').and_then(|s| s.strip_suffix('$')) else {
                errors.push(format!("selector `{selector}` is not of the form ^name$"));
                continue;
            };
            match lookup(name) {
                None => errors.push(format!("selector `{selector}`: not in the catalogue")),
                Some(def) if def.kind == MetricKind::Histogram => errors.push(format!(
                    "selector `{selector}`: histograms are dropped by the agent"
                )),
                Some(def) => {
                    for dimension in sets.iter().flatten() {
                        if !def.labels.contains(&dimension.as_str())
                            && !CW_TARGET_DIMENSIONS.contains(&dimension.as_str())
                        {
                            errors.push(format!("`{name}` has no label `{dimension}`"));
                        }
                    }
                }
            }
            declared.0.push((name.to_string(), sets.clone()));
        }
    }
    if declared.0.is_empty() {
        errors.push("no metric_declaration selects a longwave metric".into());
    }
    (declared, errors)
}

// ---------------------------------------------------------------------------------------------
// The files
// ---------------------------------------------------------------------------------------------

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn dashboard_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "json") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(&repo().join("dashboards"), &mut files);
    files.sort();
    files
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: not JSON: {e}", path.display()))
}

fn template_declarations() -> Declarations {
    let template = std::fs::read_to_string(repo().join("deploy/longwave.yaml")).unwrap();
    let (declared, errors) = declarations(&agent_config(&template));
    assert!(
        errors.is_empty(),
        "deploy/longwave.yaml:\n  {}",
        errors.join("\n  ")
    );
    declared
}

#[test]
fn every_dashboard_names_only_catalogue_metrics_and_labels() {
    let declared = template_declarations();
    let files = dashboard_files();
    let mut kinds = (0, 0);
    let mut report = Vec::new();
    for path in &files {
        let json = read_json(path);
        let errors = if json.get("panels").is_some() {
            kinds.0 += 1;
            check_grafana(&json)
        } else if json.get("widgets").is_some() {
            kinds.1 += 1;
            check_cloudwatch(&json, &declared)
        } else {
            vec!["neither a Grafana dashboard (panels) nor a CloudWatch one (widgets)".into()]
        };
        let name = path
            .strip_prefix(repo())
            .unwrap_or(path)
            .display()
            .to_string();
        report.extend(errors.into_iter().map(|e| format!("{name}: {e}")));
    }
    assert!(
        report.is_empty(),
        "{} problem(s):\n{}",
        report.len(),
        report.join("\n")
    );
    assert!(
        kinds.0 >= 1 && kinds.1 >= 1,
        "expected Grafana and CloudWatch dashboards: {files:?}"
    );
}

#[test]
fn the_agent_declares_only_catalogue_metrics() {
    let declared = template_declarations();
    // Counters and gauges the CloudWatch dashboard relies on are all declared with the two
    // service-level dimensions.
    let service = ["ClusterName".to_string(), "ServiceName".to_string()];
    for name in [
        "longwave_jobs_finished_total",
        "longwave_job_slots",
        "longwave_job_slots_busy",
    ] {
        assert!(declared.emits(name, &service), "{name}");
    }
}

// ---------------------------------------------------------------------------------------------
// The checker itself: it must fail on the mistakes it exists to catch.
// ---------------------------------------------------------------------------------------------

fn assert_rejects(expr: &str, needle: &str) {
    let errors = check_promql(expr);
    assert!(
        errors.iter().any(|e| e.contains(needle)),
        "expected an error containing {needle:?} for {expr}, got {errors:?}"
    );
}

fn assert_accepts(expr: &str) {
    let errors = check_promql(expr);
    assert!(errors.is_empty(), "{expr}: {errors:?}");
}

#[test]
fn checker_rejects_a_misspelled_metric() {
    assert_rejects(
        "sum(rate(longwave_jobs_finshed_total[5m]))",
        "`longwave_jobs_finshed_total` is not in the catalogue",
    );
}

#[test]
fn checker_rejects_a_label_the_metric_does_not_have() {
    assert_rejects(
        r#"sum(rate(longwave_jobs_finished_total{stage="gain"}[5m]))"#,
        "has no label `stage`",
    );
    assert_rejects(
        "sum by (stage) (rate(longwave_jobs_finished_total[5m]))",
        "no series here has the label `stage`",
    );
    assert_rejects(
        "sum(rate(longwave_jobs_finished_total[5m])) by (op)",
        "no series here has the label `op`",
    );
}

#[test]
fn checker_allows_histogram_series_and_le_only_on_buckets() {
    assert_accepts(
        r#"histogram_quantile(0.95, sum by (le, outcome) (rate(longwave_job_duration_seconds_bucket{job=~"$job"}[$__rate_interval])))"#,
    );
    assert_accepts(
        "sum by (stage) (rate(longwave_stage_block_duration_seconds_sum[5m])) / sum by (stage) (rate(longwave_stage_block_duration_seconds_count[5m]))",
    );
    assert_rejects(
        "sum by (le) (rate(longwave_job_duration_seconds_count[5m]))",
        "label `le`",
    );
    assert_rejects("longwave_job_slots_count", "is not a histogram");
    assert_rejects(
        "longwave_job_duration_seconds_bucket_total",
        "not in the catalogue",
    );
}

#[test]
fn checker_understands_promql_shapes() {
    assert_accepts(
        r#"count by (version, git_sha) (longwave_build_info{job=~"$job"}) unless count by (version, git_sha) (longwave_build_info{job=~"$job"} offset 10m)"#,
    );
    assert_accepts(
        "max by (instance) (longwave_memory_rss_bytes) / on (instance) group_left max by (instance) (longwave_memory_budget_bytes)",
    );
    assert_accepts("sum(rate(longwave_audio_processed_seconds_total[1h:5m])) * 60 > bool 0");
    assert_accepts("-sum(longwave_job_slots_busy) + vector($target_backlog) * 1e-3");
    assert_rejects(
        "sum(longwave_job_slots) / on (stage) sum(longwave_job_slots_busy)",
        "`stage`",
    );
    assert_rejects("sum(rat(longwave_job_slots[5m]))", "unknown function `rat`");
    assert_rejects(
        r#"{__name__="longwave_job_slots"}"#,
        "without a metric name",
    );
    assert_rejects("sum(longwave_job_slots", "expected");
    assert_rejects("vector(1)", "reads no longwave metric");
}

#[test]
fn checker_reports_a_misspelling_in_a_real_dashboard() {
    let path = repo().join("dashboards/grafana/longwave.json");
    let mut dashboard = read_json(&path);
    assert!(check_grafana(&dashboard).is_empty());
    let text = serde_json::to_string(&dashboard).unwrap();
    let broken = text.replacen("longwave_job_slots_busy", "longwave_job_slot_busy", 1);
    assert_ne!(text, broken, "the dashboard shows busy slots");
    dashboard = serde_json::from_str(&broken).unwrap();
    let errors = check_grafana(&dashboard);
    assert!(
        errors
            .iter()
            .any(|e| e.contains("`longwave_job_slot_busy` is not in the catalogue")),
        "{errors:?}"
    );
}

#[test]
fn checker_rejects_hard_coded_grafana_datasources() {
    let mut dashboard = read_json(&repo().join("dashboards/grafana/longwave.json"));
    dashboard["panels"][1]["datasource"]["uid"] = "P1809F7CD0C75ACF3".into();
    let errors = check_grafana(&dashboard);
    assert!(
        errors
            .iter()
            .any(|e| e.contains("hard-coded datasource uid")),
        "{errors:?}"
    );
}

#[test]
fn checker_checks_variable_queries() {
    assert!(check_variable_query("label_values(longwave_build_info, job)").is_empty());
    assert!(!check_variable_query("label_values(longwave_build_info, stage)").is_empty());
    assert!(!check_variable_query("label_values(longwave_bild_info, job)").is_empty());
}

#[test]
fn checker_rejects_wrong_cloudwatch_metrics() {
    let declared = template_declarations();
    let dims = |d: &[&str]| d.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let service = dims(&["ClusterName", "ServiceName"]);
    assert!(check_cw_metric("longwave_job_slots_busy", &service, &declared).is_empty());
    let misspelled = check_cw_metric("longwave_job_slot_busy", &service, &declared);
    assert!(
        misspelled[0].contains("not in the catalogue"),
        "{misspelled:?}"
    );
    let histogram = check_cw_metric("longwave_job_duration_seconds", &service, &declared);
    assert!(histogram[0].contains("drops histograms"), "{histogram:?}");
    let wrong = check_cw_metric(
        "longwave_jobs_finished_total",
        &dims(&["ClusterName", "ServiceName", "stage"]),
        &declared,
    );
    assert!(
        wrong[0].contains("no label or dimension `stage`"),
        "{wrong:?}"
    );
    let undeclared = check_cw_metric(
        "longwave_jobs_finished_total",
        &dims(&["ClusterName", "ServiceName", "outcome", "error_type"]),
        &declared,
    );
    assert!(undeclared[0].contains("not declared"), "{undeclared:?}");

    // Rows with "." shorthand and SEARCH expressions go through the same checks.
    let body: Value = serde_json::json!({"widgets": [{"type": "metric", "properties": {
    "title": "t",
    "metrics": [
        ["Longwave", "longwave_job_slots", "ClusterName", "c", "ServiceName", "s"],
        [".", "longwave_job_slotz", ".", ".", ".", "."],
        [{"expression": "SEARCH('{Longwave,ClusterName,ServiceName,outcome} MetricName=\"longwave_jobs_finishd_total\"', 'Sum', 60)", "id": "e1"}]
    ]}}]});
    let errors = check_cloudwatch(&body, &declared);
    assert!(
        errors.iter().any(|e| e.contains("`longwave_job_slotz`")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("`longwave_jobs_finishd_total`")),
        "{errors:?}"
    );
    assert_eq!(errors.len(), 2, "{errors:?}");
}
