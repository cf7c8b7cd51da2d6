//! loopwatch: a live dashboard for autonomous coding-agent loops.
//!
//! The data path is visible in the module tree:
//! files -> [`contract`] (pure parsers) -> `server` (index, hub, sockets) -> [`live`] (client
//! signals) -> [`app`] (views). [`model`] holds the types both sides share.

pub mod app;
pub mod contract;
pub mod live;
pub mod model;
#[cfg(feature = "ssr")]
pub mod server;
