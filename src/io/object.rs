//! [`ObjectRef`]: where an input or output lives, a local path or an S3 object/prefix, parsed
//! from the one string form users type (`s3://bucket/key`, `s3://bucket/prefix/`, or a path).

use super::IoError;
use std::fmt;
use std::path::PathBuf;

/// A local file (or folder) or an S3 object (or prefix).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ObjectRef {
    /// A local path.
    File(PathBuf),
    /// An S3 object; a `key` that is empty or ends with `/` denotes a prefix ("folder").
    S3 {
        /// Bucket name.
        bucket: String,
        /// Object key or prefix (no leading `/`).
        key: String,
    },
}

impl ObjectRef {
    /// Parses `s3://bucket/key`, `s3://bucket/prefix/`, `s3://bucket` (the whole bucket as a
    /// prefix) or a local path (anything without a `scheme://`).
    ///
    /// # Errors
    /// [`IoError::InvalidRef`] for an empty string, another scheme (`gs://`, `https://`), an
    /// empty or malformed bucket name.
    pub fn parse(input: &str) -> Result<Self, IoError> {
        let invalid = |reason: &str| IoError::InvalidRef {
            input: input.to_owned(),
            reason: reason.to_owned(),
        };
        if input.is_empty() {
            return Err(invalid("empty"));
        }
        if let Some(rest) = input.strip_prefix("s3://") {
            let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(invalid(
                    "the bucket name is empty (expected s3://bucket/key)",
                ));
            }
            // S3 bucket names: 3–63 characters of lower-case letters, digits, '.' and '-'.
            let valid_bucket = (3..=63).contains(&bucket.len())
                && bucket.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-'
                });
            if !valid_bucket {
                return Err(invalid(
                    "not a valid bucket name (3-63 lower-case letters, digits, '.', '-')",
                ));
            }
            if key.len() > 1024 {
                return Err(invalid("the key is longer than 1024 bytes"));
            }
            return Ok(ObjectRef::S3 {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
            });
        }
        if let Some((scheme, _)) = input.split_once("://") {
            let looks_like_scheme = !scheme.is_empty()
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
            if looks_like_scheme {
                return Err(invalid(&format!(
                    "unsupported scheme {scheme}:// (use s3://bucket/key or a local path)"
                )));
            }
        }
        Ok(ObjectRef::File(PathBuf::from(input)))
    }

    /// Whether this is an S3 object or prefix.
    pub fn is_s3(&self) -> bool {
        matches!(self, ObjectRef::S3 { .. })
    }

    /// Whether this names a folder-like prefix: an S3 key that is empty or ends with `/`, or a
    /// local path that is an existing directory or ends with a separator.
    pub fn is_prefix(&self) -> bool {
        match self {
            ObjectRef::S3 { key, .. } => key.is_empty() || key.ends_with('/'),
            ObjectRef::File(path) => {
                path.is_dir() || path.as_os_str().to_string_lossy().ends_with('/')
            }
        }
    }

    /// The object `name` inside this prefix or folder (`s3://b/out/` + `a.wav` =
    /// `s3://b/out/a.wav`; a key without a trailing `/` gets one).
    pub fn join(&self, name: &str) -> ObjectRef {
        match self {
            ObjectRef::File(path) => ObjectRef::File(path.join(name)),
            ObjectRef::S3 { bucket, key } => {
                let key = if key.is_empty() || key.ends_with('/') {
                    format!("{key}{name}")
                } else {
                    format!("{key}/{name}")
                };
                ObjectRef::S3 {
                    bucket: bucket.clone(),
                    key,
                }
            }
        }
    }

    /// The last path segment (`a.wav` for `s3://b/x/a.wav`), if any.
    pub fn file_name(&self) -> Option<&str> {
        match self {
            ObjectRef::File(path) => path.file_name().and_then(|n| n.to_str()),
            ObjectRef::S3 { key, .. } => key.rsplit('/').next().filter(|n| !n.is_empty()),
        }
    }

    /// The extension of [`file_name`](Self::file_name), without the dot: a hint for probing.
    pub fn extension(&self) -> Option<&str> {
        let name = self.file_name()?;
        let (stem, ext) = name.rsplit_once('.')?;
        (!stem.is_empty() && !ext.is_empty()).then_some(ext)
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ObjectRef::File(path) => write!(f, "{}", path.display()),
            ObjectRef::S3 { bucket, key } => write!(f, "s3://{bucket}/{key}"),
        }
    }
}

impl std::str::FromStr for ObjectRef {
    type Err = IoError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ObjectRef::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_s3_objects_prefixes_and_paths() {
        let obj = ObjectRef::parse("s3://my-bucket/in/talk.m4a").unwrap();
        assert_eq!(
            obj,
            ObjectRef::S3 {
                bucket: "my-bucket".into(),
                key: "in/talk.m4a".into()
            }
        );
        assert_eq!(obj.to_string(), "s3://my-bucket/in/talk.m4a");
        assert!(!obj.is_prefix());
        assert_eq!(obj.extension(), Some("m4a"));
        assert_eq!(obj.file_name(), Some("talk.m4a"));

        let prefix = ObjectRef::parse("s3://my-bucket/out/").unwrap();
        assert!(prefix.is_prefix());
        assert_eq!(prefix.join("a.wav").to_string(), "s3://my-bucket/out/a.wav");
        let bucket = ObjectRef::parse("s3://my-bucket").unwrap();
        assert!(bucket.is_prefix());
        assert_eq!(bucket.join("a.wav").to_string(), "s3://my-bucket/a.wav");
        assert_eq!(
            ObjectRef::parse("s3://my-bucket/out")
                .unwrap()
                .join("a")
                .to_string(),
            "s3://my-bucket/out/a"
        );

        assert_eq!(
            ObjectRef::parse("dir/in.wav").unwrap(),
            ObjectRef::File("dir/in.wav".into())
        );
    }

    #[test]
    fn rejects_bad_references() {
        for bad in [
            "",
            "s3://",
            "s3:///key",
            "s3://Bad_Bucket/k",
            "gs://b/k",
            "https://x/y",
        ] {
            let err = ObjectRef::parse(bad).unwrap_err();
            assert_eq!(err.kind(), "invalid_ref", "{bad}: {err}");
        }
    }
}
