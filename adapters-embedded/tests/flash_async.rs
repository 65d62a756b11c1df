//! The async flash queue (feature `async`): the same behaviour as the
//! blocking one, and cancellation-safe.
//!
//! The async flash is the simulated NOR flash behind
//! `embedded_storage_async`'s `NorFlash`, where every read, write and erase
//! first returns `Pending` once (a real suspension, as a DMA transfer
//! gives), and the futures are polled by hand.
//!
//! - `async_queue_behaves_as_the_blocking_one`: one workload on both
//!   queues, step by step: the same results, the same reads, the same
//!   flash image.
//! - `dropping_a_future_leaves_what_a_power_cut_leaves`: an append or a
//!   delete whose future is dropped after `k` writes and erases leaves
//!   the image a power cut at that point leaves, for every `k` of every
//!   operation of a workload that wraps the ring; that image reopens with
//!   nothing lost, nothing twice and nothing half-confirmed.
#![cfg(feature = "async")]

mod support;

use std::future::Future;
use std::pin::{pin, Pin};
use std::task::{Context, Poll, Waker};

use outbox_embedded::flash::asynchronous::FlashQueue as AsyncQueue;
use outbox_embedded::flash::sim::SimError;
use outbox_embedded::flash::{Error, FlashQueue};
use support::async_sim::{AsyncSim, Flash};
use support::{contents, payload, Model, Op};
const PAGES: usize = 6;
const REGION: core::ops::Range<u32> = 0..(PAGES as u32 * 512);

fn poll<T>(fut: Pin<&mut (impl Future<Output = T> + ?Sized)>) -> Poll<T> {
    fut.poll(&mut Context::from_waker(Waker::noop()))
}

/// Poll to the end, counting the suspensions.
fn block_on<T>(fut: impl Future<Output = T>) -> (T, u32) {
    let mut fut = pin!(fut);
    let mut pending = 0;
    loop {
        match poll(fut.as_mut()) {
            Poll::Ready(v) => return (v, pending),
            Poll::Pending => pending += 1,
        }
    }
}

/// Appends, deletes keeping a few events queued, and now and then a write
/// that fails (power on) followed by the same number again; wraps the ring.
fn workload(n: u64) -> Vec<Op> {
    let mut ops = Vec::new();
    let mut seq = 0u64;
    for i in 0..n {
        if i % 23 == 5 {
            ops.push(Op::FailWrite {
                after: i % 3,
                complete: i % 2 == 0,
            });
            ops.push(Op::Append(seq, payload(seq, 1)));
        }
        ops.push(Op::Append(seq, payload(seq, 0)));
        seq += 1;
        if i % 4 == 3 {
            ops.push(Op::Delete(seq.saturating_sub(1 + i % 7)));
        }
    }
    ops
}

#[test]
fn async_queue_behaves_as_the_blocking_one() {
    let mut sync_flash = Flash::new(PAGES);
    let mut q = FlashQueue::open(&mut sync_flash, REGION).unwrap();
    let (aq, _) = block_on(AsyncQueue::open(AsyncSim::new(Flash::new(PAGES)), REGION));
    let mut aq = aq.unwrap();
    let (mut suspended, mut appends) = (0, 0);
    let mut buf = [0u8; 512];
    let mut abuf = [0u8; 512];
    for (i, op) in workload(200).iter().enumerate() {
        match op {
            Op::Append(seq, p) => {
                let (got, n) = block_on(aq.append(*seq, p));
                suspended += n;
                appends += 1;
                assert_eq!(got, q.append(*seq, p), "op {i}: append {seq}");
            }
            Op::Delete(through) => {
                let (got, _) = block_on(aq.delete_through(*through));
                assert_eq!(got, q.delete_through(*through), "op {i}");
            }
            Op::FailWrite { after, complete } => {
                q.flash_mut().fail_write(*after, *complete);
                aq.flash_mut().flash.fail_write(*after, *complete);
            }
        }
        let summary = q.summary().unwrap();
        assert_eq!(block_on(aq.summary()).0.unwrap(), summary, "op {i}");
        assert_eq!(block_on(aq.seq_floor()).0.unwrap(), q.seq_floor().unwrap());
        if let (Some(first), Some(last)) = (summary.first, summary.last) {
            let mut sizes = [0u32; 8];
            let mut asizes = [0u32; 8];
            let n = q.read_sizes(first, &mut sizes).unwrap();
            assert_eq!(block_on(aq.read_sizes(first, &mut asizes)).0, Ok(n));
            assert_eq!(sizes, asizes, "op {i}: sizes");
            let n = q.read_range(first, last, &mut buf);
            assert_eq!(block_on(aq.read_range(first, last, &mut abuf)).0, n);
            let n = n.unwrap();
            assert_eq!(buf[..n], abuf[..n], "op {i}: payloads");
            // Too small a buffer: the same error.
            let short = q.read_range(first, last, &mut buf[..n / 2]);
            let ashort = block_on(aq.read_range(first, last, &mut abuf[..n / 2])).0;
            assert_eq!(ashort, short, "op {i}: a short buffer");
        }
    }
    // Every append waited on the flash (a real suspension) at least once.
    assert!(
        appends > 200 && suspended >= appends,
        "{suspended} suspensions"
    );
    assert_eq!(sync_flash_image(q), aq.into_inner().flash.image());
}

