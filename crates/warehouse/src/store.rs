//! Where the warehouse lives: a local directory or an object store (`s3://`, `gs://`, `az://`, `abfss://`),
//! and the object-store operations every other module of this crate reads and writes it through.
//!
//! Object stores are built by `object_store` from its usual environment variables (`AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`, `GOOGLE_SERVICE_ACCOUNT`,
//! `AZURE_STORAGE_ACCOUNT_NAME`, …), never from the configuration file. The same stores are registered with
//! delta-rs for these schemes, with its default log store: a commit is a `PUT` of the next log entry with
//! `If-None-Match: *` (S3's conditional writes), so concurrent writers need no lock service.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Once};

use bytes::Bytes;
use deltalake::logstore::{
    LogStore, LogStoreFactory, ObjectStoreFactory, ObjectStoreRef, StorageConfig, default_logstore, logstore_factories,
    object_store_factories,
};
use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::local::LocalFileSystem;
use object_store::prefix::PrefixStore;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use url::Url;

use crate::{WarehouseError, delta};

/// URL schemes of the object stores a warehouse can live in.
pub const OBJECT_STORE_SCHEMES: &[&str] = &["s3", "s3a", "gs", "az", "adl", "azure", "abfs", "abfss"];

/// Where a warehouse lives: `[warehouse] path` and every command's `--warehouse`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(try_from = "String", into = "String")]
pub enum Location {
    /// A local directory (created if missing).
    Local(PathBuf),
    /// An object-store URL, e.g. `s3://bucket/prefix`.
    Url(Url),
}

impl Location {
    /// The local directory, for a warehouse on local disk.
    pub fn local_path(&self) -> Option<&Path> {
        match self {
            Location::Local(path) => Some(path),
            Location::Url(_) => None,
        }
    }
}

impl FromStr for Location {
    type Err = WarehouseError;

    /// A URL with a known object-store scheme, a `file://` URL, or else a local path.
    fn from_str(text: &str) -> Result<Location, WarehouseError> {
        let Some((scheme, _)) = text.split_once("://") else { return Ok(Location::Local(PathBuf::from(text))) };
        let bad = |message: String| WarehouseError::Location { location: text.to_string(), message };
        let url = Url::parse(text).map_err(|e| bad(format!("not a valid URL ({e})")))?;
        match scheme {
            "file" => url
                .to_file_path()
                .map(Location::Local)
                .map_err(|()| bad("not a local file URL; write a path such as /data/warehouse".into())),
            s if OBJECT_STORE_SCHEMES.contains(&s) => {
                if url.host_str().is_none_or(str::is_empty) {
                    return Err(bad("names no bucket or container: write e.g. s3://bucket/prefix".into()));
                }
                Ok(Location::Url(url))
            }
            other => Err(bad(format!(
                "unknown scheme {other}://; use a local path or one of {}",
                OBJECT_STORE_SCHEMES.iter().map(|s| format!("{s}://")).collect::<Vec<_>>().join(", ")
            ))),
        }
    }
}

impl TryFrom<String> for Location {
    type Error = WarehouseError;

    fn try_from(text: String) -> Result<Location, WarehouseError> {
        text.parse()
    }
}

impl From<Location> for String {
    fn from(location: Location) -> String {
        location.to_string()
    }
}

impl From<&Location> for Location {
    fn from(location: &Location) -> Location {
        location.clone()
    }
}

impl From<&Path> for Location {
    fn from(path: &Path) -> Location {
        Location::Local(path.to_path_buf())
    }
}

impl From<PathBuf> for Location {
    fn from(path: PathBuf) -> Location {
        Location::Local(path)
    }
}

impl From<&PathBuf> for Location {
    fn from(path: &PathBuf) -> Location {
        Location::Local(path.clone())
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Local(path) => write!(f, "{}", path.display()),
            Location::Url(url) => write!(f, "{url}"),
        }
    }
}

/// The warehouse's objects, addressed by paths relative to its root.
#[derive(Debug, Clone)]
pub(crate) struct Store {
    location: Location,
    /// The root as a URL, ending in `/`.
    url: Url,
    /// The store rooted at the warehouse.
    objects: Arc<dyn ObjectStore>,
    /// The store of the whole bucket (for DataFusion, which addresses objects by full URL).
    bucket: Arc<dyn ObjectStore>,
}

