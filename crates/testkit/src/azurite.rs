//! An Azure Blob Storage emulator for tests: Azurite (pinned in `tests/azure/package.json`, installed once
//! with npm into `~/.cache/permitflow/`) on a free loopback port, with its blobs in a temporary directory,
//! stopped on drop. The warehouse reaches it as `az://CONTAINER/PREFIX` through object_store's emulator
//! settings (`AZURE_STORAGE_USE_EMULATOR`, `AZURITE_BLOB_STORAGE_URL`).

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use crate::python::repo_file;
use crate::{TestkitError, free_ports};

/// Runs a command of the emulator's tools; its output, or an error with it.
fn run(command: &mut Command, step: &str) -> Result<String, TestkitError> {
    crate::python::run(command, step).map_err(|e| match e {
        TestkitError::Python { step, message } => TestkitError::Node { step, message },
        other => other,
    })
}

const PACKAGE: &str = include_str!("../../../tests/azure/package.json");

/// A running Azurite blob service. Dropping it stops the service.
pub struct Azurite {
    child: Child,
    port: u16,
    _blobs: tempfile::TempDir,
}

/// The npm prefix with Azurite and the storage client installed, created on first use.
fn installed() -> Result<PathBuf, TestkitError> {
    crate::install_once(
        "test-azurite",
        PACKAGE,
        |prefix| prefix.join("node_modules/.bin/azurite-blob").exists() && prefix.join("package-lock.json").exists(),
        |prefix| {
            std::fs::create_dir_all(prefix)?;
            std::fs::write(prefix.join("package.json"), PACKAGE)?;
            run(
                Command::new("npm").args(["install", "--no-audit", "--no-fund", "--silent", "--prefix"]).arg(prefix),
                "npm install (tests/azure/package.json)",
            )
            .map(drop)
        },
    )
}

impl Azurite {
    /// Starts the blob service on a free loopback port and waits until it listens.
    pub fn start() -> Result<Azurite, TestkitError> {
        let prefix = installed()?;
        let blobs = tempfile::tempdir()?;
        let [port] = free_ports()?;
        let child = Command::new(prefix.join("node_modules/.bin/azurite-blob"))
            .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string(), "--silent", "--skipApiVersionCheck"])
            .arg("--location")
            .arg(blobs.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| TestkitError::Node { step: "starting azurite-blob".into(), message: e.to_string() })?;
        // Stopped on drop if it does not come up.
        let mut server = Azurite { child, port, _blobs: blobs };
        crate::wait_until_serving(&mut server.child, port, || TcpStream::connect(("127.0.0.1", port)).is_ok())
            .map_err(|message| TestkitError::Node { step: "starting azurite-blob".into(), message })?;
        Ok(server)
    }

    /// The blob service's URL, `http://127.0.0.1:<port>`.
    pub fn blob_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates a container (with the storage client of `tests/azure/create_container.js`).
    pub fn create_container(&self, container: &str) -> Result<(), TestkitError> {
        let prefix = installed()?;
        run(
            Command::new("node")
                .arg(repo_file("tests/azure/create_container.js"))
                .args([self.blob_url().as_str(), container])
                .env("NODE_PATH", prefix.join("node_modules")),
            "creating an Azurite container",
        )
        .map(drop)
    }

    /// The environment a client needs (the variables object_store reads): the emulator and its URL.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![("AZURE_STORAGE_USE_EMULATOR", "true".to_string()), ("AZURITE_BLOB_STORAGE_URL", self.blob_url())]
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
