//! Streaming to clients: one connection loop for every socket ([`connection`]), the live
//! protocol at `/api/ws` ([`live`]), the compatible views at `/ws/...` ([`compat`]), a
//! BuildRunner build's protocol at `/api/build/stream/{id}` ([`build`]) and the server-sent
//! events at `/api/events` ([`sse`]).

pub mod build;
pub mod compat;
pub mod connection;
pub mod limits;
pub mod live;
mod request;
pub mod sse;
#[cfg(test)]
mod testing;
