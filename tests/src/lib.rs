//! Simulation, property, crash and end-to-end tests for outbox, and the
//! bench binary's rows.

pub mod bench;
pub mod crash_log;
pub mod sim;
