//! Exhaustive power cuts: a workload of appends, deletes and failed writes
//! that wraps the ring several times is cut at every single write and erase
//! in turn (part-way, and just after it finished but before it returned).
//! After each cut the queue is reopened and judged by the model: every
//! event whose append returned is there unless its delete returned, no
//! returned delete is undone, nothing comes back twice or altered, and
//! appending and deleting go on working.

mod support;

use outbox_embedded::flash::sim::SimFlash;
use outbox_embedded::flash::FlashQueue;
use support::{contents, payload, Model, Op};

type Flash = SimFlash<4, 4, 512>;
const PAGES: usize = 6;
const REGION: core::ops::Range<u32> = 0..(PAGES as u32 * 512);

/// 260 appends with a delete after every fourth (keeping a few events
/// queued), and now and then an append whose write fails (torn, or whole
/// but reported failed) followed by the same number appended again.
fn workload() -> Vec<Op> {
    let mut ops = Vec::new();
    let mut seq = 0u64;
    for i in 0..260u64 {
        if i % 37 == 5 {
            let mut p = payload(seq, 1);
            p.resize(p.len().max(4), 0xA5);
            ops.push(Op::FailWrite {
                after: i % 3,
                complete: i % 2 == 0,
            });
            ops.push(Op::Append(seq, p));
        }
        ops.push(Op::Append(seq, payload(seq, 0)));
        seq += 1;
        if i % 4 == 3 {
            ops.push(Op::Delete(seq.saturating_sub(1 + i % 9)));
        }
    }
    ops
}

fn inject(q: &mut FlashQueue<&mut Flash>, after: u64, complete: bool) {
    q.flash_mut().fail_write(after, complete);
}

/// Reopen after the cut, judge, then keep going and judge again.
fn reopen_and_check(flash: &mut Flash, model: &Model, ctx: &str) {
    flash.power_on();
    flash.cancel_faults();
    let mut q = FlashQueue::open(&mut *flash, REGION).unwrap();
    let got = contents(&mut q);
    model.check(&got, ctx);
    let floor = q.seq_floor().unwrap();
    if let Some((&max, _)) = model.acked.iter().next_back() {
        assert!(floor > max, "{ctx}: seq floor {floor} not above {max}");
    }
    if let Some(d) = model.deleted_through {
        assert!(floor > d, "{ctx}: seq floor {floor} not above deleted {d}");
    }

    // Appending continues: the new events and what survived, in order.
    let mut next = Model {
        acked: got.into_iter().collect(),
        ..Model::default()
    };
    let more: Vec<Op> = (floor..floor + 12)
        .map(|s| Op::Append(s, payload(s, 7)))
        .chain([Op::Delete(floor + 3)])
        .collect();
    assert!(!next.run(&mut q, &more, &mut |_, _, _| {}));
    let got = contents(&mut q);
    next.check(&got, &format!("{ctx}, after continuing"));
    let mut q = FlashQueue::open(&mut *flash, REGION).unwrap();
    assert_eq!(
        contents(&mut q),
        got,
        "{ctx}: a clean reopen changed the contents"
    );
    assert_eq!(flash.violations(), 0, "{ctx}: NOR rules broken");
}

#[test]
fn every_write_and_erase_cut_in_turn_loses_nothing_returned() {
    let ops = workload();

    // The uncut run: how many writes and erases, and that the ring wraps.
    let mut flash = Flash::new(PAGES);
    let mut model = Model::default();
    {
        let mut q = FlashQueue::open(&mut flash, REGION).unwrap();
        assert!(!model.run(&mut q, &ops, &mut inject));
        let got = contents(&mut q);
        model.check(&got, "uncut");
    }
    let stats = flash.stats();
    assert!(
        stats.erases >= 3 * PAGES as u64,
        "the workload must wrap the ring at least 3 times ({} erases)",
        stats.erases
    );
    assert_eq!(flash.violations(), 0);
    let total = stats.writes + stats.erases;

    let mut cuts = 0;
    for k in 0..total {
        // Part-way through the operation, and after all of it but before
        // it returned.
        for done in [(k as usize * 31) % 64, usize::MAX] {
            let mut flash = Flash::new(PAGES);
            flash.set_erase_from_end(k % 2 == 1);
            flash.cut_at_op(k, done);
            let mut model = Model::default();
            {
                let mut q = FlashQueue::open(&mut flash, REGION).unwrap();
                let lost = model.run(&mut q, &ops, &mut inject);
                assert!(lost, "cut at operation {k} never happened");
            }
            reopen_and_check(
                &mut flash,
                &model,
                &format!("cut at op {k} after {done} bytes"),
            );
            cuts += 1;
        }
    }
    assert!(cuts >= 2 * total);
    eprintln!(
        "{cuts} power cuts over {total} writes and erases ({} appends and deletes)",
        ops.iter()
            .filter(|o| !matches!(o, Op::FailWrite { .. }))
            .count()
    );
}
