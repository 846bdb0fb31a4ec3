//! The marts lock between materialisers on an object store (the test kit's S3 server): a second one waits
//! while the first holds it, and a lock its holder left behind over an hour ago is taken over by exactly one
//! of the materialisers waiting for it. (The local-disk lock is tested beside its code.) This binary has
//! one test, as it sets the S3 environment.

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use object_store::aws::AmazonS3Builder;
use object_store::{ObjectStoreExt, PutPayload};
use permitflow_testkit::S3Server;
use permitflow_warehouse::{Location, MARTS_DIR, Warehouse};

/// How long a holder keeps the lock while another waits.
const HELD_FOR: Duration = Duration::from_millis(1500);

/// Takes the lock in a second thread while this one holds it for [`HELD_FOR`]; returns how long the second
/// waited.
fn second_waits_for_first(location: &Location) -> Duration {
    let first = Warehouse::open(location).expect("open first");
    let second = Warehouse::open(location).expect("open second");
    let held = first.lock_marts().expect("first takes the lock");
    let started = Instant::now();
    let waiter = std::thread::spawn(move || {
        let _lock = second.lock_marts().expect("second takes the lock");
        started.elapsed()
    });
    std::thread::sleep(HELD_FOR);
    drop(held);
    waiter.join().expect("second thread")
}

/// Set in the child process that runs the scenarios with the S3 server's environment.
const CHILD: &str = "PERMITFLOW_TEST_MARTS_LOCK_CHILD";

#[test]
fn on_s3_the_marts_lock_is_waited_for_and_a_stale_one_is_taken_over_by_one_waiter() {
    if std::env::var_os(CHILD).is_some() {
        return scenarios();
    }
    // The warehouse reads the S3 endpoint and credentials from the environment, so the scenarios run in a
    // child process (this test again) that has the server's.
    let server = S3Server::start().unwrap_or_else(|e| panic!("{e}"));
    server.create_bucket("marts-lock").expect("bucket");
    let status = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", "on_s3_the_marts_lock_is_waited_for_and_a_stale_one_is_taken_over_by_one_waiter"])
        .args(["--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .envs(server.env())
        .status()
        .expect("run the scenarios");
    assert!(status.success(), "the scenarios failed ({status}); their output is above");
}

fn scenarios() {
    let location: Location = "s3://marts-lock/warehouse".parse().expect("location");

    let waited = second_waits_for_first(&location);
    assert!(waited >= HELD_FOR, "the second materialiser took the lock after {waited:?}, while it was held");

    // A holder that died two hours ago left its lock object behind.
    let bucket = AmazonS3Builder::from_env().with_bucket_name("marts-lock").build().expect("S3 client");
    let lock = object_store::path::Path::from(format!("warehouse/{MARTS_DIR}/_lock"));
    let stale = (chrono::Utc::now() - chrono::Duration::hours(2)).to_rfc3339();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(bucket.put(&lock, PutPayload::from(stale))).expect("stale lock");

    // Two materialisers find it at once: one takes it over, the other waits until that one is done.
    let barrier = Arc::new(Barrier::new(2));
    let waiters: Vec<_> = (0..2)
        .map(|_| {
            let (location, barrier) = (location.clone(), barrier.clone());
            std::thread::spawn(move || {
                let warehouse = Warehouse::open(&location).expect("open");
                barrier.wait();
                let started = Instant::now();
                let lock = warehouse.lock_marts().expect("lock");
                let waited = started.elapsed();
                std::thread::sleep(HELD_FOR);
                drop(lock);
                waited
            })
        })
        .collect();
    let mut waited: Vec<Duration> = waiters.into_iter().map(|w| w.join().expect("waiter")).collect();
    waited.sort();
    assert!(waited[0] < HELD_FOR, "the stale lock was not taken over at once: waits {waited:?}");
    assert!(waited[1] >= HELD_FOR, "both materialisers held the lock at once: waits {waited:?}");
    assert!(runtime.block_on(bucket.head(&lock)).is_err(), "the lock is removed when its last holder is done");
}
