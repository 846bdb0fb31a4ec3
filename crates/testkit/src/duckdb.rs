//! DuckDB, the second engine that reads the warehouse in tests and benchmarks: the Python packages pinned
//! in `tests/duckdb/requirements.txt` (DuckDB, and `deltalake` for the Delta tables' file lists), installed once into a virtual environment under
//! `~/.cache/permitflow/` (PyPI is needed the first time), and `tests/duckdb/indicators.py` run with it.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::TestkitError;

const REQUIREMENTS: &str = include_str!("../../../tests/duckdb/requirements.txt");

fn repo_file(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(relative)
}

fn run(command: &mut Command, what: &str) -> Result<String, TestkitError> {
    let output = command
        .output()
        .map_err(|e| TestkitError::DuckDb { step: what.to_string(), message: format!("cannot start: {e}") })?;
    if !output.status.success() {
        return Err(TestkitError::DuckDb {
            step: what.to_string(),
            message: format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr)),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// The Python interpreter of a virtual environment with DuckDB, creating it on first use.
pub fn duckdb_python() -> Result<PathBuf, TestkitError> {
    let pinned = |package: &str| {
        REQUIREMENTS.lines().find_map(|l| l.trim().strip_prefix(package)?.strip_prefix("==")).unwrap_or("unpinned")
    };
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
    let venv = home.join(".cache/permitflow").join(format!(
        "duckdb-venv-{}-deltalake-{}",
        pinned("duckdb"),
        pinned("deltalake")
    ));
    let python = venv.join("bin/python");
    let check = || run(Command::new(&python).args(["-c", "import duckdb, deltalake"]), "checking the DuckDB venv");
    if check().is_ok() {
        return Ok(python);
    }
    std::fs::create_dir_all(venv.parent().unwrap_or(&venv))?;
    // One installer at a time: tests run in parallel.
    let lock = std::fs::File::create(venv.with_extension("lock"))?;
    lock.lock()?;
    if check().is_err() {
        run(Command::new("python3").args(["-m", "venv", "--clear"]).arg(&venv), "python3 -m venv")?;
        run(
            Command::new(&python)
                .args(["-m", "pip", "install", "--quiet", "-r"])
                .arg(repo_file("tests/duckdb/requirements.txt")),
            "pip install -r tests/duckdb/requirements.txt",
        )?;
    }
    Ok(python)
}

/// Runs `tests/duckdb/indicators.py` over `warehouse` and returns its JSON output.
pub fn duckdb_indicators(warehouse: &Path) -> Result<String, TestkitError> {
    let python = duckdb_python()?;
    run(Command::new(python).arg(repo_file("tests/duckdb/indicators.py")).arg(warehouse), "tests/duckdb/indicators.py")
}