fn sync_flash_image(q: FlashQueue<&mut Flash>) -> Vec<u8> {
    let flash = q.into_inner();
    assert!(flash.stats().erases >= 3 * PAGES as u64, "the ring wraps");
    flash.image().to_vec()
}

/// How an operation's future ended.
enum Ended {
    /// Dropped part-way.
    Dropped,
    Returned(Result<(), Error<SimError>>),
}

/// Start `op` on the async queue and drop its future once `k` writes and
/// erases happened (or let it finish if it returns first).
fn run_async_until(aq: &mut AsyncQueue<AsyncSim>, op: &Op, k: u64) -> Ended {
    let done = aq.flash_mut().done.clone();
    let start = done.get();
    let ended = {
        let fut: Pin<Box<dyn Future<Output = Result<(), Error<SimError>>> + '_>> = match op {
            Op::Append(seq, p) => Box::pin(aq.append(*seq, p)),
            Op::Delete(through) => Box::pin(aq.delete_through(*through)),
            Op::FailWrite { .. } => unreachable!("not an operation"),
        };
        let mut fut = fut;
        loop {
            if done.get() - start >= k {
                break Ended::Dropped;
            }
            if let Poll::Ready(r) = poll(fut.as_mut()) {
                break Ended::Returned(r);
            }
        }
        // The future is dropped here, part-way.
    };
    ended
}

#[test]
fn dropping_a_future_leaves_what_a_power_cut_leaves() {
    let ops: Vec<Op> = workload(90)
        .into_iter()
        .filter(|o| !matches!(o, Op::FailWrite { .. }))
        .collect();
    // The uncut run, keeping the image and the model before every
    // operation.
    let mut flash = Flash::new(PAGES);
    let mut model = Model::default();
    let mut before = Vec::new();
    for op in &ops {
        before.push((flash.clone(), model.clone()));
        let mut q = FlashQueue::open(&mut flash, REGION).unwrap();
        assert!(!model.run(&mut q, std::slice::from_ref(op), &mut |_, _, _| {}));
    }
    assert!(flash.stats().erases >= 2 * PAGES as u64, "the ring wraps");

    let mut drops = 0;
    for (i, (op, (image, model))) in ops.iter().zip(&before).enumerate() {
        for k in 0.. {
            let ctx = format!("op {i} ({op:?}) dropped after {k} writes and erases");
            // The async queue, dropped after k writes and erases.
            let (aq, _) = block_on(AsyncQueue::open(AsyncSim::new(image.clone()), REGION));
            let mut aq = aq.unwrap();
            let ended = run_async_until(&mut aq, op, k);
            let dropped = aq.into_inner().flash;

            // The blocking queue, power cut before its k-th write or erase.
            let mut cut = image.clone();
            let mut cut_model = model.clone();
            let lost = {
                let mut q = FlashQueue::open(&mut cut, REGION).unwrap();
                q.flash_mut().cut_at_op(k, 0);
                cut_model.run(&mut q, std::slice::from_ref(op), &mut |_, _, _| {})
            };
            // (Dropped with no cut: after its last write or erase, before
            // it returned; its effect is whole but was never confirmed.)
            let last = !lost;
            match ended {
                Ended::Dropped => {}
                Ended::Returned(r) => {
                    assert!(!lost, "{ctx}: the future returned {r:?} but the cut hit");
                    assert_eq!(r, Ok(()), "{ctx}");
                }
            }
            assert_eq!(
                dropped.image(),
                cut.image(),
                "{ctx}: the image differs from a power cut's"
            );
            // What reopens: every event returned, none twice, no delete
            // undone, nothing the dropped operation did not finish
            // confirmed.
            let mut reopened = dropped.clone();
            let mut q = FlashQueue::open(&mut reopened, REGION).unwrap();
            let got = contents(&mut q);
            cut_model.check(&got, &ctx);
            assert_eq!(reopened.violations(), 0, "{ctx}: NOR rules broken");
            if matches!(ended, Ended::Returned(_)) {
                break;
            }
            drops += 1;
            if last {
                break;
            }
        }
    }
    assert!(drops > ops.len(), "only {drops} dropped futures");
    eprintln!("{drops} futures dropped over {} operations", ops.len());
}
