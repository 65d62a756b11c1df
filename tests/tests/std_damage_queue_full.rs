//! Issue 17 item 3 (second sentence): a `track` the Client cannot queue
//! because the queue is full (`Overflow::RejectNew`) is not silent: its
//! receipt matches a notification saying so, so the documented wait loop
//! ("for note in notifications { if receipt.concerns(&note) ... }") ends.

use outbox_core::Overflow;
use outbox_std::{Client, Event, FlushMode, Notification, TrackError};

/// Seen failing before: the third receipt matched no notification at all
/// (its `seq` stayed `None`), so a caller waiting for news of it waited
/// forever.
#[test]
fn a_track_refused_for_a_full_queue_is_told_to_its_receipt() {
    let dir = tempfile::tempdir().unwrap();
    let never =
        |_: &outbox_std::BatchBody| -> Result<outbox_std::Response, outbox_std::UploadFailed> {
            Err(outbox_std::UploadFailed("offline".into()))
        };
    let client = Client::builder()
        .path(dir.path().join("q.db"))
        .uploader(never)
        .flush_mode(FlushMode::Manual)
        .configure(|c| c.max_queue_events(2).overflow(Overflow::RejectNew))
        .build()
        .unwrap();
    let notes = client.notifications();
    let kept: Vec<_> = (0..2)
        .map(|i| {
            client
                .track(Event::track(format!("e{i}")).user_id("u"))
                .unwrap()
        })
        .collect();
    let refused = client.track(Event::track("full").user_id("u")).unwrap();
    // Every track before it has been handled once a sync returns.
    client.sync().unwrap();
    let about: Vec<Notification> = notes.try_iter().filter(|n| refused.concerns(n)).collect();
    assert_eq!(about.len(), 1, "{about:?}");
    match &about[0] {
        Notification::Refused {
            message_id,
            error: TrackError::QueueFull,
            ..
        } => assert_eq!(message_id, refused.message_id(), "it names the event"),
        other => panic!("{other:?}"),
    }
    // It is about that event alone.
    for r in &kept {
        assert!(!r.concerns(&about[0]));
    }
    client.close().unwrap();
}
