//! `permitflow`: the command line of the pipeline.
//!
//! This binary owns argument parsing, logging set-up, progress display and the
//! text users read; the work itself is done by the stage crates. It is the
//! only place where `anyhow` and `println!` are used.

mod progress;
mod summary;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use datafusion_cli::command::Command as ShellCommand;
use datafusion_cli::exec;
use datafusion_cli::object_storage::instrumented::InstrumentedObjectStoreRegistry;
use datafusion_cli::print_format::PrintFormat;
use datafusion_cli::print_options::{MaxRows, PrintOptions};
use permitflow_gen::{GenConfig, GenSummary, generate};
use permitflow_metrics::{Rebuild, Scope, materialize, session};
use permitflow_pipeline::{Config, FileReport, LogFormat, RunOptions, RunReport, compact, ingest_files, serve};
use permitflow_schema::Pseudonymiser;
use permitflow_source::expand_inputs;
use permitflow_warehouse::{Counts, Location, Warehouse};
use tracing_subscriber::EnvFilter;

use crate::progress::{GenerateProgress, IngestProgress};

/// permitflow: immigration-authority events → Parquet warehouse → performance indicators.
#[derive(Debug, Parser)]
#[command(version, about, propagate_version = true)]
struct Cli {
    /// Configuration file (TOML); `PERMITFLOW__SECTION__KEY` environment variables override it.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write a deterministic synthetic workload as NDJSON files, one per year.
    Generate(GenerateArgs),
    /// Ingest NDJSON files (or directories of *.ndjson / *.jsonl) into the warehouse.
    Ingest {
        #[command(flatten)]
        warehouse: WarehouseArg,
        /// Files or directories to ingest, in order.
        #[arg(required = true, value_name = "FILE_OR_DIR")]
        inputs: Vec<PathBuf>,
    },
    /// Bring the marts up to date: recompute the years that new commits touched (all of them the first time).
    Materialize {
        #[command(flatten)]
        warehouse: WarehouseArg,
        /// Rebuild every mart from scratch.
        #[arg(long)]
        full: bool,
    },
    /// Rewrite each partition of many small files as one file (atomically for readers).
    Compact {
        #[command(flatten)]
        warehouse: WarehouseArg,
        /// Rewrite a partition once it has this many files (default: `compaction.min_files` of the config).
        #[arg(long, value_name = "N")]
        min_files: Option<usize>,
        /// Also rewrite files the marts have not been materialised over yet (the next `materialize` is then
        /// a full one).
        #[arg(long)]
        all: bool,
    },
    /// Run SQL over the event tables, `_rejections` and the marts; prints a table.
    Query {
        #[command(flatten)]
        warehouse: WarehouseArg,
        /// The SQL statement.
        sql: String,
    },
    /// datafusion-cli's SQL shell over the warehouse: the event tables (read through Delta), `_rejections`
    /// and the marts registered; its commands (`\d`, `\?`, `\pset`, …) work. Interactive without -c/-f.
    Sql {
        #[command(flatten)]
        warehouse: WarehouseArg,
        /// Execute this statement (or shell command) and exit; repeatable.
        #[arg(short = 'c', long = "command", value_name = "SQL")]
        commands: Vec<String>,
        /// Execute the statements of this file and exit; repeatable.
        #[arg(short = 'f', long = "file", value_name = "FILE")]
        files: Vec<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = PrintFormat::Automatic)]
        format: PrintFormat,
        /// No banner and no timing line after each result.
        #[arg(short, long)]
        quiet: bool,
    },
    /// The indicators of a period against the agreement's targets (missed targets marked).
    Report {
        #[command(flatten)]
        warehouse: WarehouseArg,
        /// A year (`2024`) or a month (`2024-03`); default: the last year in the marts.
        #[arg(long)]
        period: Option<String>,
        /// Output format: `html` is the situation picture, one self-contained page with charts and the
        /// forecast.
        #[arg(long, value_enum, default_value_t = ReportFormat::Table)]
        format: ReportFormat,
        /// Write the report to this file instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Consume the Kafka topics into the warehouse, exactly once, until SIGTERM/SIGINT.
    Run {
        #[command(flatten)]
        warehouse: WarehouseArg,
        /// Consume up to the high watermarks seen at start, commit, and exit 0 (backfills and tests).
        #[arg(long)]
        stop_at_end: bool,
    },
    /// Generate years of events, ingest them, materialise the marts (with the forecasts), print the last
    /// year's indicators and write the situation picture.
    Demo {
        #[command(flatten)]
        warehouse: WarehouseArg,
        /// Where the generated input files are written.
        #[arg(long, value_name = "DIR", default_value = "demo-input")]
        input: PathBuf,
        /// Where the situation picture (HTML) is written.
        #[arg(long, value_name = "FILE", default_value = "demo-report.html")]
        report: PathBuf,
        #[command(flatten)]
        generate: DemoGenerateArgs,
    },
}

