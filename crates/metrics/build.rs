//! Generates one golden test per model: every `pipelines/models/<name>.sql` except `_views.sql` becomes a
//! test `golden_<name>` in `tests/models.rs` (see there).

use std::fmt::Write;
use std::path::Path;

fn main() {
    // Read at run time: a build script binary reused from a cache may have been compiled in another checkout.
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let models = Path::new(&manifest_dir).join("../../pipelines/models");
    println!("cargo::rerun-if-changed={}", models.display());
    let mut names: Vec<String> = std::fs::read_dir(&models)
        .expect("pipelines/models is readable")
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.strip_suffix(".sql").map(str::to_string))
        .filter(|name| !name.starts_with('_'))
        .collect();
    names.sort();
    let mut tests = String::new();
    for name in names {
        writeln!(tests, "#[tokio::test]\nasync fn golden_{name}() {{\n    check_golden(\"{name}\").await;\n}}\n")
            .expect("write to string");
    }
    let out = Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("golden_tests.rs");
    std::fs::write(out, tests).expect("OUT_DIR is writable");
}
