//! The client side of the live stream: connection state, reconnect backoff, and the store of
//! signals the views read. The socket task itself only exists in the browser build.

pub mod backoff;
mod store;

#[cfg(feature = "hydrate")]
mod socket;

#[cfg(feature = "hydrate")]
pub use socket::start;
pub use store::{Connection, LiveStore, ProjectCard};