#[derive(Debug, Args)]
struct WarehouseArg {
    /// Warehouse: a directory or an object-store URL such as `s3://bucket/prefix` (default: `warehouse.path`
    /// of the config, `./warehouse`).
    #[arg(long, value_name = "DIR|URL")]
    warehouse: Option<Location>,
}

#[derive(Debug, Args)]
struct GenerateArgs {
    /// Output directory; files are named `events-YYYY.ndjson`.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Random seed: the same arguments give byte-identical files.
    #[arg(long, default_value_t = GenConfig::default().seed)]
    seed: u64,
    /// First year generated.
    #[arg(long, default_value_t = GenConfig::default().start_year)]
    start_year: i32,
    /// Number of years.
    #[arg(long, default_value_t = GenConfig::default().years)]
    years: u32,
    /// Volume relative to the Finnish Immigration Service in 2017 (1.0 ≈ 123,000 applications a year).
    #[arg(long, default_value_t = GenConfig::default().scale)]
    scale: f64,
    /// Share of events resent later with the same `event_id`.
    #[arg(long, default_value_t = 0.0)]
    duplicates: f64,
    /// Share of events written out of time order.
    #[arg(long, default_value_t = 0.0)]
    late: f64,
    /// Share of extra malformed lines (one of every rejection rule in turn).
    #[arg(long, default_value_t = 0.0)]
    malformed: f64,
}

/// Output format of `permitflow report`.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum ReportFormat {
    /// A table for people.
    Table,
    /// CSV with a header line.
    Csv,
    /// One JSON object per line.
    Json,
    /// The situation picture: one self-contained HTML page (no network access) with charts and forecasts.
    Html,
}

/// Years `permitflow demo` generates: 2017 to 2024, with the temporary-protection surge of 2022, enough
/// history for the forecasts and their two-year backtest.
const DEMO_YEARS: u32 = 8;

