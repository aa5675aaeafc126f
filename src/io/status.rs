//! Job status records in a DynamoDB table: the item the services around longwave read to show
//! a recording's state, moved `QUEUED` (written by whoever sends the job) → `PROCESSING` →
//! `COMPLETE` or `FAILED`.
//!
//! Every write is one `UpdateItem` on the item's key, so fields another system keeps on the same
//! item (the producer's own attributes) are left alone. `PROCESSING` and `FAILED` are
//! conditional: they apply unless the item is already `COMPLETE` for the same input version
//! (`inputVersion`), so a late or duplicate delivery never moves a finished record backwards;
//! `PROCESSING` adds 1 to `attempts`. `COMPLETE` always applies (a redelivered job that finds
//! its outputs complete writes it again, which is how a lost `COMPLETE` write is repaired).
//!
//! A failed write is an error the caller treats as retryable: the job is tried again later, and
//! its outputs are never lost or duplicated by it (they are committed under fixed names, and a
//! redelivery of a completed job only rewrites the record).

use super::S3Context;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use std::collections::HashMap;
use thiserror::Error;

/// The states a record moves through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStatus {
    /// A worker or task runs the job.
    Processing,
    /// The outputs and the manifest are complete.
    Complete,
    /// The job failed (the record says whether it will be retried).
    Failed,
}

impl JobStatus {
    /// The value stored in the `status` attribute.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Processing => "PROCESSING",
            JobStatus::Complete => "COMPLETE",
            JobStatus::Failed => "FAILED",
        }
    }

    /// The metric label (`processing`, `complete`, `failed`).
    pub fn label(self) -> &'static str {
        match self {
            JobStatus::Processing => "processing",
            JobStatus::Complete => "complete",
            JobStatus::Failed => "failed",
        }
    }
}

/// What a conditional write came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusWrite {
    /// The item now says what was written.
    Applied,
    /// The item was already `COMPLETE` for this input version and was left so.
    KeptComplete,
}

/// A status write that failed (the table is missing, access denied, the service unreachable).
/// Always retryable from the job's point of view: see the module docs.
#[derive(Debug, Error)]
#[error("status table {table}: cannot mark {key} {status}: {reason}")]
pub struct StatusError {
    /// The table.
    pub table: String,
    /// The item's key value.
    pub key: String,
    /// The state that was being written.
    pub status: &'static str,
    /// What the service or the client said.
    pub reason: String,
}

/// The most characters of one string attribute a record stores (an error message, a path): a
/// DynamoDB item holds at most 400 KB.
pub const MAX_STRING_CHARS: usize = 2048;

/// A DynamoDB table of job status records, reached through the S3 context's runtime.
#[derive(Debug, Clone)]
pub struct StatusTable {
    client: Client,
    s3: S3Context,
    table: String,
    key_name: String,
}

