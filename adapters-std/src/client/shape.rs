//! How an event becomes the bytes the queue stores.
//!
//! Shared by the handles (every `track`) and the worker (a `session_end`
//! it tracks on its own when a background outlasts the session timeout),
//! so an automatic event gets the same global context, properties and
//! size check as the caller's own.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::buffers::BufferPool;
use super::error::TrackError;
use crate::event::Event;

/// The builder's global context and properties and the event size limit.
#[derive(Debug)]
pub(crate) struct Shape {
    /// Merged into every event's `context` (the event's own keys win).
    pub(crate) context: Map<String, Value>,
    /// Merged into every event's `properties` (the event's own keys win).
    pub(crate) properties: Map<String, Value>,
    /// `max_event_bytes` of the configuration.
    pub(crate) max_event_bytes: usize,
    /// Where serialisation buffers come from (and go back to).
    pub(crate) buffers: Arc<BufferPool>,
}

impl Shape {
    /// The event as it will be stored: global context and properties merged
    /// in, checked, serialized.
    pub(crate) fn payload(&self, mut event: Event) -> Result<crate::Payload, TrackError> {
        event.apply_defaults(&self.context, &self.properties);
        let mut bytes = self.buffers.take();
        let message_id = event.write_payload(&mut bytes, self.max_event_bytes)?;
        Ok(crate::Payload { bytes, message_id })
    }
}
