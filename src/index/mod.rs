//! The document indexer: which files under the owner's registered roots
//! are read, how their text is cut into chunks, and (next) the incremental
//! sync that keeps the store in step with the disk.
//!
//! Must not read outside a registered root, and must not write SQL (the
//! store does).

pub mod chunk;
pub mod extract;
pub mod scope;
pub mod sync;
