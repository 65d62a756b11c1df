//! The flash queue under arbitrary operations, power cuts, write failures
//! and bit rot, checked against a `VecDeque` model after every step
//! (`outbox_embedded::flash::sim::model`): every append that returned is
//! stored unless its delete returned, no returned delete is undone, an
//! interrupted operation took effect whole or not at all (a delete: a
//! prefix of it), nothing comes back twice or altered, and the NOR rules
//! hold; after bit rot every event whose record was not hit comes back and
//! the loss is reported (`sim::damage::Ledger`).

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use outbox_embedded::flash::sim::model::{run, Step};

#[derive(Arbitrary, Debug)]
enum Op {
    Append { len: u8, fill: u8 },
    Delete { k: u8 },
    Reopen,
    Cut { ops: u8, done: u16, from_end: bool },
    FailWrite { after: u8, complete: bool },
    Read { skip: u8, n: u8 },
    Rot { at: u16, mask: u8 },
}

fuzz_target!(|ops: Vec<Op>| {
    let steps: Vec<Step> = ops
        .into_iter()
        .take(400)
        .map(|op| match op {
            Op::Append { len, fill } => Step::Append {
                len: usize::from(len % 200),
                fill,
            },
            Op::Delete { k } => Step::Delete {
                k: u64::from(k % 16),
            },
            Op::Reopen => Step::Reopen,
            Op::Cut {
                ops,
                done,
                from_end,
            } => Step::Cut {
                ops: u64::from(ops % 32),
                done: usize::from(done % 300),
                from_end,
            },
            Op::FailWrite { after, complete } => Step::FailWrite {
                after: u64::from(after % 6),
                complete,
            },
            Op::Read { skip, n } => Step::Read {
                skip: u64::from(skip % 16),
                n: usize::from(n % 16),
            },
            Op::Rot { at, mask } => Step::Rot {
                at: usize::from(at),
                mask: mask.max(1),
            },
        })
        .collect();
    run(&steps);
});
