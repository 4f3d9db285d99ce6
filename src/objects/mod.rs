//! The object store that holds large attachments (DESIGN §18): a directory (`file://`) or an
//! S3 bucket (`s3://`) behind one streaming interface. Writers buffer at most one part and
//! readers hand out pieces, so no object is ever held whole in memory. Which objects are
//! visible is the database's business; this layer only stores bytes under keys.

mod file;
mod s3;

pub use file::FileBackend;
pub use s3::{S3Backend, S3Credentials};

use crate::config::ObjectStoreConfig;
use bytes::Bytes;
use futures_util::stream::BoxStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Size of one S3 part, and so the most a writer buffers. S3 wants every part but the last
/// to be at least 5 MiB and allows 10,000 parts: 8 MiB parts bound an object at 78 GiB.
pub const PART_SIZE: usize = 8 * 1024 * 1024;
/// The first segment of every key the vault writes (`v1/<blob id>/<random>`).
pub const LAYOUT: &str = "v1";
/// Longest accepted key. S3 allows 1,024 bytes with the prefix; this leaves room for one.
pub const MAX_KEY_LEN: usize = 512;
/// Longest segment of a key: the common limit of a file name.
const MAX_SEGMENT_LEN: usize = 255;

/// Errors of the object store. Their text never holds credentials: S3 error bodies are
/// redacted before they become an `Unavailable` message.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    #[error("object not found")]
    NotFound,
    /// The key is not `[a-z0-9/._-]` segments (at most 512 bytes, no `.` or `..` segment).
    #[error("invalid object key {0:?}")]
    InvalidKey(String),
    /// What failed, with the store's answer (no secrets).
    #[error("object store unavailable: {0}")]
    Unavailable(String),
    #[error("object store I/O error: {0}")]
    Io(#[from] std::io::Error),
}

#[async_trait::async_trait]
pub trait ObjectBackend: Send + Sync + 'static {
    /// Starts a new object at `key` (validated by [`validate_key`]). For S3 this creates the
    /// multipart upload at once, so `upload_id()` is known before any byte is written.
    async fn create(&self, key: &str) -> Result<Box<dyn ObjectWriter>, ObjectError>;
    /// The object's bytes, streamed in pieces of any size, never held whole.
    async fn read(
        &self,
        key: &str,
    ) -> Result<BoxStream<'static, Result<Bytes, ObjectError>>, ObjectError>;
    /// Removes the object at `key`, and aborts the unfinished upload `upload_id` when given.
    /// A missing object or upload is not an error (deletes are retried by a sweep).
    async fn delete(&self, key: &str, upload_id: Option<&str>) -> Result<(), ObjectError>;
    /// For /readyz: the store answers (S3: one listing of at most one key; file: the root is
    /// a writable directory, created if missing).
    async fn ping(&self) -> Result<(), ObjectError>;
    /// `file:///abs/path` or `s3://bucket[/prefix]`, for logs (never credentials).
    fn describe(&self) -> String;
    /// The key of every object under the vault's layout ([`LAYOUT`]`/...`), in no set order
    /// and never held all at once, for reconciling the store with the database. Objects of
    /// uploads still under way are among them.
    fn list(&self) -> BoxStream<'static, Result<String, ObjectError>>;
}

#[async_trait::async_trait]
pub trait ObjectWriter: Send {
    /// The backend's handle of the unfinished upload (S3 multipart id), None for files.
    fn upload_id(&self) -> Option<String>;
    /// Appends bytes. Buffers at most one part ([`PART_SIZE`]) and awaits each part's upload
    /// before taking more.
    async fn write(&mut self, bytes: Bytes) -> Result<(), ObjectError>;
    /// Completes the object durably (file: fsync the file and its directories; S3: complete
    /// the multipart upload).
    async fn finish(self: Box<Self>) -> Result<(), ObjectError>;
    /// Abandons it and removes what was written (best effort; errors returned, not panicked).
    async fn abort(self: Box<Self>) -> Result<(), ObjectError>;
}

/// A writer whose write failed part-way has lost bytes: it may only be aborted, as finishing
/// would store an object with a gap.
fn usable(failed: bool) -> Result<(), ObjectError> {
    if failed {
        return Err(ObjectError::Unavailable(
            "an earlier write to this object failed; abort it".into(),
        ));
    }
    Ok(())
}

/// Checks that `key` is one or more `/`-separated segments of `[a-z0-9._-]`, none of them
/// empty, `.` or `..`: such a key can neither escape the file root nor mean two things to S3.
pub fn validate_key(key: &str) -> Result<(), ObjectError> {
    if is_valid_key(key) {
        Ok(())
    } else {
        // Bounded, so a hostile key cannot flood the log that reports it.
        Err(ObjectError::InvalidKey(key.chars().take(80).collect()))
    }
}

