//! What the `ms-bench` tests share with the dataplane's live tests.

#![allow(dead_code)]

#[path = "../../../dataplane/tests/common/root.rs"]
mod root;
pub use root::{exclusive, require_root};
