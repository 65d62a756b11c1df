//! What the process's environment says about where events come from, in
//! Segment's context fields: `os.name` always, `locale` and `timezone` when
//! the usual variables name them (as Segment's device SDKs fill them).

use serde_json::{json, Map, Value};

/// The context found through `var` (the environment, in production).
pub(crate) fn detect(var: impl Fn(&str) -> Option<String>) -> Map<String, Value> {
    let mut context = Map::new();
    context.insert("os".into(), json!({ "name": std::env::consts::OS }));
    let locale = ["LC_ALL", "LC_MESSAGES", "LANG"]
        .iter()
        .find_map(|k| var(k).filter(|v| !v.is_empty()))
        .and_then(|v| locale_tag(&v));
    if let Some(locale) = locale {
        context.insert("locale".into(), Value::String(locale));
    }
    if let Some(tz) = var("TZ").map(|t| t.trim_start_matches(':').to_string()) {
        if !tz.is_empty() {
            context.insert("timezone".into(), Value::String(tz));
        }
    }
    context
}

/// `de_DE.UTF-8@euro` → `de-DE`; `C` and `POSIX` name no locale.
fn locale_tag(raw: &str) -> Option<String> {
    let base = raw.split(['.', '@']).next().unwrap_or("");
    if base.is_empty() || base == "C" || base == "POSIX" {
        return None;
    }
    Some(base.replace('_', "-"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locale_and_timezone_when_known() {
        let env = |k: &str| match k {
            "LANG" => Some("de_DE.UTF-8".to_string()),
            "TZ" => Some(":Europe/Berlin".to_string()),
            _ => None,
        };
        let c = detect(env);
        assert_eq!(c["locale"], "de-DE");
        assert_eq!(c["timezone"], "Europe/Berlin");
        assert_eq!(c["os"]["name"], std::env::consts::OS);
        let bare = detect(|k| (k == "LANG").then(|| "C.UTF-8".to_string()));
        assert!(!bare.contains_key("locale") && !bare.contains_key("timezone"));
    }
}
