//! The vocabulary of the OCI Distribution and Image specs, shared by every other crate.
//!
//! Everything here is pure: parsing and validation happen once, at the edge, and the rest of berth passes
//! the resulting types around so that no layer below HTTP ever sees an unchecked name or digest.

pub mod digest;
pub mod hash;
pub mod manifest;
pub mod media_type;
pub mod name;
pub mod pattern;

pub use digest::{Digest, DigestAlgorithm, DigestError};
pub use hash::ResumableHasher;
pub use name::{NameError, Reference, RepoName, Tag};
pub use pattern::Pattern;
