//! Reading a message's JSON with field paths, and the bounded text errors echo.
//!
//! Every error names the path of the field at fault (`Records[0].s3.object.key`), and every
//! value of the body an error quotes is cut short and kept on one line.

use super::MessageError;
use crate::io::ObjectRef;
use serde_json::{Map, Value};

/// Longest value echoed from the body into an error, in characters.
const MAX_ECHO: usize = 64;
/// Longest foreign error text (serde, the planner) kept in an error, in characters.
const MAX_REASON: usize = 512;

/// `path.name`, or `name` at the top level.
pub(super) fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

/// `value` as an object, or an error at `path`.
pub(super) fn object<'a>(
    value: &'a Value,
    path: &str,
) -> Result<&'a Map<String, Value>, MessageError> {
    value.as_object().ok_or_else(|| {
        invalid(
            if path.is_empty() { "message" } else { path },
            "expected a JSON object",
        )
    })
}

/// The field `name` of the object `value` at `path`; absent or `null` is an error.
pub(super) fn req<'a>(value: &'a Value, path: &str, name: &str) -> Result<&'a Value, MessageError> {
    match object(value, path)?.get(name) {
        None | Some(Value::Null) => Err(invalid(&join(path, name), "missing")),
        Some(v) => Ok(v),
    }
}

/// The string field `name` of the object `value` at `path`.
pub(super) fn req_str<'a>(
    value: &'a Value,
    path: &str,
    name: &str,
) -> Result<&'a str, MessageError> {
    req(value, path, name)?
        .as_str()
        .ok_or_else(|| invalid(&join(path, name), "expected a string"))
}

/// An optional string field: absent, `null` and `""` are `None`.
pub(super) fn opt_str<'a>(
    value: &'a Value,
    path: &str,
    name: &str,
) -> Result<Option<&'a str>, MessageError> {
    match object(value, path)?.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str()).filter(|s| !s.is_empty())),
        Some(_) => Err(invalid(&join(path, name), "expected a string")),
    }
}

pub(super) fn invalid(path: &str, reason: impl Into<String>) -> MessageError {
    MessageError::Invalid {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

/// A short description of a value for "unrecognised" errors: its type, or its first keys.
pub(super) fn describe(value: &Value) -> String {
    const KEYS: usize = 6;
    match value {
        Value::Object(map) if map.is_empty() => "an empty JSON object".to_owned(),
        Value::Object(map) => {
            let keys: Vec<String> = map
                .keys()
                .take(KEYS)
                .map(|k| format!("{:?}", short(k)))
                .collect();
            let more = if map.len() > KEYS { ", …" } else { "" };
            format!("a JSON object with keys {}{more}", keys.join(", "))
        }
        Value::Array(_) => "a JSON array".to_owned(),
        Value::String(_) => "a JSON string".to_owned(),
        Value::Number(_) => "a JSON number".to_owned(),
        Value::Bool(_) => "a JSON boolean".to_owned(),
        Value::Null => "null".to_owned(),
    }
}

/// Checks an input bucket and key and makes the input object, so that an error names the
/// message's field (`Records[0].s3.bucket.name`). `bucket` and `key` are (value, field path)
/// pairs.
pub(super) fn s3_input(
    (bucket, bucket_path): (&str, &str),
    (key, key_path): (&str, &str),
) -> Result<ObjectRef, MessageError> {
    ObjectRef::parse(&format!("s3://{bucket}/")).map_err(|_| {
        invalid(
            bucket_path,
            format!(
                "{:?} is not a valid bucket name (3-63 lower-case letters, digits, '.', '-')",
                short(bucket)
            ),
        )
    })?;
    if key.trim().is_empty() {
        return Err(invalid(key_path, "empty"));
    }
    if key.len() > 1024 {
        return Err(invalid(key_path, "longer than 1024 bytes"));
    }
    ObjectRef::parse(&format!("s3://{bucket}/{key}"))
        .map_err(|e| invalid(key_path, bounded(&e.to_string())))
}

/// A value from the body, cut to [`MAX_ECHO`] characters, on one line.
pub(super) fn short(text: &str) -> String {
    crate::job::cap_echo_at(text, MAX_ECHO)
}

/// Foreign error text, cut to [`MAX_REASON`] characters, on one line (serde echoes unknown field
/// names, which a hostile body can make arbitrarily long or fill with newlines).
pub(super) fn bounded(text: &str) -> String {
    crate::job::cap_echo_at(text, MAX_REASON)
}
