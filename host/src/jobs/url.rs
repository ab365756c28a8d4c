//! Which URLs a job may read or write. Jobs run with the server's credentials, so a
//! URL from a request could otherwise name any file or bucket the server can reach.
//! Rules:
//! - only `s3://`, `gs://`, `az://` and `file:///` URLs, of plain segments
//!   (`[A-Za-z0-9._~=+-]`, no empty, `.` or `..` segment, no percent escapes);
//! - only under a prefix the operator allowed with `--jobs-allow-url` (`{tenant}` in a
//!   prefix becomes the caller's tenant); none allowed means no URL jobs at all;
//! - never inside the server's own storage, nor a directory that contains it (a backup
//!   there could write `{tenant}/…` keys into it). Local paths are also compared after
//!   resolving symlinks of their existing part.

use std::path::{Path, PathBuf};

use crate::error::ApiError;
use crate::storage::ObjectStorage;

const SCHEMES: &[&str] = &["s3://", "gs://", "az://", "file:///"];
const MAX_URL: usize = 1024;
const TENANT: &str = "{tenant}";

/// A checked URL: the store of its directory and the object's name in it.
#[derive(Debug, Clone)]
pub struct Location {
    /// The normalized URL (a directory ends with `/`).
    pub url: String,
    /// The directory, as `ObjectStorage::open` takes it.
    dir: String,
    /// The object's name in `dir` (empty for a directory).
    pub name: String,
}

impl Location {
    /// Opens the directory's store (object_store, configured like `--storage`).
    ///
    /// # Errors
    /// 400 when the store cannot be configured (e.g. missing credentials).
    pub fn open(&self) -> Result<ObjectStorage, ApiError> {
        ObjectStorage::open(&self.dir)
            .map_err(|e| ApiError::invalid(format!("cannot open {}: {e:#}", self.url)))
    }
}

/// A URL split into its scheme and segments.
#[derive(Debug, PartialEq)]
struct Parsed<'a> {
    scheme: &'static str,
    segments: Vec<&'a str>,
    trailing_slash: bool,
}

impl Parsed<'_> {
    fn join(&self, n: usize) -> String {
        format!("{}{}", self.scheme, self.segments[..n].join("/"))
    }
}

fn parse(url: &str, prefix: bool) -> Result<Parsed<'_>, String> {
    if url.len() > MAX_URL {
        return Err(format!("a URL is at most {MAX_URL} bytes"));
    }
    let Some(scheme) = SCHEMES.iter().copied().find(|s| url.starts_with(s)) else {
        return Err(format!(
            "`{url}`: a job URL starts with s3://, gs://, az:// or file:/// (an absolute path)"
        ));
    };
    let rest = &url[scheme.len()..];
    let trailing_slash = rest.ends_with('/');
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let segments: Vec<&str> = rest.split('/').collect();
    for segment in &segments {
        let plain = segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._~=+-".contains(&b));
        let ok = !segment.is_empty()
            && *segment != "."
            && *segment != ".."
            && (plain || (prefix && *segment == TENANT));
        if !ok {
            return Err(format!(
                "`{url}`: every path segment must be non-empty, not `.` or `..`, and of A-Z, a-z, 0-9 and `._~=+-`"
            ));
        }
    }
    Ok(Parsed {
        scheme,
        segments,
        trailing_slash,
    })
}

/// The longest existing ancestor of `path`, canonicalized, with the rest appended.
fn resolve(path: &Path) -> PathBuf {
    let mut existing = path.to_path_buf();
    let mut rest = Vec::new();
    loop {
        if let Ok(canonical) = std::fs::canonicalize(&existing) {
            return rest
                .iter()
                .rev()
                .fold(canonical, |p, s: &std::ffi::OsString| p.join(s));
        }
        match (
            existing.file_name().map(|s| s.to_os_string()),
            existing.parent(),
        ) {
            (Some(name), Some(parent)) => {
                rest.push(name);
                existing = parent.to_path_buf();
            }
            _ => return path.to_path_buf(),
        }
    }
}

/// The operator's allowed prefixes and the server's own storage root.
#[derive(Debug, Clone, Default)]
pub struct Allowlist {
    /// Normalized, each ending with `/`, possibly with `{tenant}`.
    prefixes: Vec<String>,
    /// The storage root, normalized, ending with `/`.
    root: String,
    /// A local storage root, symlinks resolved.
    root_path: Option<PathBuf>,
}

impl Allowlist {
    /// `prefixes` as given with `--jobs-allow-url`; `root` is the server's storage URL
    /// (`file:///abs`, `s3://bucket/prefix`, `memory://`). Malformed prefixes and
    /// prefixes overlapping the storage are dropped with an error in the log.
    pub fn new(prefixes: &[String], root: &str) -> Self {
        let root_norm = format!("{}/", root.trim_end_matches('/'));
        let root_path = root.strip_prefix("file://").map(|p| resolve(Path::new(p)));
        let mut list = Allowlist {
            prefixes: Vec::new(),
            root: root_norm,
            root_path,
        };
        for prefix in prefixes.iter().map(|p| p.trim()).filter(|p| !p.is_empty()) {
            let parsed = match parse(prefix, true) {
                Ok(parsed) => parsed,
                Err(e) => {
                    tracing::error!("--jobs-allow-url {prefix}: ignored: {e}");
                    continue;
                }
            };
            let norm = format!("{}/", parsed.join(parsed.segments.len()));
            // Any tenant name could stand for `{tenant}`: check the part before it.
            let fixed = norm.split(TENANT).next().unwrap_or_default();
            if list.overlaps_root(fixed, true) {
                tracing::error!(
                    "--jobs-allow-url {prefix}: ignored: it overlaps the server's own storage {root}"
                );
                continue;
            }
            list.prefixes.push(norm);
        }
        list
    }

