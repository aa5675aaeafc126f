//! The dashboards and alert rules ask only for metrics and labels that longwave emits.
//!
//! Every JSON file under `dashboards/` is read. Grafana dashboards (they have `panels`): every
//! PromQL query (panel targets, annotations, query variables) is parsed into an AST by the
//! `promql-parser` crate, with Grafana's variables substituted, and every series it reads and
//! every label it names is checked against [`longwave::telemetry::names::CATALOGUE`]
//! (`tests/common/promql.rs`). Every rule file under `dashboards/prometheus/` goes through the
//! same check, recorded series included. CloudWatch dashboards (they have `widgets`): every
//! metric of the `Longwave` namespace (plain rows and `SEARCH` expressions) must be in the
//! catalogue, must not be a histogram (the CloudWatch agent drops histograms), may use only the
//! metric's labels plus the dimensions the agent adds, and must be one of the metric and
//! dimension sets the agent's `metric_declaration` in `deploy/longwave.yaml` actually emits.
//!
//! Anything the checker does not understand is an error, never a silent pass. Tests at the end
//! prove it fails on a misspelled metric, a wrong label and the other mistakes it exists to
//! catch. tests/prometheus.rs runs the same queries and rules on a real Prometheus.

#![allow(clippy::unwrap_used)] // test code: a panic is a test failure, which is what we want

mod common;

use common::grafana::{grafana_queries, grafana_variable_queries, substitute_variables};
use common::promql::{check_promql, Known};
use common::rules::read_rules;
use longwave::telemetry::names::{lookup, MetricKind};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The CloudWatch namespace the agent writes longwave's metrics to (`emf_processor`).
const CW_NAMESPACE: &str = "Longwave";
/// Dimensions the agent's scrape config adds to every longwave series (static target labels).
const CW_TARGET_DIMENSIONS: &[&str] = &["ClusterName", "ServiceName"];