fn is_valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= MAX_KEY_LEN
        && key
            .bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'/' | b'.' | b'_' | b'-'))
        && key.split('/').all(|segment| {
            !segment.is_empty()
                && segment.len() <= MAX_SEGMENT_LEN
                && segment != "."
                && segment != ".."
        })
}

/// Where the objects live, parsed from `[object_store]`: the one parser behind both the
/// configuration's validation and [`from_config`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// The default: a directory chosen by the caller (beside the database).
    Default,
    /// `file:///abs/path`.
    File(PathBuf),
    S3(S3Location),
}

/// `s3://bucket[/prefix]` with its optional `endpoint` and `region`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    pub bucket: String,
    /// Prepended to every key, with a `/`; validated like a key.
    pub prefix: Option<String>,
    /// `http(s)://host[:port]` of an S3-compatible service; unset: AWS.
    pub endpoint: Option<url::Url>,
    pub region: Option<String>,
}

impl Location {
    /// Parses the section; errors name the key at fault.
    pub fn parse(config: &ObjectStoreConfig) -> Result<Self, String> {
        let endpoint = config.endpoint.as_deref().map(parse_endpoint).transpose()?;
        if let Some(region) = &config.region {
            if region.is_empty()
                || region.len() > 64
                || !region.bytes().all(|b| b.is_ascii_graphic())
            {
                return Err(format!(
                    "object_store.region must be a region name such as eu-west-1, not {region:?}"
                ));
            }
        }
        let Some(url) = &config.url else {
            if config.endpoint.is_some() || config.region.is_some() {
                return Err(
                    "object_store.endpoint and object_store.region need object_store.url = \
                     \"s3://bucket\""
                        .into(),
                );
            }
            return Ok(Self::Default);
        };
        let bad_url = || {
            format!(
                "object_store.url must be file:///absolute/path or s3://bucket[/prefix], \
                 not {}",
                shown(url)
            )
        };
        let parsed = url::Url::parse(url).map_err(|_| bad_url())?;
        if !parsed.username().is_empty()
            || parsed.password().is_some()
            || parsed.port().is_some()
            || parsed.query().is_some()
            || parsed.fragment().is_some()
        {
            return Err(bad_url());
        }
        match parsed.scheme() {
            "file" => {
                if config.endpoint.is_some() || config.region.is_some() {
                    return Err(
                        "object_store.endpoint and object_store.region apply only to s3:// urls"
                            .into(),
                    );
                }
                // A host (`file://relative/path`) is refused here: the root must be absolute.
                let root = parsed.to_file_path().map_err(|()| bad_url())?;
                if !root.is_absolute() || root == Path::new("/") {
                    return Err(bad_url());
                }
                Ok(Self::File(root))
            }
            "s3" => {
                // Taken from the text as written: the URL parser would resolve `..` segments
                // and percent escapes that the prefix must refuse instead.
                let rest = url.get("s3://".len()..).unwrap_or_default();
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                if !is_bucket_name(bucket) {
                    return Err(format!(
                        "object_store.url needs a bucket name of 3-63 lowercase letters, digits, \
                         '.' and '-' (s3://bucket[/prefix]), not {}",
                        shown(url)
                    ));
                }
                let prefix = prefix.trim_end_matches('/');
                let prefix = if prefix.is_empty() {
                    None
                } else if is_valid_key(prefix) && prefix.len() <= 256 {
                    Some(prefix.to_owned())
                } else {
                    return Err(format!(
                        "object_store.url's prefix must be segments of [a-z0-9._-] separated by \
                         '/' (at most 256 bytes), not {prefix:?}"
                    ));
                };
                Ok(Self::S3(S3Location {
                    bucket: bucket.to_owned(),
                    prefix,
                    endpoint,
                    region: config.region.clone(),
                }))
            }
            _ => Err(bad_url()),
        }
    }
}

fn parse_endpoint(endpoint: &str) -> Result<url::Url, String> {
    let bad = || {
        format!(
            "object_store.endpoint must be an http:// or https:// URL such as \
             http://127.0.0.1:9000, without credentials, query or fragment, not {}",
            shown(endpoint)
        )
    };
    let url = url::Url::parse(endpoint).map_err(|_| bad())?;
    // Credentials belong in the AWS variables, never in a URL that is logged.
    if !matches!(url.scheme(), "http" | "https")
        || url.host_str().is_none_or(str::is_empty)
        || !url.username().is_empty()
        || url.password().is_some()
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return Err(bad());
    }
    Ok(url)
}

/// A configured URL for an error message, unless it may hold credentials (`user:pass@`).
fn shown(url: &str) -> String {
    if url.contains('@') {
        "a URL with credentials in it (not shown; use the AWS variables)".into()
    } else {
        format!("{url:?}")
    }
}

