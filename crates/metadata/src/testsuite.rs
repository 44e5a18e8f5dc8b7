//! Shared backend test suite (to be written).