/// A Grafana Prometheus variable query: `label_values(expr, label)`, `label_values(label)`,
/// `query_result(expr)` or plain PromQL.
fn check_variable_query(query: &str) -> Vec<String> {
    let known = Known::catalogue();
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
        let mut errors = check_promql(expr, &known);
        let label = label.trim();
        let carried = known
            .resolve(expr.trim())
            .is_ok_and(|s| s.labels.iter().any(|l| l == label));
        if !carried && errors.is_empty() {
            errors.push(format!("`{query}`: the metric has no label `{label}`"));
        }
        errors
    } else if let Some(inner) = query
        .strip_prefix("query_result(")
        .and_then(|q| q.strip_suffix(')'))
    {
        check_promql(inner, &known)
    } else {
        check_promql(query, &known)
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

    let known = Known::catalogue();
    let mut queries = 0;
    for query in grafana_queries(dashboard) {
        queries += 1;
        let checked = substitute_variables(&query.expr, dashboard)
            .map_or_else(|error| vec![error], |expr| check_promql(&expr, &known));
        for error in checked {
            errors.push(format!("{}: {error}\n    in: {}", query.place, query.expr));
        }
    }
    for (name, query) in grafana_variable_queries(dashboard) {
        queries += 1;
        for error in check_variable_query(&query) {
            errors.push(format!("variable `{name}`: {error}"));
        }
    }
    if queries == 0 {
        errors.push("no PromQL query found".into());
    }
    errors
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

/// The problems of `expr` with the dashboard's `$job` and `$target_backlog`, for the checker's
/// own tests.
fn problems(expr: &str) -> Vec<String> {
    let dashboard = serde_json::json!({"templating": {"list": [
        {"name": "job", "type": "query"},
        {"name": "target_backlog", "type": "textbox", "query": "10"},
    ]}});
    substitute_variables(expr, &dashboard).map_or_else(
        |error| vec![error],
        |expr| check_promql(&expr, &Known::catalogue()),
    )
}

fn assert_rejects(expr: &str, needle: &str) {
    let errors = problems(expr);
    assert!(
        errors.iter().any(|e| e.contains(needle)),
        "expected an error containing {needle:?} for {expr}, got {errors:?}"
    );
}

fn assert_accepts(expr: &str) {
    let errors = problems(expr);
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
    // A label must reach its clause, not merely exist on the series read.
    assert_rejects(
        "sum by (outcome) (sum by (instance) (longwave_jobs_finished_total))",
        "no series here has the label `outcome`",
    );
    assert_rejects(
        "sum(longwave_job_slots) / on (instance) sum(longwave_job_slots_busy)",
        "no series here has the label `instance`",
    );
    assert_accepts(
        "sum by (instance) (longwave_job_slots) / on (instance) sum by (instance) (longwave_job_slots_busy)",
    );
    assert_rejects("sum(rat(longwave_job_slots[5m]))", "does not parse");
    assert_accepts(r#"{__name__="longwave_job_slots", job="x"}"#);
    assert_rejects(r#"{job="longwave"}"#, "without a metric name");
    assert_rejects("sum(longwave_job_slots", "does not parse");
    assert_rejects(
        r#"sum(rate(longwave_job_slots{job=~"$nosuchvar"}[5m]))"#,
        "`$nosuchvar`: no such dashboard variable",
    );
    assert_rejects(
        r#"label_replace(longwave_job_slots, "stage", "$1", "job", "(.*)")"#,
        "invents labels",
    );
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

// ---------------------------------------------------------------------------------------------
// Prometheus rule files
// ---------------------------------------------------------------------------------------------

fn rule_files() -> Vec<PathBuf> {
    let dir = repo().join("dashboards/prometheus");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.ends_with(".yml") && !name.ends_with(".test.yml")
        })
        .collect();
    files.sort();
    files
}

/// Every problem of one rule file's expressions against the catalogue and its own recordings.
fn check_rules(path: &Path) -> Vec<String> {
    let rules = read_rules(path);
    let (known, mut errors) = Known::with_recordings(&rules);
    for rule in &rules {
        for error in check_promql(&rule.expr, &known) {
            errors.push(format!("{}: {error}", rule.name));
        }
    }
    if !rules.iter().any(|r| !r.record) {
        errors.push("no alerting rule".into());
    }
    errors
}

#[test]
fn every_rule_reads_only_catalogue_metrics_and_labels() {
    let files = rule_files();
    assert!(!files.is_empty(), "no rule file in dashboards/prometheus");
    let mut report = Vec::new();
    for path in &files {
        report.extend(
            check_rules(path)
                .into_iter()
                .map(|e| format!("{}: {e}", path.display())),
        );
    }
    assert!(report.is_empty(), "{}", report.join("\n"));
}

#[test]
fn checker_rejects_a_misspelled_metric_in_a_rule_and_follows_recorded_labels() {
    let path = repo().join("dashboards/prometheus/longwave-rules.yml");
    let text = std::fs::read_to_string(&path).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.yml");
    // A misspelled metric in an alert; a label the recorded series does not keep.
    let misspelled = text.replacen(
        "longwave_queue_visibility_extension_failures_total",
        "longwave_queue_visibility_extension_failure_total",
        1,
    );
    let wrong_label = text.replacen(
        "expr: longwave:memory_rss_over_budget:ratio > 0.9",
        "expr: longwave:memory_rss_over_budget:ratio{stage=\"x\"} > 0.9",
        1,
    );
    assert_ne!(misspelled, text);
    assert_ne!(wrong_label, text);
    std::fs::write(&broken, misspelled).unwrap();
    let errors = check_rules(&broken);
    assert!(
        errors
            .iter()
            .any(|e| e.contains("LongwaveVisibilityExtensionsFailing")
                && e.contains("not in the catalogue")),
        "{errors:?}"
    );
    std::fs::write(&broken, wrong_label).unwrap();
    let errors = check_rules(&broken);
    assert!(
        errors
            .iter()
            .any(|e| e.contains("`longwave:memory_rss_over_budget:ratio` has no label `stage`")),
        "{errors:?}"
    );
}
