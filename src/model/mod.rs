//! Types shared by the server and the WASM client. No I/O here.

pub mod api_types;
pub mod audit;
pub mod control;
mod project;
pub mod protocol;
mod topic;

pub use crate::contract::ralph::{
    plan::{PhaseProgress, PhaseStatus, PlanProgress},
    status::Status,
};
pub use project::ProjectSummary;
pub use topic::{Cursor, Topic};
