//! The PromQL the dashboards and alert rules write, read three ways: parsed into an AST by the
//! `promql-parser` crate and checked against longwave's metric catalogue (tests/dashboards.rs),
//! and run against a real Prometheus scraping real workers (tests/prometheus.rs).
//!
//! The catalogue check finds every series a query reads and every label it names (selectors,
//! `by`/`without`, `on`/`ignoring`, `group_left`/`group_right`): a metric not in
//! [`longwave::telemetry::names::CATALOGUE`], a label the metric does not carry, `le` outside a
//! `_bucket` series or `_bucket`/`_sum`/`_count` of a non-histogram is an error, and so is
//! anything the checker cannot see through (a selector without a metric name, a label invented
//! by `label_replace`), never a silent pass. Series recorded by the rule files are known by the
//! labels their expressions keep.

use longwave::telemetry::names::{lookup, MetricKind};
use promql_parser::label::{Labels, MatchOp, METRIC_NAME};
use promql_parser::parser::{self, Expr, LabelModifier, VectorMatchCardinality, VectorSelector};
use serde_json::Value;
use std::path::Path;

/// Labels Prometheus attaches to every scraped series (target labels), whatever the metric.
pub const TARGET_LABELS: &[&str] = &["job", "instance"];

/// Prometheus's own per-target series, which the rules may read beside longwave's (with the
/// target labels only).
const SCRAPE_SERIES: &[&str] = &["up"];

/// What Grafana's built-in interval variables become, in the checks and against the test's
/// Prometheus (which scrapes every second, so a minute holds enough samples for `rate`).
const BUILTIN_VARIABLES: &[(&str, &str)] = &[
    ("__rate_interval", "1m"),
    ("__interval", "15s"),
    ("__range", "5m"),
];

/// A series a query reads and the labels it carries.
#[derive(Debug, Clone)]
pub struct Series {
    /// The series name as written (`…_bucket` for a histogram's buckets).
    pub name: String,
    /// Every label it carries, target labels included.
    pub labels: Vec<String>,
}

impl Series {
    fn has_label(&self, label: &str) -> bool {
        self.labels.iter().any(|l| l == label)
    }
}

/// The series a query may read: the catalogue, `up`, and what the rule files record.
#[derive(Debug, Default)]
pub struct Known {
    recorded: Vec<Series>,
}

impl Known {
    /// Only the catalogue and `up`.
    pub fn catalogue() -> Known {
        Known::default()
    }

    /// The catalogue plus every series `rules` record, each with the labels its expression
    /// keeps; an error for each recording rule the checker cannot read.
    pub fn with_recordings(rules: &[Rule]) -> (Known, Vec<String>) {
        let mut known = Known::default();
        let mut errors = Vec::new();
        for rule in rules.iter().filter(|r| r.record) {
            match parser::parse(&rule.expr) {
                Ok(expr) => match output_labels(&expr, &known) {
                    Ok(mut labels) => {
                        labels.extend(rule.labels.iter().map(|(k, _)| k.clone()));
                        known.recorded.push(Series {
                            name: rule.name.clone(),
                            labels,
                        });
                    }
                    Err(error) => errors.push(format!("record `{}`: {error}", rule.name)),
                },
                Err(error) => errors.push(format!("record `{}`: {error}", rule.name)),
            }
        }
        (known, errors)
    }