#[derive(Debug, Args)]
struct DemoGenerateArgs {
    /// Random seed of the generated years.
    #[arg(long, default_value_t = GenConfig::default().seed)]
    seed: u64,
    /// The first year generated.
    #[arg(long, default_value_t = GenConfig::default().start_year)]
    start_year: i32,
    /// Number of years generated.
    #[arg(long, default_value_t = DEMO_YEARS)]
    years: u32,
    /// Volume relative to the agency in 2017.
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match Config::load(cli.config.as_deref()).map_err(anyhow::Error::from).and_then(|config| {
        init_logging(config.log.format);
        run(cli, config)
    }) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Log lines go to stderr, as text or JSON (`[log] format`); `RUST_LOG` overrides the level. On a terminal
/// only warnings are logged (progress bars show activity); otherwise progress is logged as info lines,
/// without delta-rs's and its kernel's (a line per snapshot read and commit).
fn init_logging(format: LogFormat) {
    let default = match progress::interactive() {
        true => "warn",
        false => "info,deltalake_core=warn,buoyant_kernel=warn,buoyant_kernel_engine=warn",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logs.with_target(false).init(),
        LogFormat::Json => logs.json().with_current_span(true).with_span_list(true).init(),
    }
}

fn run(cli: Cli, config: Config) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")?;
    match cli.command {
        Command::Generate(args) => {
            let gen_config = GenConfig {
                seed: args.seed,
                start_year: args.start_year,
                years: args.years,
                scale: args.scale,
                duplicate_share: args.duplicates,
                late_share: args.late,
                malformed_share: args.malformed,
            };
            let summary = run_generate(&gen_config, &args.out)?;
            print_generated(&summary);
        }
        Command::Ingest { warehouse, inputs } => {
            let mut warehouse = open_warehouse(warehouse.warehouse.as_ref(), &config)?;
            let pseudonymiser = config.privacy.pseudonymiser()?;
            run_ingest(&mut warehouse, &inputs, &pseudonymiser, &config)?;
        }
        Command::Run { warehouse, stop_at_end } => {
            let location = warehouse.warehouse.as_ref().unwrap_or(&config.warehouse.path);
            let report = serve(&config, location, RunOptions { stop_at_end }, runtime.handle())
                .with_context(|| format!("permitflow run (warehouse {location})"))?;
            print_run_report(&report);
        }
        Command::Compact { warehouse, min_files, all } => {
            let mut warehouse = open_warehouse(warehouse.warehouse.as_ref(), &config)?;
            let min_files = min_files.unwrap_or(config.compaction.min_files);
            run_compact(&mut warehouse, min_files, all)?;
        }
        Command::Materialize { warehouse, full } => {
            let warehouse = open_warehouse(warehouse.warehouse.as_ref(), &config)?;
            let rebuild = if full { Rebuild::Full } else { Rebuild::Incremental };
            runtime.block_on(run_materialize(&warehouse, &config, rebuild))?;
        }
        Command::Report { warehouse, period, format, out } => {
            let warehouse = open_warehouse(warehouse.warehouse.as_ref(), &config)?;
            let text = runtime.block_on(report_text(&warehouse, &config, period.as_deref(), format))?;
            match out {
                Some(path) => {
                    std::fs::write(&path, text).with_context(|| format!("writing the report to {}", path.display()))?;
                    println!("report written to {}", path.display());
                }
                None => print!("{text}"),
            }
        }
        Command::Query { warehouse, sql } => {
            let warehouse = open_warehouse(warehouse.warehouse.as_ref(), &config)?;
            runtime.block_on(async {
                let ctx = session(&warehouse, &config.metrics).await?;
                let batches = ctx.sql(&sql).await?.collect().await?;
                println!("{}", arrow::util::pretty::pretty_format_batches(&batches)?);
                anyhow::Ok(())
            })?;
        }
        Command::Sql { warehouse, commands, files, format, quiet } => {
            let warehouse = open_warehouse(warehouse.warehouse.as_ref(), &config)?;
            runtime.block_on(run_sql(&warehouse, &config, commands, files, format, quiet))?;
        }
        Command::Demo { warehouse, input, report, generate } => {
            let pseudonymiser = match &config.privacy.key {
                Some(_) => config.privacy.pseudonymiser()?,
                None => {
                    println!(
                        "note: pseudonymising with the public development key; set PERMITFLOW__PRIVACY__KEY \
                         for real data"
                    );
                    Pseudonymiser::development()
                }
            };
            let gen_config = GenConfig {
                seed: generate.seed,
                start_year: generate.start_year,
                years: generate.years,
                scale: generate.scale,
                duplicate_share: 0.005,
                late_share: 0.01,
                malformed_share: 0.001,
            };
            let generated = run_generate(&gen_config, &input)?;
            print_generated(&generated);
            let mut warehouse = open_warehouse(warehouse.warehouse.as_ref(), &config)?;
            let counts = run_ingest(&mut warehouse, &generated.files, &pseudonymiser, &config)?;
            if counts.read == 0 && warehouse.counts()?.read > 0 {
                println!("(already ingested earlier; the warehouse is unchanged)");
            }
            let last_year = generate.start_year + generate.years.saturating_sub(1) as i32;
            let page = runtime.block_on(async {
                run_materialize(&warehouse, &config, Rebuild::Incremental).await?;
                summary::print(&warehouse, &config.metrics, last_year).await?;
                report_text(&warehouse, &config, Some(&last_year.to_string()), ReportFormat::Html).await
            })?;
            std::fs::write(&report, page).with_context(|| format!("writing the report to {}", report.display()))?;
            let shown = std::path::absolute(&report).unwrap_or(report);
            println!("\nsituation picture (open in a browser): {}", shown.display());
        }
    }
    Ok(())
}

