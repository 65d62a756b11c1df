//! SQLite store, HTTP transport and threaded Client for outbox