    /// The series `name` names, or why it is not one longwave (or the rules) produce.
    pub fn resolve(&self, name: &str) -> Result<Series, String> {
        let target = TARGET_LABELS.iter().map(|l| l.to_string());
        if let Some(def) = lookup(name) {
            let labels = def.labels.iter().map(|l| l.to_string()).chain(target);
            return Ok(Series {
                name: name.into(),
                labels: labels.collect(),
            });
        }
        for suffix in ["_bucket", "_sum", "_count"] {
            if let Some(base) = name.strip_suffix(suffix) {
                match lookup(base) {
                    Some(def) if def.kind == MetricKind::Histogram => {
                        let mut labels: Vec<String> =
                            def.labels.iter().map(|l| l.to_string()).collect();
                        labels.extend(target);
                        if suffix == "_bucket" {
                            labels.push("le".into());
                        }
                        return Ok(Series {
                            name: name.into(),
                            labels,
                        });
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
        if SCRAPE_SERIES.contains(&name) {
            return Ok(Series {
                name: name.into(),
                labels: target.collect(),
            });
        }
        if let Some(series) = self.recorded.iter().find(|s| s.name == name) {
            return Ok(series.clone());
        }
        Err(format!("metric `{name}` is not in the catalogue"))
    }
}

/// Every problem with one PromQL expression (empty when it parses and names only known series
/// and their labels).
pub fn check_promql(expr: &str, known: &Known) -> Vec<String> {
    let ast = match parser::parse(expr) {
        Ok(ast) => ast,
        Err(error) => return vec![format!("does not parse: {error}")],
    };
    let mut errors = Vec::new();
    let used = series_read(&ast, known, &mut errors);
    if used.is_empty() && errors.is_empty() {
        errors.push("the query reads no longwave metric".into());
    }
    errors
}

/// The series `expr` reads; problems go to `errors`.
fn series_read(expr: &Expr, known: &Known, errors: &mut Vec<String>) -> Vec<Series> {
    match expr {
        Expr::Aggregate(aggregate) => {
            let used = series_read(&aggregate.expr, known, errors);
            if let Some(param) = &aggregate.param {
                series_read(param, known, errors);
            }
            if let Some(modifier) = &aggregate.modifier {
                let clause = format!("{} by/without", aggregate.op);
                check_carried(&clause, modifier.labels(), &used, errors);
            }
            used
        }
        Expr::Binary(binary) => {
            let mut used = series_read(&binary.lhs, known, errors);
            used.extend(series_read(&binary.rhs, known, errors));
            if let Some(modifier) = &binary.modifier {
                if let Some(matching) = &modifier.matching {
                    check_carried("on/ignoring", matching.labels(), &used, errors);
                }
                if let Some(labels) = modifier.card.labels() {
                    check_carried("group_left/group_right", labels, &used, errors);
                }
            }
            used
        }
        Expr::Unary(unary) => series_read(&unary.expr, known, errors),
        Expr::Paren(paren) => series_read(&paren.expr, known, errors),
        Expr::Subquery(subquery) => series_read(&subquery.expr, known, errors),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => Vec::new(),
        Expr::VectorSelector(selector) => selector_series(selector, known, errors),
        Expr::MatrixSelector(matrix) => selector_series(&matrix.vs, known, errors),
        Expr::Call(call) => {
            if ["label_replace", "label_join"].contains(&call.func.name) {
                errors.push(format!(
                    "`{}` invents labels the checker cannot follow",
                    call.func.name
                ));
            }
            call.args
                .args
                .iter()
                .flat_map(|arg| series_read(arg, known, errors))
                .collect()
        }
        Expr::Extension(_) => {
            errors.push("an extension node cannot be checked".into());
            Vec::new()
        }
    }
}

/// `name{label op "value", …}`: the series, with each matcher's label checked.
fn selector_series(
    selector: &VectorSelector,
    known: &Known,
    errors: &mut Vec<String>,
) -> Vec<Series> {
    let matchers = selector
        .matchers
        .matchers
        .iter()
        .chain(selector.matchers.or_matchers.iter().flatten());
    let named = selector.name.clone().or_else(|| {
        selector
            .matchers
            .matchers
            .iter()
            .find(|m| m.name == METRIC_NAME && matches!(m.op, MatchOp::Equal))
            .map(|m| m.value.clone())
    });
    let Some(name) = named else {
        errors.push(
            "a selector without a metric name ({…}) cannot be checked; name the metric".into(),
        );
        return Vec::new();
    };
    let series = match known.resolve(&name) {
        Ok(series) => series,
        Err(error) => {
            errors.push(error);
            return Vec::new();
        }
    };
    for matcher in matchers.filter(|m| m.name != METRIC_NAME) {
        if !series.has_label(&matcher.name) {
            errors.push(format!(
                "`{name}` has no label `{}` (it has: {})",
                matcher.name,
                series.labels.join(", ")
            ));
        }
    }
    vec![series]
}

/// A grouping or matching label must be carried by at least one series it applies to.
fn check_carried(clause: &str, labels: &Labels, used: &[Series], errors: &mut Vec<String>) {
    for label in &labels.labels {
        if !used.is_empty() && !used.iter().any(|s| s.has_label(label)) {
            let names: Vec<&str> = used.iter().map(|s| s.name.as_str()).collect();
            errors.push(format!(
                "`{clause} ({label})`: no series here has the label `{label}` ({})",
                names.join(", ")
            ));
        }
    }
}

/// The labels the result of `expr` carries (what a recording rule's series will have), or why
/// the checker cannot tell.
fn output_labels(expr: &Expr, known: &Known) -> Result<Vec<String>, String> {
    match expr {
        Expr::Aggregate(aggregate) => {
            let inner = output_labels(&aggregate.expr, known)?;
            let op = aggregate.op.to_string();
            Ok(match &aggregate.modifier {
                Some(LabelModifier::Include(by)) => by.labels.clone(),
                Some(LabelModifier::Exclude(without)) => inner
                    .into_iter()
                    .filter(|l| !without.labels.contains(l))
                    .collect(),
                None if ["topk", "bottomk", "limitk", "limit_ratio"].contains(&op.as_str()) => {
                    inner
                }
                None => Vec::new(),
            })
        }
        Expr::Binary(binary) => {
            let scalar = |e: &Expr| matches!(e, Expr::NumberLiteral(_));
            if scalar(&binary.lhs) {
                return output_labels(&binary.rhs, known);
            }
            let lhs = output_labels(&binary.lhs, known)?;
            if scalar(&binary.rhs) {
                return Ok(lhs);
            }
            let rhs = output_labels(&binary.rhs, known)?;
            let Some(modifier) = &binary.modifier else {
                return Ok(lhs);
            };
            Ok(match (&modifier.card, &modifier.matching) {
                (VectorMatchCardinality::ManyToMany, _) if binary.op.to_string() == "or" => {
                    let mut union = lhs;
                    union.extend(rhs);
                    union.sort();
                    union.dedup();
                    union
                }
                (VectorMatchCardinality::OneToOne, Some(LabelModifier::Include(on))) => {
                    on.labels.clone()
                }
                (_, Some(LabelModifier::Exclude(ignoring))) => lhs
                    .into_iter()
                    .filter(|l| !ignoring.labels.contains(l))
                    .collect(),
                _ => lhs,
            })
        }
        Expr::Unary(unary) => output_labels(&unary.expr, known),
        Expr::Paren(paren) => output_labels(&paren.expr, known),
        Expr::Subquery(subquery) => output_labels(&subquery.expr, known),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => Ok(Vec::new()),
        Expr::VectorSelector(selector) => {
            let mut errors = Vec::new();
            let series = selector_series(selector, known, &mut errors);
            match (errors.first(), series.first()) {
                (Some(error), _) => Err(error.clone()),
                (None, Some(series)) => Ok(series.labels.clone()),
                (None, None) => Err("no series".into()),
            }
        }
        Expr::MatrixSelector(matrix) => {
            output_labels(&Expr::VectorSelector(matrix.vs.clone()), known)
        }
        Expr::Call(call) => match call.func.name {
            "vector" | "time" | "scalar" => Ok(Vec::new()),
            "label_replace" | "label_join" => Err(format!(
                "`{}`: labels the checker cannot follow",
                call.func.name
            )),
            name => {
                let vector = call
                    .args
                    .args
                    .iter()
                    .find(|a| {
                        !matches!(a.as_ref(), Expr::NumberLiteral(_) | Expr::StringLiteral(_))
                    })
                    .ok_or_else(|| format!("`{name}` reads no series"))?;
                let labels = output_labels(vector, known)?;
                Ok(if name == "histogram_quantile" {
                    labels.into_iter().filter(|l| l != "le").collect()
                } else {
                    labels
                })
            }
        },
        Expr::Extension(_) => Err("an extension node".into()),
    }
}

// ---------------------------------------------------------------------------------------------
// Grafana
// ---------------------------------------------------------------------------------------------

/// One PromQL query of a Grafana dashboard and where it is.
#[derive(Debug, Clone)]
pub struct PanelQuery {
    /// Where it is, for messages: "panel `Title` target A", "annotation `Deploys`".
    pub place: String,
    /// The panel's legend template (`{{outcome}}`), when it has one.
    pub legend: Option<String>,
    /// The expression as written, with Grafana variables.
    pub expr: String,
}

impl PanelQuery {
    /// The labels the legend shows (`{{outcome}} {{error_type}}` → outcome, error_type).
    pub fn legend_labels(&self) -> Vec<String> {
        let mut labels = Vec::new();
        let mut rest = self.legend.as_deref().unwrap_or_default();
        while let Some(start) = rest.find("{{") {
            let Some(end) = rest[start..].find("}}") else {
                break;
            };
            labels.push(rest[start + 2..start + end].trim().to_string());
            rest = &rest[start + end + 2..];
        }
        labels
    }
}

/// Every PromQL query of a dashboard's panels (rows included) and annotations; CloudWatch
/// targets (which have no `expr`) are left out. Variable queries are separate:
/// [`grafana_variable_queries`].
pub fn grafana_queries(dashboard: &Value) -> Vec<PanelQuery> {
    let mut panels = Vec::new();
    collect_panels(&dashboard["panels"], &mut panels);
    let mut queries = Vec::new();
    for panel in &panels {
        let title = panel["title"].as_str().unwrap_or("(untitled)");
        for target in panel["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = target["expr"].as_str() {
                queries.push(PanelQuery {
                    place: format!("panel `{title}` target {}", target["refId"]),
                    legend: target["legendFormat"].as_str().map(str::to_owned),
                    expr: expr.to_owned(),
                });
            }
        }
    }
    for annotation in dashboard["annotations"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if let Some(expr) = annotation["expr"].as_str() {
            queries.push(PanelQuery {
                place: format!("annotation `{}`", annotation["name"]),
                legend: None,
                expr: expr.to_owned(),
            });
        }
    }
    queries
}

/// (variable name, query) of every Grafana query variable.
pub fn grafana_variable_queries(dashboard: &Value) -> Vec<(String, String)> {
    dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["type"] == "query")
        .map(|v| {
            let query = match &v["query"] {
                Value::String(q) => q.clone(),
                q => q["query"].as_str().unwrap_or_default().to_string(),
            };
            (v["name"].as_str().unwrap_or_default().to_string(), query)
        })
        .collect()
}

/// Panels, including those inside collapsed rows.
pub fn collect_panels<'a>(panels: &'a Value, out: &mut Vec<&'a Value>) {
    for panel in panels.as_array().into_iter().flatten() {
        out.push(panel);
        collect_panels(&panel["panels"], out);
    }
}

/// `expr` with Grafana's variables replaced as a dashboard would run them: the interval
/// built-ins by [`BUILTIN_VARIABLES`], text variables by their default, query variables by
/// `.+` (the "All" regex).
///
/// # Errors
/// A variable the dashboard does not define (Grafana would leave it as written, and a query
/// with `"$typo"` in a string still runs, matching nothing).
pub fn substitute_variables(expr: &str, dashboard: &Value) -> Result<String, String> {
    let value_of = |name: &str| -> Option<String> {
        if let Some((_, value)) = BUILTIN_VARIABLES.iter().find(|(n, _)| *n == name) {
            return Some((*value).to_string());
        }
        let variable = dashboard["templating"]["list"]
            .as_array()?
            .iter()
            .find(|v| v["name"] == name)?;
        match variable["type"].as_str()? {
            "textbox" | "constant" | "custom" => variable["query"].as_str().map(str::to_owned),
            "query" => Some(".+".into()),
            _ => None,
        }
    };
    let mut out = String::with_capacity(expr.len());
    let mut rest = expr;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, consumed) = if let Some(braced) = after.strip_prefix('{') {
            match braced.find('}') {
                Some(end) => (&braced[..end], end + 2),
                None => ("", 0),
            }
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], end)
        };
        let regex_group = name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit());
        match value_of(name) {
            // `$1` in label_replace, a `$` at the end of a regex: not Grafana's.
            _ if regex_group => out.push_str(&rest[at..at + 1 + consumed]),
            Some(value) => out.push_str(&value),
            None => {
                return Err(format!(
                    "`{}`: no such dashboard variable",
                    &rest[at..at + 1 + consumed]
                ))
            }
        }
        rest = &after[consumed..];
    }
    out.push_str(rest);
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Rule files
// ---------------------------------------------------------------------------------------------

