//! The Python tools of the tests and benchmarks, pinned in `tests/python/requirements.txt` and installed once
//! into a virtual environment under `~/.cache/permitflow/` (PyPI is needed the first time): DuckDB, the second
//! engine that reads the warehouse (with `deltalake` and PyArrow), moto's S3-compatible server, and
//! Playwright, which drives Debian's Chromium (see the `browser` module).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::TestkitError;

const REQUIREMENTS: &str = include_str!("../../../tests/python/requirements.txt");

pub(crate) fn repo_file(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(relative)
}

pub(crate) fn run(command: &mut Command, what: &str) -> Result<String, TestkitError> {
    let output = command
        .output()
        .map_err(|e| TestkitError::Python { step: what.to_string(), message: format!("cannot start: {e}") })?;
    if !output.status.success() {
        return Err(TestkitError::Python {
            step: what.to_string(),
            message: format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr)),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// The virtual environment with the pinned tools, created on first use; its `bin/` holds `python` and
/// `moto_server`.
pub fn python_venv() -> Result<PathBuf, TestkitError> {
    let check = |venv: &Path| {
        run(
            Command::new(venv.join("bin/python"))
                .args(["-c", "import duckdb, duckdb_ext, deltalake, pyarrow, moto, playwright"]),
            "checking the venv",
        )
        .is_ok()
    };
    crate::install_once("test-tools-venv", REQUIREMENTS, check, |venv| {
        run(Command::new("python3").args(["-m", "venv", "--clear"]).arg(venv), "python3 -m venv")?;
        run(
            Command::new(venv.join("bin/python"))
                .args(["-m", "pip", "install", "--quiet", "-r"])
                .arg(repo_file("tests/python/requirements.txt")),
            "pip install -r tests/python/requirements.txt",
        )
        .map(drop)
    })
}

/// The Python interpreter of [`python_venv`].
pub fn duckdb_python() -> Result<PathBuf, TestkitError> {
    Ok(python_venv()?.join("bin/python"))
}

/// Runs `tests/duckdb/indicators.py` over `warehouse` (a directory, or an `s3://` URL read with the `AWS_*`
/// variables of `env`) and returns its JSON output.
pub fn duckdb_indicators(warehouse: &str, env: &[(&str, String)]) -> Result<String, TestkitError> {
    let mut command = Command::new(duckdb_python()?);
    command.arg(repo_file("tests/duckdb/indicators.py")).arg(warehouse);
    command.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    run(&mut command, "tests/duckdb/indicators.py")
}