/// S3's bucket naming rules, less the ones about IP-like names.
fn is_bucket_name(name: &str) -> bool {
    (3..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// Builds the configured backend: `default_root` (made absolute) when `object_store.url` is
/// unset. S3 takes its credentials from the usual AWS variables.
pub fn from_config(
    config: &ObjectStoreConfig,
    default_root: &Path,
) -> anyhow::Result<Arc<dyn ObjectBackend>> {
    let location = Location::parse(config).map_err(anyhow::Error::msg)?;
    Ok(match location {
        Location::Default => Arc::new(FileBackend::new(std::path::absolute(default_root)?)),
        Location::File(root) => Arc::new(FileBackend::new(root)),
        Location::S3(location) => Arc::new(S3Backend::from_env(location)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(
        url: Option<&str>,
        endpoint: Option<&str>,
        region: Option<&str>,
    ) -> ObjectStoreConfig {
        ObjectStoreConfig {
            url: url.map(Into::into),
            endpoint: endpoint.map(Into::into),
            region: region.map(Into::into),
        }
    }

    #[test]
    fn keys_are_plain_relative_segments() {
        for good in [
            "v1/0190b2c4-aaaa/x9",
            "a",
            "v1/blob.part_2-x",
            "..a/b..",
            "a/.b",
        ] {
            validate_key(good).unwrap();
        }
        let long_segment = "a".repeat(MAX_SEGMENT_LEN + 1);
        let long_key = "a/".repeat(MAX_KEY_LEN / 2) + "a";
        for bad in [
            "",
            "..",
            ".",
            "v1/../../etc/passwd",
            "v1/./x",
            "/etc/passwd",
            "v1//x",
            "v1/x/",
            "V1/x",
            "v1\\x",
            "v1/x y",
            "v1/é",
            "v1/x\0",
            long_segment.as_str(),
            long_key.as_str(),
        ] {
            assert!(
                matches!(validate_key(bad), Err(ObjectError::InvalidKey(_))),
                "{bad:?} was accepted"
            );
        }
    }

    #[test]
    fn locations_parse_from_the_section() {
        assert_eq!(
            Location::parse(&config(None, None, None)).unwrap(),
            Location::Default
        );
        assert_eq!(
            Location::parse(&config(Some("file:///var/lib/vault/objects"), None, None)).unwrap(),
            Location::File("/var/lib/vault/objects".into())
        );
        assert_eq!(
            Location::parse(&config(
                Some("s3://vault-objects/prod/eu"),
                Some("https://s3.example.com"),
                Some("eu-west-1")
            ))
            .unwrap(),
            Location::S3(S3Location {
                bucket: "vault-objects".into(),
                prefix: Some("prod/eu".into()),
                endpoint: Some(url::Url::parse("https://s3.example.com").unwrap()),
                region: Some("eu-west-1".into()),
            })
        );
        let Location::S3(s3) = Location::parse(&config(Some("s3://bucket/"), None, None)).unwrap()
        else {
            panic!("not s3")
        };
        assert_eq!(s3.prefix, None);
    }

    #[test]
    fn bad_locations_are_refused_naming_the_key() {
        for (url, endpoint, region, key) in [
            (Some("file://relative/path"), None, None, "object_store.url"),
            (Some("file:///"), None, None, "object_store.url"),
            (Some("/var/lib/objects"), None, None, "object_store.url"),
            (Some("gs://bucket"), None, None, "object_store.url"),
            (Some("s3://"), None, None, "object_store.url"),
            (Some("s3://Bucket"), None, None, "object_store.url"),
            (Some("s3://bucket/../x"), None, None, "object_store.url"),
            (Some("s3://bucket/A"), None, None, "object_store.url"),
            (
                Some("s3://key:secret@bucket"),
                None,
                None,
                "object_store.url",
            ),
            (Some("s3://bucket?x=1"), None, None, "object_store.url"),
            (
                Some("s3://bucket"),
                Some("ftp://host"),
                None,
                "object_store.endpoint",
            ),
            (
                Some("s3://bucket"),
                Some("localhost:9000"),
                None,
                "object_store.endpoint",
            ),
            (
                Some("s3://bucket"),
                Some("http://key:secret@127.0.0.1:9000"),
                None,
                "object_store.endpoint",
            ),
            (Some("s3://bucket"), None, Some(""), "object_store.region"),
            (
                Some("s3://bucket"),
                None,
                Some("eu west"),
                "object_store.region",
            ),
            (
                None,
                Some("http://127.0.0.1:9000"),
                None,
                "object_store.endpoint",
            ),
            (
                Some("file:///srv/objects"),
                None,
                Some("eu-west-1"),
                "object_store.region",
            ),
        ] {
            let message = Location::parse(&config(url, endpoint, region)).unwrap_err();
            assert!(
                message.contains(key),
                "{url:?} {endpoint:?} {region:?}: {message}"
            );
            assert!(!message.contains("secret@"), "{message}");
        }
    }

    #[test]
    fn the_default_root_is_made_absolute() {
        let backend = from_config(&config(None, None, None), Path::new("data/objects")).unwrap();
        let described = backend.describe();
        assert!(described.starts_with("file:///"), "{described}");
        assert!(described.ends_with("/data/objects"), "{described}");
    }
}
