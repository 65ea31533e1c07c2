//! The lab every integration test shares: the CDF emulator seeded with the sample plant model
//! (`lab`), a lake in a local directory or on the S3 server on loopback (`lake`), the
//! independent Python readers that compare the lake with the emulator's truth (`readers`),
//! captured logs (`logs`) and the S3 fault proxy (`faults`). Tests that need a server or
//! Python skip, or fail under `tests/run-all.sh`, through [`required_env`].

mod faults;
mod lab;
mod lake;
mod logs;
mod readers;

pub use faults::lab_behind_proxy;
pub use lab::{Lab, sample_property_types};
pub use lake::{Lake, neighbour_commits, parquet_object_batches, publish_dir_uri};
pub use logs::LogCapture;
pub use readers::{VIEWS, assert_matches_truth, published_file_spec, python_read};

/// Returns the variable, or `None` after printing why the test is skipped. Under
/// `tests/run-all.sh` (`CDF_S3_TEST_REQUIRE_ALL=1`) a missing variable fails the test.
pub fn required_env(var: &str, why: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(value) if !value.is_empty() => Some(value),
        _ => {
            assert!(
                std::env::var("CDF_S3_TEST_REQUIRE_ALL").as_deref() != Ok("1"),
                "{var} is not set ({why}) but CDF_S3_TEST_REQUIRE_ALL=1"
            );
            eprintln!("SKIPPED ({var} not set: {why}): run tests/run-all.sh");
            None
        }
    }
}

pub fn python() -> Option<String> {
    required_env(
        "CDF_S3_TEST_PYTHON",
        "the Python deltalake and DuckDB readers",
    )
}