impl Store {
    /// Opens the warehouse's store (creating a local directory).
    pub(crate) fn open(location: &Location) -> Result<Store, WarehouseError> {
        register_object_stores();
        match location {
            Location::Local(path) => {
                std::fs::create_dir_all(path).map_err(|e| WarehouseError::io(path, e))?;
                let absolute = std::fs::canonicalize(path).map_err(|e| WarehouseError::io(path, e))?;
                let url = Url::from_directory_path(&absolute).map_err(|()| WarehouseError::Location {
                    location: path.display().to_string(),
                    message: "not an absolute directory path".into(),
                })?;
                let local = LocalFileSystem::new_with_prefix(&absolute)
                    .map_err(|e| WarehouseError::store(location, "", e))?
                    .with_automatic_cleanup(true);
                let bucket: Arc<dyn ObjectStore> = Arc::new(LocalFileSystem::new());
                Ok(Store { location: location.clone(), url, objects: Arc::new(local), bucket })
            }
            Location::Url(url) => {
                let mut url = url.clone();
                if !url.path().ends_with('/') {
                    url.set_path(&format!("{}/", url.path()));
                }
                let bucket = cloud_store(&url).map_err(|e| WarehouseError::store(location, "", e))?;
                let prefix = object_store::path::Path::from_url_path(url.path())
                    .map_err(|e| WarehouseError::store(location, "", e.into()))?;
                let objects: Arc<dyn ObjectStore> = Arc::new(PrefixStore::new(bucket.clone(), prefix));
                // Reachable, with the bucket and the credentials: said once here, with what to check, rather
                // than by the first Delta log read.
                delta::block_on(objects.list_with_delimiter(None))
                    .map_err(|e| WarehouseError::store(location, "/", e))?;
                Ok(Store { location: location.clone(), url, objects, bucket })
            }
        }
    }

    pub(crate) fn location(&self) -> &Location {
        &self.location
    }

    /// The URL of a directory of the warehouse (`relative` without slashes at its ends), ending in `/`;
    /// on local disk the directory is created.
    pub(crate) fn directory_url(&self, relative: &str) -> Result<Url, WarehouseError> {
        if let Location::Local(root) = &self.location {
            let dir = root.join(relative);
            std::fs::create_dir_all(&dir).map_err(|e| WarehouseError::io(&dir, e))?;
        }
        self.url.join(&format!("{relative}/")).map_err(|e| WarehouseError::Location {
            location: format!("{}{relative}", self.url),
            message: e.to_string(),
        })
    }

    /// The URL of the bucket (scheme and host), where DataFusion finds [`Store::bucket`].
    pub(crate) fn bucket_url(&self) -> Url {
        let mut url = self.url.clone();
        url.set_path("/");
        url
    }

    pub(crate) fn bucket(&self) -> Arc<dyn ObjectStore> {
        self.bucket.clone()
    }

    /// Writes an object whole (one `PUT`: readers see the old object or the new one, never part of it).
    pub(crate) fn put(&self, relative: &str, bytes: Bytes) -> Result<(), WarehouseError> {
        let path = object_store::path::Path::from(relative);
        delta::block_on(self.objects.put(&path, PutPayload::from_bytes(bytes)))
            .map(|_| ())
            .map_err(|e| WarehouseError::store(&self.location, relative, e))
    }

    /// Writes an object only if there is none (`If-None-Match: *`); false when there is one.
    pub(crate) fn put_new(&self, relative: &str, bytes: Bytes) -> Result<bool, WarehouseError> {
        let path = object_store::path::Path::from(relative);
        let options = PutOptions { mode: PutMode::Create, ..Default::default() };
        match delta::block_on(self.objects.put_opts(&path, PutPayload::from_bytes(bytes), options)) {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(WarehouseError::store(&self.location, relative, e)),
        }
    }

