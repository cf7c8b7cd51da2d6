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

/// Entry point of the WASM client: hydrates the server-rendered page.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(app::App);
}