impl StatusTable {
    /// A table named `table` whose partition key is the string attribute `key_name`, with
    /// credentials, region and endpoint from the same standard sources as S3
    /// (`AWS_ENDPOINT_URL_DYNAMODB` or `AWS_ENDPOINT_URL` for a local server).
    ///
    /// # Errors
    /// The configuration cannot be loaded (no region).
    pub fn connect(s3: &S3Context, table: &str, key_name: &str) -> Result<Self, StatusError> {
        let setup = |reason: String| StatusError {
            table: table.to_owned(),
            key: String::new(),
            status: "-",
            reason,
        };
        if table.is_empty() || key_name.is_empty() {
            return Err(setup(
                "the table and key attribute names must not be empty".into(),
            ));
        }
        let config = s3
            .block_on(aws_config::defaults(aws_config::BehaviorVersion::v2026_01_12()).load())
            .map_err(|e| setup(e.to_string()))?;
        if config.region().is_none() {
            return Err(setup("no AWS region configured (set AWS_REGION)".into()));
        }
        Ok(Self {
            client: Client::new(&config),
            s3: s3.clone(),
            table: table.to_owned(),
            key_name: key_name.to_owned(),
        })
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Writes `status` and `fields` on the item `key`, for input version `version` (see the
    /// module docs for the conditions).
    ///
    /// # Errors
    /// [`StatusError`] when the service refuses or cannot be reached (the SDK has retried).
    pub fn write(
        &self,
        key: &str,
        version: &str,
        status: JobStatus,
        fields: &[(&str, serde_json::Value)],
    ) -> Result<StatusWrite, StatusError> {
        let mut names = HashMap::from([
            ("#status".to_owned(), "status".to_owned()),
            ("#version".to_owned(), "inputVersion".to_owned()),
        ]);
        let mut values = HashMap::from([
            (
                ":status".to_owned(),
                AttributeValue::S(status.as_str().to_owned()),
            ),
            (":version".to_owned(), AttributeValue::S(bounded(version))),
        ]);
        let mut sets = vec![
            "#status = :status".to_owned(),
            "#version = :version".to_owned(),
        ];
        for (i, (name, value)) in fields.iter().enumerate() {
            names.insert(format!("#f{i}"), (*name).to_owned());
            values.insert(format!(":f{i}"), attribute(value));
            sets.push(format!("#f{i} = :f{i}"));
        }
        let mut expression = format!("SET {}", sets.join(", "));
        let conditional = status != JobStatus::Complete;
        if status == JobStatus::Processing {
            expression.push_str(" ADD #attempts :one");
            names.insert("#attempts".to_owned(), "attempts".to_owned());
            values.insert(":one".to_owned(), AttributeValue::N("1".to_owned()));
        }
        if conditional {
            values.insert(
                ":complete".to_owned(),
                AttributeValue::S(JobStatus::Complete.as_str().to_owned()),
            );
        }
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(&self.key_name, AttributeValue::S(bounded(key)))
            .update_expression(expression)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values));
        if conditional {
            request = request.condition_expression(
                "attribute_not_exists(#status) OR #status <> :complete \
                 OR attribute_not_exists(#version) OR #version <> :version",
            );
        }
        let error = |reason: String| StatusError {
            table: self.table.clone(),
            key: bounded(key),
            status: status.as_str(),
            reason,
        };
        match self.s3.block_on(request.send()) {
            Err(e) => Err(error(e.to_string())),
            Ok(Ok(_)) => Ok(StatusWrite::Applied),
            Ok(Err(e)) if e.code() == Some("ConditionalCheckFailedException") => {
                Ok(StatusWrite::KeptComplete)
            }
            Ok(Err(e)) => Err(error(format!("{}", DisplayErrorContext(&e)))),
        }
    }
}

/// A string cut to [`MAX_STRING_CHARS`] characters.
fn bounded(text: &str) -> String {
    match text.char_indices().nth(MAX_STRING_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// A JSON value as a DynamoDB attribute: strings (bounded), numbers, booleans, lists, maps;
/// null as NULL.
fn attribute(value: &serde_json::Value) -> AttributeValue {
    use serde_json::Value;
    match value {
        Value::Null => AttributeValue::Null(true),
        Value::Bool(b) => AttributeValue::Bool(*b),
        Value::Number(n) => AttributeValue::N(n.to_string()),
        Value::String(s) => AttributeValue::S(bounded(s)),
        Value::Array(items) => AttributeValue::L(items.iter().map(attribute).collect()),
        Value::Object(map) => {
            AttributeValue::M(map.iter().map(|(k, v)| (k.clone(), attribute(v))).collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_values_become_attributes_and_long_strings_are_cut() {
        let value = serde_json::json!({"a": [1, 2.5, true, null], "s": "x".repeat(5000)});
        let AttributeValue::M(map) = attribute(&value) else {
            panic!("a map");
        };
        assert_eq!(
            map["a"],
            AttributeValue::L(vec![
                AttributeValue::N("1".into()),
                AttributeValue::N("2.5".into()),
                AttributeValue::Bool(true),
                AttributeValue::Null(true),
            ])
        );
        let AttributeValue::S(s) = &map["s"] else {
            panic!("a string");
        };
        assert_eq!(s.chars().count(), MAX_STRING_CHARS + 1);
    }
}
