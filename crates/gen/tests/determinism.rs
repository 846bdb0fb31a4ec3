//! The output is a function of the configuration only.

use permitflow_gen::{GenConfig, generate, generate_year};

fn config(seed: u64) -> GenConfig {
    GenConfig {
        seed,
        start_year: 2020,
        years: 1,
        scale: 0.02,
        duplicate_share: 0.01,
        late_share: 0.02,
        malformed_share: 0.005,
    }
}

fn year(config: &GenConfig) -> Vec<u8> {
    let mut out = Vec::new();
    generate_year(config, config.start_year, &mut out).expect("generate");
    out
}

#[test]
fn same_config_writes_the_same_bytes() {
    assert_eq!(year(&config(3)), year(&config(3)));
}

#[test]
fn another_seed_writes_other_events() {
    assert_ne!(year(&config(3)), year(&config(4)));
}

#[test]
fn year_files_hold_what_generate_year_writes() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let config = config(5);
    let summary = generate(&config, &dir.path().join("out"), &mut |_, _| {})?;
    assert_eq!(summary.files.len(), 1);
    assert_eq!(std::fs::read(&summary.files[0])?, year(&config));
    Ok(())
}
