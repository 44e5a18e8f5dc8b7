//! The backend-agnostic test suites, one per role of the store: every backend runs all four, and every
//! decorator the suite of each role it implements.
//!
//! Each case is a `pub async fn` taking a fresh, empty store of its role; each role's macro turns its
//! cases into one named `#[tokio::test]` per case, so a store runs a whole suite with one line:
//!
//! ```text
//! metadata::catalog_tests!(async { metadata::sqlite::SqliteStore::open_temporary().unwrap() });
//! metadata::upload_session_tests!(async { metadata::sqlite::SqliteStore::open_temporary().unwrap() });
//! ```
//!
//! The expression is evaluated (and awaited) once per test, and must give a store nobody else uses:
//! several cases look at the whole store (`list_repos`). Cases panic on failure, as tests do.
//! Behaviour that only makes sense for one backend (reopening a file, migrations) is tested beside
//! that backend, not here.
//!
//! | role | macro | cases |
//! | --- | --- | --- |
//! | [`Catalog`](crate::Catalog) | [`catalog_tests!`](crate::catalog_tests) | `catalog.rs`, `listing.rs` |
//! | [`UploadSessions`](crate::UploadSessions) | [`upload_session_tests!`](crate::upload_session_tests) | `uploads.rs` |
//! | [`ProxyEntries`](crate::ProxyEntries) | [`proxy_entry_tests!`](crate::proxy_entry_tests) | `proxy_entries.rs` |
//! | [`JobLocks`](crate::JobLocks) | [`job_lock_tests!`](crate::job_lock_tests) | `job_lock.rs` |
//! | [`GcMarks`](crate::GcMarks) (with the catalog) | [`gc_mark_tests!`](crate::gc_mark_tests) | `gc_marks.rs` |
//! | [`ScrubProgress`](crate::ScrubProgress) | [`scrub_progress_tests!`](crate::scrub_progress_tests) | `scrub_progress.rs` |
//! | [`TagAges`](crate::TagAges) (with the catalog) | [`tag_age_tests!`](crate::tag_age_tests) | `tag_ages.rs` |
//! | [`CatalogChanges`](crate::CatalogChanges) (two stores, with the catalog) | [`catalog_change_tests!`](crate::catalog_change_tests) | `changes.rs` |
//! | [`Usage`](crate::Usage) (with the catalog and tag ages) | [`usage_tests!`](crate::usage_tests) | `usage.rs` |
//! | [`Outbox`](crate::Outbox) (with the catalog) | [`outbox_tests!`](crate::outbox_tests) | `outbox.rs` |
//! | [`AdoptProgress`](crate::AdoptProgress) | [`adopt_progress_tests!`](crate::adopt_progress_tests) | `adopt_progress.rs` |
//!
//! Job locks need two stores on one database (two replicas): their cases take a pair.
//!
//! A store that needs a server writes `catalog_tests!(optional: $make)` (and so on), where `$make` gives
//! a future of `Option<store>`: `None` (no server configured) makes each case pass after printing that
//! it skipped, so a run without the server says so case by case instead of passing silently.
//!
//! Every case must be listed in its macro: a case missing from the list is never run.

mod adopt_progress;
mod catalog;
mod changes;
mod gc_marks;
mod job_lock;
mod listing;
mod outbox;
mod proxy_entries;
mod scrub_progress;
mod tag_ages;
mod uploads;
mod usage;

pub use adopt_progress::*;
pub use catalog::*;
pub use changes::*;
pub use gc_marks::*;
pub use job_lock::*;
pub use listing::*;
pub use outbox::*;
pub use proxy_entries::*;
pub use scrub_progress::*;
pub use tag_ages::*;
pub use uploads::*;
pub use usage::*;

use bytes::Bytes;
use oci::{Digest, RepoName, Tag, media_type};

use crate::NewManifest;

