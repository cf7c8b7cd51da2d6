//! loopwatch: a live dashboard for autonomous coding-agent loops.
//!
//! Layout: the modules follow the data path, and each imports only the ones listed below it.
//!
//! - [`cli`] (server build): the `serve` and `demo` commands.
//! - [`site`] (server build): the HTTP app around everything: router, gate, sessions, listener,
//!   embedded assets, start and stop.
//! - [`app`]: the Leptos views (rendered on the server, hydrated in the browser).
//! - [`live`]: the browser's side of the stream: socket, connection state, store of signals.
//! - [`api`]: the server functions the views call (bodies run on the server).
//! - `server` (server build): discovery, watching, project state, the hub and the streams.
//! - [`model`]: the types both sides exchange.
//! - [`contract`]: pure parsers of the files agent loops write; no I/O.
//!
//! The browser build's entry point, `hydrate()`, lives in the `front` crate, a cdylib of its own
//! so that the wasm build gets link-time optimisation.

#[cfg(feature = "ssr")]
pub mod cli;
#[cfg(feature = "ssr")]
pub mod site;

pub mod app;
pub mod live;

pub mod api;

#[cfg(feature = "ssr")]
pub mod server;

pub mod model;

pub mod contract;

#[cfg(test)]
mod test_rng;
