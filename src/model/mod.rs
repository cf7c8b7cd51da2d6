//! Types shared by the server and the WASM client. No I/O here.

pub mod access;
pub mod api_types;
pub mod audit;
pub mod build;
pub mod control;
pub mod git;
pub mod insight;
mod kind;
mod project;
pub mod protocol;
mod topic;

pub use crate::contract::ralph::{
    plan::{PhaseProgress, PhaseStatus, PlanProgress},
    status::Status,
};
pub use kind::ProjectKind;
pub use project::ProjectSummary;
pub use topic::{Cursor, Topic};