    /// Whether `url` (normalized; a directory ending with `/`) is inside the storage
    /// root, or (`dir`) contains it.
    fn overlaps_root(&self, url: &str, dir: bool) -> bool {
        if url.starts_with(&self.root) || (dir && self.root.starts_with(url)) {
            return true;
        }
        match (&self.root_path, url.strip_prefix("file://")) {
            (Some(root), Some(path)) => {
                let path = resolve(Path::new(path));
                path.starts_with(root) || (dir && root.starts_with(&path))
            }
            _ => false,
        }
    }

    fn allowed(&self, url: &str, tenant: &str, dir: bool) -> Result<(), ApiError> {
        if self.prefixes.is_empty() {
            return Err(ApiError::invalid(
                "jobs may not read or write URLs on this server: the operator has allowed none (start it with --jobs-allow-url PREFIX)",
            ));
        }
        if self.overlaps_root(url, dir) {
            return Err(ApiError::invalid(format!(
                "`{url}` is inside (or contains) the server's own storage; jobs may not use it"
            )));
        }
        if self
            .prefixes
            .iter()
            .any(|p| url.starts_with(&p.replace(TENANT, tenant)))
        {
            Ok(())
        } else {
            Err(ApiError::invalid(format!(
                "`{url}` is not under a prefix the operator allowed with --jobs-allow-url"
            )))
        }
    }

    /// Checks the URL of one object (an import source, an export destination).
    ///
    /// # Errors
    /// 400 `invalid` for a malformed URL, a directory, one outside the allowed
    /// prefixes or inside the server's storage.
    pub fn file(&self, url: &str, tenant: &str) -> Result<Location, ApiError> {
        let parsed = parse(url, false).map_err(ApiError::invalid)?;
        let min = if parsed.scheme == "file:///" { 1 } else { 2 };
        if parsed.trailing_slash || parsed.segments.len() < min {
            return Err(ApiError::invalid(format!(
                "`{url}` names a directory; this job needs an object URL"
            )));
        }
        let n = parsed.segments.len();
        let norm = parsed.join(n);
        self.allowed(&norm, tenant, false)?;
        Ok(Location {
            url: norm,
            dir: parsed.join(n - 1),
            name: parsed.segments[n - 1].to_string(),
        })
    }

    /// Checks the URL of a directory (a backup destination, a restore source).
    ///
    /// # Errors
    /// As [`Allowlist::file`].
    pub fn dir(&self, url: &str, tenant: &str) -> Result<Location, ApiError> {
        let parsed = parse(url, false).map_err(ApiError::invalid)?;
        let dir = parsed.join(parsed.segments.len());
        let norm = format!("{dir}/");
        self.allowed(&norm, tenant, true)?;
        Ok(Location {
            url: norm,
            dir,
            name: String::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(prefixes: &[&str], root: &str) -> Allowlist {
        let prefixes: Vec<String> = prefixes.iter().map(|p| p.to_string()).collect();
        Allowlist::new(&prefixes, root)
    }

    #[test]
    fn only_allowed_prefixes_and_never_the_storage() {
        let allow = list(
            &[
                "s3://b/exports/",
                "s3://b/t/{tenant}/",
                "s3://data/",
                "s3://b/../x/",
            ],
            "s3://data/root",
        );
        // `s3://data/` contains the storage and `..` is malformed: both dropped.
        assert_eq!(allow.prefixes, ["s3://b/exports/", "s3://b/t/{tenant}/"]);
        let ok = allow
            .file("s3://b/exports/x.ndjson", "acme")
            .expect("allowed");
        assert_eq!(
            (ok.dir.as_str(), ok.name.as_str()),
            ("s3://b/exports", "x.ndjson")
        );
        assert!(allow.file("s3://b/t/acme/x.ndjson", "acme").is_ok());
        assert!(allow.file("s3://b/t/acme/x.ndjson", "other").is_err());
        for bad in [
            "s3://b/exports/",
            "s3://b/exports",
            "s3://b/exportsx/a",
            "s3://b/exports/../secret",
            "s3://b/exports//a",
            "s3://b/exports/%2e%2e/a",
            "http://b/exports/a",
            "file:///etc/passwd",
            "s3://data/root/default/lib/wal/00000000000000000001.wal",
        ] {
            assert_eq!(
                allow
                    .file(bad, "acme")
                    .map(|_| ())
                    .map_err(|e| e.status.as_u16()),
                Err(400),
                "{bad}"
            );
        }
        assert!(allow.dir("s3://b/exports/backup1", "acme").is_ok());
        assert!(list(&[], "memory://").file("s3://b/x", "t").is_err());
    }

    #[test]
    fn local_paths_inside_the_storage_are_refused_even_through_symlinks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("data");
        let out = dir.path().join("out");
        std::fs::create_dir_all(&root).expect("mkdir");
        std::fs::create_dir_all(&out).expect("mkdir");
        #[cfg(unix)]
        std::os::unix::fs::symlink(&root, out.join("link")).expect("symlink");
        let root_url = format!("file://{}", root.display());
        let allow = list(&[&format!("file://{}/", out.display())], &root_url);
        assert!(
            allow
                .file(&format!("file://{}/x.ndjson", out.display()), "t")
                .is_ok()
        );
        #[cfg(unix)]
        assert!(
            allow
                .file(&format!("file://{}/link/default/x", out.display()), "t")
                .is_err()
        );
        let parent = list(&[&format!("file://{}/", dir.path().display())], &root_url);
        assert!(
            parent.prefixes.is_empty(),
            "a prefix containing the storage is dropped"
        );
    }
}
