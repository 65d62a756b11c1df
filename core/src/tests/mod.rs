//! Tests beside the code: one module per concern.
//!
//! `harness` drives a machine and records its outputs; `rules` checks each
//! behaviour rule of DESIGN.md; `model` runs proptest model-based tests
//! against a plain VecDeque reference; `trace` records and replays a run.

mod critical;
mod driver;
mod expiry;
mod harness;
mod holes;
mod model;
mod network;
mod rules;
mod trace;
mod window;

pub(crate) use harness::summary_of;
