//! A real browser for the tests of what people look at: Debian's Chromium (`/usr/bin/chromium`), installed
//! with apt-get on first use, driven headless by Playwright from the tests' Python venv.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::TestkitError;
use crate::python::{python_venv, repo_file, run};

/// Where Debian installs Chromium.
const CHROMIUM: &str = "/usr/bin/chromium";

/// Debian's Chromium, installed on first use (`apt-get install chromium` with a font, as root: the test
/// machines are Debian and reach its package mirror).
pub fn chromium() -> Result<PathBuf, TestkitError> {
    let path = PathBuf::from(CHROMIUM);
    if path.exists() {
        return Ok(path);
    }
    // One installer at a time: tests run in parallel.
    let lock_path = std::env::temp_dir().join("permitflow-chromium-install.lock");
    let lock = std::fs::File::create(&lock_path)?;
    lock.lock()?;
    if !path.exists() {
        let install = |step: &str, args: &[&str]| {
            run(Command::new("apt-get").args(args).env("DEBIAN_FRONTEND", "noninteractive"), step).map_err(|e| {
                TestkitError::Browser { message: format!("{e}\nInstall it by hand: apt-get install chromium") }
            })
        };
        install("apt-get update", &["update", "-q"])?;
        install(
            "apt-get install chromium",
            &["install", "-y", "-q", "--no-install-recommends", "chromium", "fonts-dejavu-core"],
        )?;
    }
    Ok(path)
}

/// Opens the HTML report `page` in headless Chromium at 1280 × 900 px (Playwright, `tests/browser/
/// check_report.py`), saves a full-page screenshot to `screenshot`, and returns the script's JSON: the
/// console messages, page errors and requests it saw, every chart's data, the tables' figures, and the same
/// figures read from `warehouse`'s marts by DuckDB.
pub fn check_report_in_browser(page: &Path, warehouse: &Path, screenshot: &Path) -> Result<String, TestkitError> {
    let chromium = chromium()?;
    let python = python_venv()?.join("bin/python");
    let mut command = Command::new(python);
    command
        .arg(repo_file("tests/browser/check_report.py"))
        .arg(page)
        .arg(warehouse)
        .arg(screenshot)
        .env("PERMITFLOW_CHROMIUM", chromium);
    run(&mut command, "tests/browser/check_report.py")
}
