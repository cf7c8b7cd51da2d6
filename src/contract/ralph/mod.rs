//! The files a Ralph loop writes: `ralph.log`, `iterations.jsonl`, notifications, the plan,
//! `config.json`, the pid file, and what follows from them (status, statistics).

pub mod alerts;
pub mod budget;
pub mod config;
pub mod iterations;
pub mod log;
pub mod notification;
pub mod pid;
pub mod plan;
pub mod stats;
pub mod status;