/// `permitflow report` in `format`, for `period` (default: the last year in the marts).
async fn report_text(
    warehouse: &Warehouse,
    config: &Config,
    period: Option<&str>,
    format: ReportFormat,
) -> Result<String> {
    let ctx = session(warehouse, &config.metrics).await?;
    let text_format = match format {
        ReportFormat::Table => permitflow_report::Format::Table,
        ReportFormat::Csv => permitflow_report::Format::Csv,
        ReportFormat::Json => permitflow_report::Format::Json,
        ReportFormat::Html => {
            return Ok(permitflow_report::html(&ctx, period, &warehouse.location().to_string()).await?);
        }
    };
    Ok(permitflow_report::render(&permitflow_report::indicators(&ctx, period).await?, text_format))
}

fn print_run_report(report: &RunReport) {
    let mut total = Counts::default();
    for ((topic, partition), counts) in &report.partitions {
        println!(
            "{topic}/{partition}: consumed {} = stored {} + rejected {}",
            counts.read, counts.accepted, counts.rejected
        );
        total += *counts;
    }
    println!(
        "committed {} time(s): consumed {} = stored {} + rejected {}{}",
        report.commits,
        total.read,
        total.accepted,
        total.rejected,
        if report.conflicts > 0 {
            format!(" ({} batch(es) re-read after another instance committed them first)", report.conflicts)
        } else {
            String::new()
        }
    );
}

fn open_warehouse(flag: Option<&Location>, config: &Config) -> Result<Warehouse> {
    let location = flag.unwrap_or(&config.warehouse.path);
    let warehouse = Warehouse::open(location.clone()).with_context(|| format!("opening the warehouse {location}"))?;
    Ok(warehouse)
}

fn run_generate(config: &GenConfig, out: &Path) -> Result<GenSummary> {
    let started = Instant::now();
    let mut progress = GenerateProgress::new(config.years);
    let summary = generate(config, out, &mut |year, so_far| progress.year_done(year, so_far))
        .with_context(|| format!("generating into {}", out.display()))?;
    progress.finish();
    tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, lines = summary.lines, "generated");
    Ok(summary)
}

fn print_generated(summary: &GenSummary) {
    println!(
        "generated {} lines ({} events, {} resent duplicates, {} late, {} malformed; {:.1} MB) in {} file(s):",
        summary.lines,
        summary.valid_events,
        summary.duplicates,
        summary.late,
        summary.malformed,
        summary.bytes as f64 / 1e6,
        summary.files.len()
    );
    for file in &summary.files {
        println!("  {}", file.display());
    }
}

fn run_ingest(
    warehouse: &mut Warehouse,
    inputs: &[PathBuf],
    pseudonymiser: &Pseudonymiser,
    config: &Config,
) -> Result<Counts> {
    let files = expand_inputs(inputs)?;
    if files.is_empty() {
        bail!("no input files: the directories given contain no *.ndjson or *.jsonl files");
    }
    let started = Instant::now();
    let mut progress = IngestProgress::default();
    let reports = ingest_files(warehouse, &files, pseudonymiser, &config.ingest, &mut |p| progress.update(p))?;
    let mut total = Counts::default();
    for report in &reports {
        print_file_report(report);
        total += report.counts;
    }
    println!(
        "ingested in {:.1} s: read {} = accepted {} + rejected {}",
        started.elapsed().as_secs_f64(),
        total.read,
        total.accepted,
        total.rejected
    );
    if total.rejected > 0 {
        println!(
            "rejected lines, with file, line, rule and field: permitflow query --warehouse {} \
             \"SELECT * FROM _rejections\"",
            warehouse.location()
        );
    }
    Ok(total)
}

fn print_file_report(report: &FileReport) {
    let path = report.path.display();
    if let Some(commit) = report.already_committed {
        println!("{path}: already ingested (_rejections version {commit}); nothing stored again");
        return;
    }
    let resumed = report.resumed_at_line.map(|line| format!(" (resumed at line {line})")).unwrap_or_default();
    println!(
        "{path}{resumed}: read {} = accepted {} + rejected {}",
        report.counts.read, report.counts.accepted, report.counts.rejected
    );
    for (rule, count) in &report.rejected_by_rule {
        println!("  rejected {count:>7} × {rule}");
    }
}

