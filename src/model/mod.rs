//! Types shared by the server and the WASM client. No I/O here.

pub mod api;
mod project;
pub mod protocol;
mod topic;

pub use project::{PhaseProgress, PhaseStatus, PlanProgress, ProjectSummary, Status};
pub use topic::{Cursor, Topic};
