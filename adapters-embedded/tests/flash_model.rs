//! Random operation sequences with random power cuts, write failures and
//! bit rot,
//! checked after every step against a `VecDeque` model of the queue
//! (`outbox_embedded::flash::sim::model`).

use outbox_embedded::flash::sim::model::{run, Step};
use proptest::prelude::*;

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => (0usize..120, any::<u8>()).prop_map(|(len, fill)| Step::Append { len, fill }),
        3 => (0u64..8).prop_map(|k| Step::Delete { k }),
        1 => Just(Step::Reopen),
        2 => (0u64..12, 0usize..300, any::<bool>())
            .prop_map(|(ops, done, from_end)| Step::Cut { ops, done, from_end }),
        1 => (0u64..4, any::<bool>()).prop_map(|(after, complete)| Step::FailWrite { after, complete }),
        2 => (0u64..6, 0usize..6).prop_map(|(skip, n)| Step::Read { skip, n }),
        1 => (any::<usize>(), 1u8..=255).prop_map(|(at, mask)| Step::Rot { at, mask }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_steps_with_power_cuts_and_bit_rot_match_the_model(steps in proptest::collection::vec(step(), 1..200)) {
        run(&steps);
    }
}

/// Two cases proptest found (the first in a clean-clone CI run): a failed
/// write closes the write page, a delete takes the spare page, then an
/// append's failed write (or a power cut in the next delete's checkpoint)
/// closed that page too, and every later delete failed with "flash queue
/// is full" while appends waited for a freed page: the queue stopped for
/// good.
#[test]
fn deletes_go_on_after_failed_writes_closed_the_spare_page() {
    use Step::*;
    let a = |len| Append { len, fill: 0 };
    let cut = |ops, done| Cut {
        ops,
        done,
        from_end: false,
    };
    let d = |k| Delete { k };
    run(&[
        a(0),
        a(0),
        a(0),
        a(0),
        d(0),
        a(0),
        cut(6, 0),
        a(0),
        d(5),
        a(0),
        a(29),
        a(0),
        a(0),
        a(0),
        a(45),
        a(69),
        a(45),
        d(1),
        a(45),
        a(69),
        a(45),
        a(69),
        cut(1, 36),
        a(45),
        d(1),
        FailWrite {
            after: 1,
            complete: false,
        },
        a(0),
        d(1),
    ]);
    run(&[
        cut(0, 0),
        a(0),
        a(0),
        a(0),
        a(69),
        a(13),
        a(0),
        d(2),
        a(5),
        a(37),
        a(77),
        a(37),
        a(77),
        d(1),
        a(29),
        a(85),
        a(29),
        FailWrite {
            after: 0,
            complete: true,
        },
        cut(7, 1),
        a(85),
        d(1),
        d(1),
        d(1),
    ]);
}
