//! Manifest and index parsing and validation (to be written).
