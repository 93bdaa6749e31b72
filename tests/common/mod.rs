//! Shared by the reference tests: where the reference data lives.

use std::path::PathBuf;

/// `HEARTH_REFERENCE_DIR`, else the shared reference folder beside the
/// checkout, else the copy committed in `tests/reference/` (so a clone
/// without the shared folder still runs the reference tests).
pub fn reference_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("HEARTH_REFERENCE_DIR") {
        return PathBuf::from(dir);
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let shared = root.join("../shared/reference");
    if shared.is_dir() {
        shared
    } else {
        root.join("tests/reference")
    }
}
