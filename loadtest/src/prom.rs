//! Reading a worker's `/metrics` page (the Prometheus text exposition format).
//!
//! Written by hand because the harness needs only sample lines (`name{labels} value`) summed by
//! name and label, which is a few lines; a full parser crate would pull in regex and chrono.

use std::collections::BTreeMap;

/// One scrape: every sample line, as (name, labels, value).
#[derive(Debug, Clone, Default)]
pub struct Scrape {
    samples: Vec<(String, BTreeMap<String, String>, f64)>,
}

impl Scrape {
    /// Parses a `/metrics` page; lines that are not samples (comments, blanks, malformed) are
    /// skipped.
    pub fn parse(text: &str) -> Scrape {
        let mut samples = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (head, value) = match line.rsplit_once(' ') {
                Some(split) => split,
                None => continue,
            };
            let Ok(value) = value.parse::<f64>() else {
                continue;
            };
            let (name, labels) = match head.split_once('{') {
                Some((name, rest)) => (name, parse_labels(rest.trim_end_matches('}'))),
                None => (head, BTreeMap::new()),
            };
            samples.push((name.to_owned(), labels, value));
        }
        Scrape { samples }
    }

    /// The sum of every sample of `name` whose labels include all of `filter`.
    pub fn sum(&self, name: &str, filter: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|(n, labels, _)| {
                n == name
                    && filter
                        .iter()
                        .all(|(k, v)| labels.get(*k).is_some_and(|x| x == v))
            })
            .map(|(_, _, v)| v)
            .sum()
    }

    /// The sums of `name` by the value of `label`.
    pub fn by_label(&self, name: &str, label: &str) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        for (n, labels, value) in &self.samples {
            if n == name {
                if let Some(key) = labels.get(label) {
                    *out.entry(key.clone()).or_insert(0.0) += value;
                }
            }
        }
        out
    }
}

/// `a="x",b="y"` → {a: x, b: y}; escaped quotes inside values are kept as written.
fn parse_labels(text: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut rest = text;
    while let Some((key, after)) = rest.split_once("=\"") {
        let mut end = None;
        let mut escaped = false;
        for (i, c) in after.char_indices() {
            match c {
                '\\' if !escaped => escaped = true,
                '"' if !escaped => {
                    end = Some(i);
                    break;
                }
                _ => escaped = false,
            }
        }
        let Some(end) = end else { break };
        labels.insert(
            key.trim_start_matches(',').trim().to_owned(),
            after[..end].to_owned(),
        );
        rest = &after[end + 1..];
    }
    labels
}

#[cfg(test)]
mod tests {
    use super::Scrape;

    #[test]
    fn sums_by_name_and_label() {
        let page = "# TYPE longwave_jobs_finished_total counter\n\
            longwave_jobs_finished_total{outcome=\"success\",error_type=\"none\"} 3\n\
            longwave_jobs_finished_total{outcome=\"failed\",error_type=\"corrupt\"} 1\n\
            longwave_jobs_finished_total{outcome=\"success\",error_type=\"x,\\\"y\"} 2\n\
            longwave_job_slots_busy 2\n\
            garbage line\n";
        let s = Scrape::parse(page);
        assert_eq!(s.sum("longwave_jobs_finished_total", &[]), 6.0);
        assert_eq!(
            s.sum("longwave_jobs_finished_total", &[("outcome", "success")]),
            5.0
        );
        assert_eq!(s.sum("longwave_job_slots_busy", &[]), 2.0);
        let by = s.by_label("longwave_jobs_finished_total", "outcome");
        assert_eq!(by.get("failed"), Some(&1.0));
    }
}
