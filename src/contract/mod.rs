//! Parsers of the on-disk Ralph contract (DESIGN.md section 4) and the rules derived from it.
//! Pure functions over text: no I/O, compiled for the server and the WASM client alike.

pub mod config;
pub mod iterations;
pub mod lenient;
pub mod log;
pub mod notification;
pub mod pid;
pub mod plan;
pub mod request_path;
pub mod stats;
pub mod status;