/// One recording or alerting rule of a Prometheus rule file.
#[derive(Debug, Clone)]
pub struct Rule {
    /// The `record:` or `alert:` name.
    pub name: String,
    /// A recording rule (else an alert).
    pub record: bool,
    /// Its PromQL.
    pub expr: String,
    /// Its `labels:` (name, value).
    pub labels: Vec<(String, String)>,
}

/// Every rule of a Prometheus rule file (YAML), in file order.
pub fn read_rules(path: &Path) -> Vec<Rule> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let file: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut rules = Vec::new();
    for group in file["groups"].as_sequence().into_iter().flatten() {
        for rule in group["rules"].as_sequence().into_iter().flatten() {
            let (name, record) = match (rule["record"].as_str(), rule["alert"].as_str()) {
                (Some(name), None) => (name, true),
                (None, Some(name)) => (name, false),
                _ => panic!(
                    "{}: a rule is neither record nor alert: {rule:?}",
                    path.display()
                ),
            };
            let labels = rule["labels"]
                .as_mapping()
                .into_iter()
                .flatten()
                .map(|(k, v)| {
                    let text =
                        |x: &serde_yaml_ng::Value| x.as_str().unwrap_or_default().to_string();
                    (text(k), text(v))
                })
                .collect();
            rules.push(Rule {
                name: name.into(),
                record,
                expr: rule["expr"].as_str().unwrap_or_default().to_string(),
                labels,
            });
        }
    }
    rules
}
