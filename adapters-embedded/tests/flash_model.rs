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