/// The cases of one role, each a `#[tokio::test]` building its store with `$make`; `$wrap` makes the
/// store an `Option` (`Some` for a store that is always there, the identity for `optional:`).
#[doc(hidden)]
#[macro_export]
macro_rules! __metadata_cases {
    ($wrap:path, $make:expr; $($case:ident),* $(,)?) => {
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

/// Expands into one `#[tokio::test]` per case of the [`Catalog`](crate::Catalog) suite.
#[macro_export]
macro_rules! catalog_tests {
    (optional: $make:expr) => {
        $crate::catalog_tests!(@list ::std::convert::identity, $make);
    };
    ($make:expr) => {
        $crate::catalog_tests!(@list ::std::option::Option::Some, $make);
    };
    (@list $wrap:path, $make:expr) => {
        $crate::__metadata_cases!($wrap, $make;
            link_linked_known_unlink,
            blob_links_are_per_repository,
            link_blobs_links_each_in_one_call,
            put_manifest_with_linked_blobs,
            put_manifest_missing_blob_stores_nothing,
            put_manifest_blob_of_another_repo_is_missing,
            put_manifest_missing_child_stores_nothing,
            put_index_with_present_children,
            put_sparse_index_without_its_optional_children,
            put_same_digest_twice_is_idempotent,
            manifests_are_per_repository,
            tag_moves_to_the_new_manifest,
            put_tags_moves_every_tag_or_none,
            concurrent_tag_moves_end_on_one_value,
            delete_manifest_removes_its_tags,
            delete_tag_keeps_the_manifest,
            concurrent_writers_do_not_fail,
            an_immutable_tag_is_never_moved,
            repo_exists_needs_a_manifest,
            list_repos_in_byte_order,
            list_tags_in_byte_order,
            list_tags_paginates,
            list_repos_paginates,
            referrers_by_subject,
            deleted_referrer_disappears,
        );
    };
}

/// Expands into one `#[tokio::test]` per case of the [`UploadSessions`](crate::UploadSessions) suite.
#[macro_export]
macro_rules! upload_session_tests {
    (optional: $make:expr) => {
        $crate::upload_session_tests!(@list ::std::convert::identity, $make);
    };
    ($make:expr) => {
        $crate::upload_session_tests!(@list ::std::option::Option::Some, $make);
    };
    (@list $wrap:path, $make:expr) => {
        $crate::__metadata_cases!($wrap, $make;
            upload_create_get_delete,
            upload_compare_and_swap,
            concurrent_upload_updates_have_one_winner,
            stale_uploads_by_last_update,
        );
    };
}

/// Expands into one `#[tokio::test]` per case of the [`ProxyEntries`](crate::ProxyEntries) suite.
#[macro_export]
macro_rules! proxy_entry_tests {
    (optional: $make:expr) => {
        $crate::proxy_entry_tests!(@list ::std::convert::identity, $make);
    };
    ($make:expr) => {
        $crate::proxy_entry_tests!(@list ::std::option::Option::Some, $make);
    };
    (@list $wrap:path, $make:expr) => {
        $crate::__metadata_cases!($wrap, $make;
            proxy_entries_oldest_first_with_sizes,
            proxy_entries_move_forward_only,
            proxy_entries_are_removed_one_by_one,
        );
    };
}

/// Expands into one `#[tokio::test]` per case of the [`GcMarks`](crate::GcMarks) suite, for stores that
/// are also the [`Catalog`](crate::Catalog) (the cases link and reference blobs through it) and the
/// [`ProxyEntries`](crate::ProxyEntries) (the cache's entries keep blobs from the collector).
#[macro_export]
macro_rules! gc_mark_tests {
    (optional: $make:expr) => {
        $crate::gc_mark_tests!(@list ::std::convert::identity, $make);
    };
    ($make:expr) => {
        $crate::gc_mark_tests!(@list ::std::option::Option::Some, $make);
    };
    (@list $wrap:path, $make:expr) => {
        $crate::__metadata_cases!($wrap, $make;
            gc_candidates_are_the_blobs_no_manifest_references,
            gc_a_claimed_blob_is_unlinked_and_cannot_be_reserved_until_released,
            gc_a_referenced_blob_is_never_claimed,
            gc_a_manifest_cannot_reference_a_claimed_blob,
            gc_link_blobs_with_a_claimed_blob_links_none,
            gc_claims_racing_links_never_leave_a_claimed_blob_linked,
            gc_unreachable_manifests_are_what_no_tag_reaches,
            gc_recorded_blobs_pages_every_row,
            gc_claim_unrecorded_only_without_a_row,
            gc_leaves_the_blobs_the_cache_holds_to_its_eviction,
        );
    };
}

/// Expands into one `#[tokio::test]` per case of the [`AdoptProgress`](crate::AdoptProgress) suite.
#[macro_export]
macro_rules! adopt_progress_tests {
    (optional: $make:expr) => {
        $crate::adopt_progress_tests!(@list ::std::convert::identity, $make);
    };
    ($make:expr) => {
        $crate::adopt_progress_tests!(@list ::std::option::Option::Some, $make);
    };
    (@list $wrap:path, $make:expr) => {
        $crate::__metadata_cases!($wrap, $make;
            adopt_cursor_is_saved_and_replaced,
            repositories_adopted_ahead_are_remembered,
        );
    };
}

/// Expands into one `#[tokio::test]` per case of the [`ScrubProgress`](crate::ScrubProgress) suite.
#[macro_export]
macro_rules! scrub_progress_tests {
    (optional: $make:expr) => {
        $crate::scrub_progress_tests!(@list ::std::convert::identity, $make);
    };
    ($make:expr) => {
        $crate::scrub_progress_tests!(@list ::std::option::Option::Some, $make);
    };
    (@list $wrap:path, $make:expr) => {
        $crate::__metadata_cases!($wrap, $make;
            scrub_cursor_is_saved_replaced_and_forgotten,
        );
    };
}

/// Expands into one `#[tokio::test]` per case of the [`Outbox`](crate::Outbox) suite, for stores that
/// are also the [`Catalog`](crate::Catalog) (its writes queue the events noted for them).
#[macro_export]
macro_rules! outbox_tests {
    (optional: $make:expr) => {
        $crate::outbox_tests!(@list ::std::convert::identity, $make);
    };
    ($make:expr) => {
        $crate::outbox_tests!(@list ::std::option::Option::Some, $make);
    };
    (@list $wrap:path, $make:expr) => {
        $crate::__metadata_cases!($wrap, $make;
            outbox_queues_per_endpoint_in_order_and_removes_by_id,
            outbox_gets_the_events_of_catalog_writes_that_happened,
        );
    };
}

/// Expands into one `#[tokio::test]` per case of the [`TagAges`](crate::TagAges) suite, for stores that
/// are also the [`Catalog`](crate::Catalog) (the cases push through it).
#[macro_export]
macro_rules! tag_age_tests {
    (optional: $make:expr) => {
        $crate::tag_age_tests!(@list ::std::convert::identity, $make);
    };
    ($make:expr) => {
        $crate::tag_age_tests!(@list ::std::option::Option::Some, $make);
    };
    (@list $wrap:path, $make:expr) => {
        $crate::__metadata_cases!($wrap, $make;
            tag_ages_give_push_and_last_pull_times,
            tag_ages_delete_only_a_tag_unchanged_since_read,
        );
    };
}

/// Expands into one `#[tokio::test]` per case of the [`Usage`](crate::Usage) suite, for stores that are
/// also the [`Catalog`](crate::Catalog) and [`TagAges`](crate::TagAges) (the cases push and pull through
/// them).
#[macro_export]
macro_rules! usage_tests {
    (optional: $make:expr) => {
        $crate::usage_tests!(@list ::std::convert::identity, $make);
    };
    ($make:expr) => {
        $crate::usage_tests!(@list ::std::option::Option::Some, $make);
    };
    (@list $wrap:path, $make:expr) => {
        $crate::__metadata_cases!($wrap, $make;
            usage_per_repository_counts_shared_bytes,
            usage_totals_count_the_whole_store,
        );
    };
}

/// Expands into one `#[tokio::test]` per case of the [`CatalogChanges`](crate::CatalogChanges) suite:
/// `$make` gives two stores on one fresh database, as for [`job_lock_tests!`](crate::job_lock_tests).
#[macro_export]
macro_rules! catalog_change_tests {
    (optional: $make:expr) => {
        $crate::job_lock_tests!(@cases ::std::convert::identity, $make;
            catalog_changes_of_this_process_name_the_repository,
            catalog_changes_of_another_process_reach_the_watcher,
        );
    };
    ($make:expr) => {
        $crate::job_lock_tests!(@cases ::std::option::Option::Some, $make;
            catalog_changes_of_this_process_name_the_repository,
            catalog_changes_of_another_process_reach_the_watcher,
        );
    };
}

/// Expands into one `#[tokio::test]` per case of the [`JobLocks`](crate::JobLocks) suite: `$make` gives
/// a future of `(store, store)` (or with `optional:`, of `Option<(store, store)>`), both stores opened
/// on the same fresh database.
#[macro_export]
macro_rules! job_lock_tests {
    (optional: $make:expr) => {
        $crate::job_lock_tests!(@list ::std::convert::identity, $make);
    };
    ($make:expr) => {
        $crate::job_lock_tests!(@list ::std::option::Option::Some, $make);
    };
    (@list $wrap:path, $make:expr) => {
        $crate::job_lock_tests!(@cases $wrap, $make;
            job_lock_is_held_by_one_store_at_a_time,
            job_locks_of_different_jobs_are_independent,
            job_lock_is_released_on_drop,
            job_lock_released_is_free_at_once,
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
        optional_children: Vec::new(),
        tag_immutable: false,
    }
}

/// An image index over `children`.
pub(crate) fn index(label: &str, children: impl IntoIterator<Item = Digest>) -> NewManifest {
    let mut m = image(label, []);
    m.media_type = media_type::OCI_INDEX.to_string();
    m.children = children.into_iter().collect();
    m
}
