//! Prometheus rule files (YAML) as the tests read them: each recording or alerting rule with
//! its expression and labels, in file order.

use std::path::Path;

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