fn run_compact(warehouse: &mut Warehouse, min_files: usize, all: bool) -> Result<()> {
    let started = Instant::now();
    let report = compact(warehouse, min_files, all)
        .with_context(|| format!("compacting the warehouse {}", warehouse.location()))?;
    match report.commits {
        0 => println!("no partition has {min_files} or more files; nothing to compact"),
        commits => println!(
            "compacted {} partitions in {commits} commits in {:.1} s: {} files ({:.1} MB) → {} files ({:.1} MB), {} rows",
            report.partitions,
            started.elapsed().as_secs_f64(),
            report.files_before,
            report.bytes_before as f64 / 1e6,
            report.files_after,
            report.bytes_after as f64 / 1e6,
            report.rows
        ),
    }
    if report.vacuumed > 0 {
        println!(
            "vacuum removed {} files no snapshot of the last {} hours names",
            report.vacuumed,
            permitflow_warehouse::VACUUM_RETENTION_HOURS
        );
    }
    Ok(())
}

/// `permitflow sql`: datafusion-cli's executor on the warehouse's session (with datafusion-cli's
/// `parquet_metadata` table function); results are unlimited with -c/-f, 40 rows a page interactively.
async fn run_sql(
    warehouse: &Warehouse,
    config: &Config,
    commands: Vec<String>,
    files: Vec<PathBuf>,
    format: PrintFormat,
    quiet: bool,
) -> Result<()> {
    if let Some(missing) = files.iter().find(|f| !f.is_file()) {
        bail!("{}: no such SQL file (give -f a file of statements ending in `;`)", missing.display());
    }
    let ctx = session(warehouse, &config.metrics).await?;
    ctx.register_udtf("parquet_metadata", Arc::new(datafusion_cli::functions::ParquetMetadataFunc {}));
    let interactive = commands.is_empty() && files.is_empty();
    let mut print = PrintOptions {
        format,
        quiet,
        maxrows: if interactive { MaxRows::Limited(40) } else { MaxRows::Unlimited },
        color: false,
        instrumented_registry: Arc::new(InstrumentedObjectStoreRegistry::new()),
    };
    if interactive {
        if !quiet {
            println!(
                "permitflow sql on {} (DataFusion CLI v{}): \\d lists the tables, \\? the commands, \\q quits",
                warehouse.location(),
                datafusion_cli::DATAFUSION_CLI_VERSION
            );
        }
        exec::exec_from_repl(&ctx, &mut print).await.context("the SQL shell")?;
        return Ok(());
    }
    let files: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    exec::exec_from_files(&ctx, files, &print).await?;
    for command in commands {
        // A shell command (`\d`, `\d decisions`, …) as in the interactive shell; anything else is SQL.
        match command.trim().strip_prefix('\\') {
            Some(shell) => {
                let Ok(shell) = shell.split_whitespace().collect::<Vec<_>>().join(" ").parse::<ShellCommand>() else {
                    bail!("`{command}` is not a datafusion-cli command; `permitflow sql -c '\\?'` lists them");
                };
                shell.execute(&ctx, &mut print).await?;
            }
            None => exec::exec_from_commands(&ctx, vec![command], &print).await?,
        }
    }
    Ok(())
}

async fn run_materialize(warehouse: &Warehouse, config: &Config, rebuild: Rebuild) -> Result<()> {
    let started = Instant::now();
    let report = materialize(warehouse, &config.metrics, rebuild).await?;
    let seconds = started.elapsed().as_secs_f64();
    let scope = match report.scope {
        Scope::UpToDate => {
            println!("marts already cover the table versions {}; nothing to do", report.through);
            return Ok(());
        }
        Scope::Full { reason } => format!("every period ({reason})"),
        Scope::FromYear(year) => format!("the periods from {year} on"),
    };
    let marts: Vec<String> =
        report.marts.iter().map(|r| format!("{} ({} rows, {:.1} s)", r.name, r.rows, r.seconds)).collect();
    println!(
        "materialized {scope} through the table versions {} in {seconds:.1} s: {}",
        report.through,
        marts.join(", ")
    );
    Ok(())
}
