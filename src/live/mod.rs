//! The client side of the live stream: the connection state machine, reconnect backoff, the
//! store of signals the views read, and the live log buffer. The socket task itself only exists
//! in the browser build.

pub mod backoff;
pub mod build;
pub mod log;
pub mod machine;
mod store;

#[cfg(feature = "hydrate")]
pub mod socket;

pub use machine::StreamState;
pub use store::{LiveStore, Overwrite, ProjectCard, ProjectView, Refetch, Toast};

/// How much of the log a project page carries when it is first rendered (a quick first paint).
pub const LOG_PAGE_BYTES: u64 = 256 * 1024;

/// Cuts the reconnect wait short (the Retry button). A no-op on the server.
pub fn retry_now() {
    #[cfg(feature = "hydrate")]
    socket::retry_now();
}

/// The page clock in milliseconds (0 on the server, where nothing counts down).
pub fn now_ms() -> f64 {
    #[cfg(feature = "hydrate")]
    {
        socket::now_ms()
    }
    #[cfg(not(feature = "hydrate"))]
    {
        0.0
    }
}
