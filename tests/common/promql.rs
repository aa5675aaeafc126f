//! The PromQL the dashboards and alert rules write, parsed into an AST by the `promql-parser`
//! crate and checked against longwave's metric catalogue (tests/dashboards.rs; tests/prometheus.rs
//! runs the same queries on a real Prometheus).
//!
//! The catalogue check finds every series a query reads and every label it names (selectors,
//! `by`/`without`, `on`/`ignoring`, `group_left`/`group_right`): a metric not in
//! [`longwave::telemetry::names::CATALOGUE`], a label the metric does not carry, `le` outside a
//! `_bucket` series or `_bucket`/`_sum`/`_count` of a non-histogram is an error, and so is
//! anything the checker cannot see through (a selector without a metric name, a label invented
//! by `label_replace`), never a silent pass. A grouping or matching label must reach the clause
//! (`sum by (outcome) (sum by (instance) (…))` is an error). Series recorded by the rule files are
//! known by the labels their expressions keep.

use super::rules::Rule;
use longwave::telemetry::names::{lookup, MetricKind};
use promql_parser::label::{Labels, MatchOp, METRIC_NAME};
use promql_parser::parser::value::ValueType;
use promql_parser::parser::{self, Expr, LabelModifier, VectorMatchCardinality, VectorSelector};

/// Labels Prometheus attaches to every scraped series (target labels), whatever the metric.
pub const TARGET_LABELS: &[&str] = &["job", "instance"];

/// Prometheus's own per-target series, which the rules may read beside longwave's (with the
/// target labels only).
const SCRAPE_SERIES: &[&str] = &["up"];

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
                let reaching = reaching_labels(&[&aggregate.expr], &used, known);
                check_carried(&clause, modifier.labels(), &reaching, &used, errors);
            }
            used
        }
        Expr::Binary(binary) => {
            let mut used = series_read(&binary.lhs, known, errors);
            used.extend(series_read(&binary.rhs, known, errors));
            if let Some(modifier) = &binary.modifier {
                let reaching = reaching_labels(&[&binary.lhs, &binary.rhs], &used, known);
                if let Some(matching) = &modifier.matching {
                    check_carried("on/ignoring", matching.labels(), &reaching, &used, errors);
                }
                if let Some(labels) = modifier.card.labels() {
                    check_carried("group_left/group_right", labels, &reaching, &used, errors);
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

/// The labels that reach a clause over `operands`: what the operands' results carry, or, where
/// the checker cannot tell (its error is reported elsewhere), the labels of the series read.
fn reaching_labels(operands: &[&Expr], used: &[Series], known: &Known) -> Vec<String> {
    let mut labels = Vec::new();
    for operand in operands {
        match output_labels(operand, known) {
            Ok(carried) => labels.extend(carried),
            Err(_) => return used.iter().flat_map(|s| s.labels.clone()).collect(),
        }
    }
    labels
}

/// A grouping or matching label must reach the clause it names.
fn check_carried(
    clause: &str,
    labels: &Labels,
    reaching: &[String],
    used: &[Series],
    errors: &mut Vec<String>,
) {
    for label in &labels.labels {
        if !used.is_empty() && !reaching.contains(label) {
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
            // topk and friends select series and keep all their labels, whatever the grouping.
            if ["topk", "bottomk", "limitk", "limit_ratio"].contains(&op.as_str()) {
                return Ok(inner);
            }
            if op == "count_values" {
                return Err("`count_values` adds a label the checker does not follow".into());
            }
            Ok(match &aggregate.modifier {
                Some(LabelModifier::Include(by)) => by.labels.clone(),
                Some(LabelModifier::Exclude(without)) => inner
                    .into_iter()
                    .filter(|l| !without.labels.contains(l))
                    .collect(),
                None => Vec::new(),
            })
        }
        Expr::Binary(binary) => {
            let scalar = |e: &Expr| e.value_type() == ValueType::Scalar;
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
            let with = |mut side: Vec<String>, extra: &Labels| {
                side.extend(extra.labels.iter().cloned());
                side
            };
            Ok(match (&modifier.card, &modifier.matching) {
                // Set operators: `or` unites both sides' series, `and`/`unless` keep the left's.
                (VectorMatchCardinality::ManyToMany, _) if binary.op.to_string() == "or" => {
                    let mut union = lhs;
                    union.extend(rhs);
                    union.sort();
                    union.dedup();
                    union
                }
                (VectorMatchCardinality::ManyToMany, _) => lhs,
                // group_left/right keep the "many" side's labels plus the ones they name.
                (VectorMatchCardinality::ManyToOne(extra), _) => with(lhs, extra),
                (VectorMatchCardinality::OneToMany(extra), _) => with(rhs, extra),
                // One to one: `on` keeps only its labels, `ignoring` drops its labels.
                (VectorMatchCardinality::OneToOne, Some(LabelModifier::Include(on))) => {
                    on.labels.clone()
                }
                (VectorMatchCardinality::OneToOne, Some(LabelModifier::Exclude(ignoring))) => lhs
                    .into_iter()
                    .filter(|l| !ignoring.labels.contains(l))
                    .collect(),
                (VectorMatchCardinality::OneToOne, None) => lhs,
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
            "label_replace" | "label_join" | "absent" | "absent_over_time" => Err(format!(
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
