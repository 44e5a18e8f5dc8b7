//! The backend-agnostic test suite every [`MetadataStore`] must pass.
//!
//! Each case is a `pub async fn` taking a fresh, empty store; [`metadata_store_tests!`](crate::metadata_store_tests)
//! turns them into one named `#[tokio::test]` per case, so a backend runs the whole suite with one line:
//!
//! ```text
//! metadata::metadata_store_tests!(async { metadata::sqlite::SqliteStore::open_temporary().unwrap() });
//! ```
//!
//! The expression is evaluated (and awaited) once per test, and must give a store nobody else uses:
//! several cases look at the whole store (`list_repos`). Cases panic on failure, as tests do.
//! Behaviour that only makes sense for one backend (reopening a file, migrations) is tested beside
//! that backend, not here.
//!
//! The pull-through cache's entries have their own macro,
//! [`metadata_cache_entry_tests!`](crate::metadata_cache_entry_tests).
//!
//! Job locks need two stores on one database (two replicas): their cases take a pair, and
//! [`metadata_job_lock_tests!`](crate::metadata_job_lock_tests) runs them the same way.

mod blobs_manifests;
mod cache_entries;
mod job_lock;
mod listing;
mod uploads;

pub use blobs_manifests::*;
pub use cache_entries::*;
pub use job_lock::*;
pub use listing::*;
pub use uploads::*;

use bytes::Bytes;
use oci::{Digest, RepoName, Tag, media_type};

use crate::NewManifest;

/// Expands into one `#[tokio::test]` per case of [`testsuite`](crate::testsuite), each building its
/// store with `$make` (an expression giving a future of the store, e.g. an `async` block).
///
/// A backend that needs a server writes `metadata_store_tests!(optional: $make)`, where `$make` gives a
/// future of `Option<store>`: `None` (no server configured) makes each case pass after printing that
/// it skipped, so a run without the server says so case by case instead of passing silently.
///
/// Every case must be listed here: a case missing from this list is never run.
#[macro_export]
macro_rules! metadata_store_tests {
    (optional: $make:expr) => {
        $crate::metadata_store_tests!(@list ::std::convert::identity, $make);
    };
    ($make:expr) => {
        $crate::metadata_store_tests!(@list ::std::option::Option::Some, $make);
    };
    (@list $wrap:path, $make:expr) => {
        $crate::metadata_store_tests!(@cases $wrap, $make;
            link_linked_known_unlink,
            blob_links_are_per_repository,
            put_manifest_with_linked_blobs,
            put_manifest_missing_blob_stores_nothing,
            put_manifest_blob_of_another_repo_is_missing,
            put_manifest_missing_child_stores_nothing,
            put_index_with_present_children,
            put_same_digest_twice_is_idempotent,
            manifests_are_per_repository,
            tag_moves_to_the_new_manifest,
            concurrent_tag_moves_end_on_one_value,
            delete_manifest_removes_its_tags,
            delete_tag_keeps_the_manifest,
            repo_exists_needs_a_manifest,
            list_repos_in_byte_order,
            list_tags_in_byte_order,
            list_tags_paginates,
            list_repos_paginates,
            referrers_by_subject,
            deleted_referrer_disappears,
            upload_create_get_delete,
            upload_compare_and_swap,
            concurrent_upload_updates_have_one_winner,
            concurrent_writers_do_not_fail,
            stale_uploads_by_last_update,
        );
    };
    (@cases $wrap:path, $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let Some(store) = $wrap(($make).await) else {
                    eprintln!("SKIPPED {}: no store to run it against", stringify!($case));
                    return;
                };
                $crate::testsuite::$case(store).await;
            }
        )*
    };
}

/// Like [`metadata_store_tests!`](crate::metadata_store_tests), for the pull-through cache's entries
/// (`touch_cache_entries` and the rest), which the backends implement and decorators forward.
#[macro_export]
macro_rules! metadata_cache_entry_tests {
    (optional: $make:expr) => {
        $crate::metadata_store_tests!(@cases ::std::convert::identity, $make;
            cache_entries_oldest_first_with_sizes,
            cache_entries_move_forward_only,
            cache_entries_are_removed_one_by_one,
        );
    };
    ($make:expr) => {
        $crate::metadata_store_tests!(@cases ::std::option::Option::Some, $make;
            cache_entries_oldest_first_with_sizes,
            cache_entries_move_forward_only,
            cache_entries_are_removed_one_by_one,
        );
    };
}

/// Like [`metadata_store_tests!`](crate::metadata_store_tests), for the cases that need two stores on
/// one database (job locks): `$make` gives a future of `(store, store)` (or with `optional:`, of
/// `Option<(store, store)>`), both stores opened on the same fresh database.
#[macro_export]
macro_rules! metadata_job_lock_tests {
    (optional: $make:expr) => {
        $crate::metadata_job_lock_tests!(@list ::std::convert::identity, $make);
    };
    ($make:expr) => {
        $crate::metadata_job_lock_tests!(@list ::std::option::Option::Some, $make);
    };
    (@list $wrap:path, $make:expr) => {
        $crate::metadata_job_lock_tests!(@cases $wrap, $make;
            job_lock_is_held_by_one_store_at_a_time,
            job_locks_of_different_jobs_are_independent,
            job_lock_is_released_on_drop,
            concurrent_job_lock_tries_have_one_winner,
            job_lock_names_are_checked,
        );
    };
    (@cases $wrap:path, $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let Some((a, b)) = $wrap(($make).await) else {
                    eprintln!("SKIPPED {}: no store to run it against", stringify!($case));
                    return;
                };
                $crate::testsuite::$case(a, b).await;
            }
        )*
    };
}

/// A repository name from a literal the suite knows to be valid.
pub(crate) fn repo(name: &str) -> RepoName {
    name.parse()
        .unwrap_or_else(|e| panic!("test repo {name:?}: {e}"))
}

/// A tag from a literal the suite knows to be valid.
pub(crate) fn tag(name: &str) -> Tag {
    name.parse()
        .unwrap_or_else(|e| panic!("test tag {name:?}: {e}"))
}

/// A distinct, well-formed digest per label.
pub(crate) fn blob(label: &str) -> Digest {
    Digest::sha256_of(label.as_bytes())
}

/// An image manifest whose payload names `label`, so different labels give different digests.
pub(crate) fn image(label: &str, blobs: impl IntoIterator<Item = Digest>) -> NewManifest {
    let blobs: Vec<Digest> = blobs.into_iter().collect();
    let payload = Bytes::from(format!(
        "{{\"schemaVersion\":2,\"label\":{label:?},\"layers\":{:?}}}",
        blobs.iter().map(Digest::to_string).collect::<Vec<_>>()
    ));
    NewManifest {
        digest: Digest::sha256_of(&payload),
        media_type: media_type::OCI_MANIFEST.to_string(),
        payload,
        artifact_type: None,
        subject: None,
        annotations: None,
        blobs,
        children: Vec::new(),
    }
}

/// An image index over `children`.
pub(crate) fn index(label: &str, children: impl IntoIterator<Item = Digest>) -> NewManifest {
    let mut m = image(label, []);
    m.media_type = media_type::OCI_INDEX.to_string();
    m.children = children.into_iter().collect();
    m
}
