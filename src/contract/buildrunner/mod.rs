//! The files a BuildRunner build keeps under `.buildrunner/`: checkpoints and their timeline,
//! the feature registry (`features.json`), the context Markdown files, one status vocabulary for
//! all of them, and the statistics that follow. Every parser takes bytes and returns its value
//! with a list of warnings: a damaged file is a visible warning, never an error or a panic.

pub mod checkpoint;
pub mod context;
pub mod features;
mod read;
pub mod stats;
pub mod status;
pub mod timeline;

pub use read::{MAX_LIST_ITEMS, MAX_TEXT_CHARS, MAX_WARNINGS};