    /// Reads an object whole; `None` when there is none.
    pub(crate) fn get(&self, relative: &str) -> Result<Option<Bytes>, WarehouseError> {
        let path = object_store::path::Path::from(relative);
        match delta::block_on(async { self.objects.get(&path).await?.bytes().await }) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(WarehouseError::store(&self.location, relative, e)),
        }
    }

    /// Reads an object whole with its version (its `ETag`); `None` when there is none.
    pub(crate) fn get_versioned(&self, relative: &str) -> Result<Option<(Bytes, UpdateVersion)>, WarehouseError> {
        let path = object_store::path::Path::from(relative);
        let read = async {
            let result = self.objects.get(&path).await?;
            let version = UpdateVersion { e_tag: result.meta.e_tag.clone(), version: result.meta.version.clone() };
            Ok((result.bytes().await?, version))
        };
        match delta::block_on(read) {
            Ok(read) => Ok(Some(read)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(WarehouseError::store(&self.location, relative, e)),
        }
    }

    /// Replaces an object only if it is still at `version` (`If-Match`); false when another write came first.
    pub(crate) fn replace_if_unchanged(
        &self,
        relative: &str,
        bytes: Bytes,
        version: UpdateVersion,
    ) -> Result<bool, WarehouseError> {
        let path = object_store::path::Path::from(relative);
        let options = PutOptions { mode: PutMode::Update(version), ..Default::default() };
        match delta::block_on(self.objects.put_opts(&path, PutPayload::from_bytes(bytes), options)) {
            Ok(_) => Ok(true),
            Err(object_store::Error::Precondition { .. } | object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(WarehouseError::store(&self.location, relative, e)),
        }
    }

    /// True when the object exists (one `HEAD`).
    pub(crate) fn exists(&self, relative: &str) -> Result<bool, WarehouseError> {
        let path = object_store::path::Path::from(relative);
        match delta::block_on(self.objects.head(&path)) {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(WarehouseError::store(&self.location, relative, e)),
        }
    }

    /// Deletes an object (none: nothing to do).
    pub(crate) fn delete(&self, relative: &str) -> Result<(), WarehouseError> {
        let path = object_store::path::Path::from(relative);
        match delta::block_on(self.objects.delete(&path)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(WarehouseError::store(&self.location, relative, e)),
        }
    }

    /// Every object under the directory `relative`, at any depth.
    pub(crate) fn list(&self, relative: &str) -> Result<Vec<ObjectMeta>, WarehouseError> {
        let prefix = object_store::path::Path::from(relative);
        match delta::block_on(self.objects.list(Some(&prefix)).try_collect::<Vec<_>>()) {
            Ok(objects) => Ok(objects),
            Err(object_store::Error::NotFound { .. }) => Ok(Vec::new()),
            Err(e) => Err(WarehouseError::store(&self.location, relative, e)),
        }
    }

    /// Makes the objects written so far durable before a commit names them. Object stores acknowledge a
    /// `PUT` once it is durable; on a local Linux disk one `syncfs(2)` covers the whole file system (a
    /// commit writes many small files, and an `fsync` for each took longer than writing them).
    pub(crate) fn sync(&self) -> Result<(), WarehouseError> {
        match &self.location {
            Location::Local(root) => sync_local(root),
            Location::Url(_) => Ok(()),
        }
    }
}

#[cfg(target_os = "linux")]
fn sync_local(root: &Path) -> Result<(), WarehouseError> {
    let dir = std::fs::File::open(root).map_err(|e| WarehouseError::io(root, e))?;
    rustix::fs::syncfs(&dir).map_err(|e| WarehouseError::io(root, e.into()))
}

#[cfg(not(target_os = "linux"))]
fn sync_local(_root: &Path) -> Result<(), WarehouseError> {
    Ok(())
}

/// The store of the bucket or container `url` names, configured from the environment.
fn cloud_store(url: &Url) -> object_store::Result<Arc<dyn ObjectStore>> {
    Ok(match url.scheme() {
        "s3" | "s3a" => Arc::new(AmazonS3Builder::from_env().with_url(url.as_str()).build()?),
        "gs" => Arc::new(GoogleCloudStorageBuilder::from_env().with_url(url.as_str()).build()?),
        _ => Arc::new(MicrosoftAzureBuilder::from_env().with_url(url.as_str()).build()?),
    })
}

/// delta-rs' object stores for the schemes of [`OBJECT_STORE_SCHEMES`]: [`cloud_store`].
struct CloudStores;

impl ObjectStoreFactory for CloudStores {
    fn parse_url_opts(
        &self,
        url: &Url,
        _config: &StorageConfig,
    ) -> deltalake::DeltaResult<(ObjectStoreRef, object_store::path::Path)> {
        let store = cloud_store(url)?;
        Ok((store, object_store::path::Path::from_url_path(url.path())?))
    }
}

/// delta-rs' default log store (commits by conditional `PUT`) for the schemes of [`OBJECT_STORE_SCHEMES`].
struct ConditionalPutLogs;

impl LogStoreFactory for ConditionalPutLogs {
    fn with_options(
        &self,
        prefixed_store: ObjectStoreRef,
        root_store: ObjectStoreRef,
        location: &Url,
        options: &StorageConfig,
    ) -> deltalake::DeltaResult<Arc<dyn LogStore>> {
        Ok(default_logstore(prefixed_store, root_store, location, options))
    }
}

/// Registers [`CloudStores`] and [`ConditionalPutLogs`] with delta-rs, once per process.
fn register_object_stores() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for scheme in OBJECT_STORE_SCHEMES {
            let url = Url::parse(&format!("{scheme}://")).expect("a scheme makes a URL");
            object_store_factories().insert(url.clone(), Arc::new(CloudStores));
            logstore_factories().insert(url, Arc::new(ConditionalPutLogs));
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_are_local_paths_or_object_store_urls() {
        assert_eq!("wh".parse::<Location>().expect("path"), Location::Local("wh".into()));
        assert_eq!("file:///data/wh".parse::<Location>().expect("file URL"), Location::Local("/data/wh".into()));
        let s3: Location = "s3://bucket/prefix".parse().expect("s3");
        assert!(matches!(&s3, Location::Url(url) if url.host_str() == Some("bucket")), "{s3:?}");
        let error = "ftp://host/x".parse::<Location>().expect_err("unknown scheme").to_string();
        assert!(error.contains("ftp://host/x") && error.contains("s3://"), "{error}");
        let error = "s3:///prefix".parse::<Location>().expect_err("no bucket").to_string();
        assert!(error.contains("no bucket"), "{error}");
    }
}
