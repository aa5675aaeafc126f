//! Grafana dashboards as the PromQL tests read them: every query of the panels (rows included)
//! and annotations with its legend, the query variables, and Grafana's variables substituted as
//! a dashboard would run them.

use serde_json::Value;

/// What Grafana's built-in interval variables become, in the checks and against the test's
/// Prometheus (which scrapes every second, so a minute holds enough samples for `rate`).
const BUILTIN_VARIABLES: &[(&str, &str)] = &[
    ("__rate_interval", "1m"),
    ("__interval", "15s"),
    ("__range", "5m"),
];

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
