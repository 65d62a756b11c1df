//! Simulation, property, crash and end-to-end tests for outbox

pub mod sim;
