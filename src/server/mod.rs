//! The engine (server build only): discovering projects, watching and reading their files into
//! project state, numbering events in the hub, and streaming them to clients. Knows nothing of
//! the HTTP app around it.

pub mod archive;
pub mod auth;
pub mod clock;
pub mod control;
pub mod discovery;
pub mod engine;
pub mod git;
pub mod hub;
pub mod index;
pub mod metrics;
pub mod project;
pub mod safe_open;
pub mod share;
pub mod shutdown;
pub mod state;
pub mod store;
pub mod stream;
pub mod watchdog;
pub mod watcher;

pub use shutdown::Shutdown;
pub use state::{AppState, Keepalive};
