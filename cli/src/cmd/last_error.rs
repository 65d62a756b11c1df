//! The last error of `send`/`flush`, kept beside the database so `status`
//! can show it (the database itself records no upload history).
//!
//! The file is `<db>.last-error`, one JSON object; a run that ends with an
//! empty queue removes it.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde_json::{json, Value};

/// The file beside `db`.
pub fn path_for(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_os_string();
    name.push(".last-error");
    PathBuf::from(name)
}

/// Records `message` from `command`; best effort (a failure to record must
/// not hide the error itself).
pub fn record(db: &Path, command: &str, message: &str) {
    if !db.is_file() {
        return;
    }
    let entry = json!({
        "at": humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        "command": command,
        "message": message,
    });
    let _ = std::fs::write(path_for(db), format!("{entry}\n"));
}

/// Forgets the last error (the queue was delivered).
pub fn clear(db: &Path) {
    let _ = std::fs::remove_file(path_for(db));
}

/// The recorded error, if any (an unreadable file counts as none).
pub fn read(db: &Path) -> Option<Value> {
    let text = std::fs::read_to_string(path_for(db)).ok()?;
    match serde_json::from_str::<Value>(text.trim()) {
        Ok(v @ Value::Object(_)) => Some(v),
        _ => None,
    }
}
