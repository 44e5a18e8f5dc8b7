//! The backend-agnostic test suite for [`BlobStore`]: one public async function per case of the
//! contract, and [`blob_store_tests!`](crate::blob_store_tests) to run them all, as one named test
//! each, against any backend with one line.
//!
//! Why a shared suite: the registry is written once over the trait, so every backend must behave the
//! same in every corner (offsets, ranges, empty blobs, races). Writing the cases once, and running them
//! everywhere, is what keeps the backends interchangeable.
//!
//! Available to this crate's tests, and to other crates with the `testsuite` feature:
//!
//! ```ignore
//! // In a backend's test file. The constructor is an async expression giving `(guard, store)`: the
//! // guard (a TempDir, a server handle, `()`) lives as long as the test.
//! blobs::blob_store_tests!(async { blobs::testsuite::temp_fs_store().expect("temp dir") });
//!
//! // For a backend that needs a server: an `Option`, where `None` skips every case.
//! blobs::blob_store_tests!(optional: async { s3_from_env().await });
//! ```
//!
//! The expanding crate needs `tokio` (with `macros` and `rt-multi-thread`) as a (dev-)dependency. The
//! tests are named after the cases, so a second backend in the same test file goes in its own `mod`.
//! Every case uses its own data, so the cases can also share one store (for instance one bucket).

mod blobs;
mod data;
mod listing;
mod maintenance;
mod registry2;
mod stress;
mod uploads;

pub use self::blobs::*;
pub use self::data::*;
pub use self::listing::*;
pub use self::maintenance::*;
pub use self::registry2::*;
pub use self::stress::*;
pub use self::uploads::*;

use crate::BlobStore;
use crate::fs::FsBlobStore;

/// A filesystem store in a fresh temporary directory, removed when the returned guard drops. Also handy
/// for other crates' tests that need real blob storage.
pub fn temp_fs_store() -> std::io::Result<(tempfile::TempDir, FsBlobStore)> {
    let dir = tempfile::TempDir::new()?;
    let store = FsBlobStore::open(dir.path())?;
    Ok((dir, store))
}

/// Lets the macro pass any concrete store to the cases, which take `&dyn BlobStore`.
#[doc(hidden)]
pub fn as_dyn<S: BlobStore>(store: &S) -> &dyn BlobStore {
    store
}

/// Expands into one `#[tokio::test]` per case of [`testsuite`](crate::testsuite), each building a fresh
/// store with the given constructor. See the module documentation for the two forms.
#[macro_export]
macro_rules! blob_store_tests {
    (optional: $ctor:expr) => {
        $crate::blob_store_tests!(@cases $ctor;
            not_visible_before_commit,
            commit_then_stat_and_read,
            both_algorithms,
            read_ranges,
            unsatisfiable_ranges,
            commit_existing_digest_is_harmless,
            commit_empty_blob,
            commit_shorter_than_written,
            commit_longer_than_held_is_not_found,
            delete_blob,
            list_blobs_in_digest_order,
            list_blobs_after_a_cursor,
            quarantine_takes_a_blob_out_of_service,
            reader_outlives_delete,
            write_then_continue,
            write_below_length_discards_tail,
            write_past_end_is_upload_offset,
            continue_unknown_upload_is_not_found,
            failing_source_then_resume,
            upload_read_returns_prefix,
            unsynced_writes_read_back_and_commit,
            upload_delete_is_idempotent,
            concurrent_commits_of_one_digest,
            concurrent_uploads_stay_apart,
            many_chunks_round_trip,
            purge_temporary_spares_blobs_and_uploads,
            check_passes_on_a_working_store,
        );
    };
    (@cases $ctor:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let fixture: ::core::option::Option<(_, _)> = $ctor.await;
                let ::core::option::Option::Some((_guard, store)) = fixture else {
                    eprintln!("skipped: {}: this backend is not configured", stringify!($case));
                    return;
                };
                $crate::testsuite::$case($crate::testsuite::as_dyn(&store)).await;
            }
        )*
    };
    ($ctor:expr) => {
        $crate::blob_store_tests!(optional: async { ::core::option::Option::Some($ctor.await) });
    };
}
