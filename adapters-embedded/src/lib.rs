//! NOR-flash queue and serial transport for outbox (no_std)
#![no_std]

#[cfg(any(test, feature = "_test"))]
extern crate std;

#[cfg(feature = "async")]
pub mod asynchronous;
pub mod flash;
#[cfg(feature = "loss-reports")]
pub mod losses;
pub mod serial;
