//! NOR-flash queue and serial transport for outbox (no_std)
#![no_std]

pub mod serial;
