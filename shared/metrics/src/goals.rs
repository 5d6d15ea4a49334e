//! Goals (Plausible's word): what counts as a conversion on a site — a custom event by name, or
//! a page by path (a trailing `*` matches every path under it). A tenant keeps up to
//! [`MAX_GOALS`]; web analytics shows each goal's unique visitors and conversion rate (its
//! visitors over all visitors) for the range.

use pulse_core::error::ApiError;
use pulse_core::problem::FieldError;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Goals a tenant may keep.
pub const MAX_GOALS: usize = 20;
const MAX_GOAL_NAME: usize = 64;
const MAX_PATH: usize = 256;

/// One goal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Goal {
    /// What the dashboard calls it.
    pub name: String,
    #[serde(flatten)]
    pub target: Target,
}

/// What reaches a goal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// A custom event (or any metric) by name.
    Event(String),
    /// A page view of this path, or of every path under it with a trailing `*`.
    Path(String),
}

/// Parses `{"goals": [{"name": …, "event": …} | {"name": …, "path": …}]}`, every problem with
/// its pointer.
pub fn parse(body: &Value) -> Result<Vec<Goal>, ApiError> {
    let Some(list) = body.get("goals").and_then(Value::as_array) else {
        return Err(ApiError::invalid_field(
            &["goals"],
            "required: an array of goals, each {name, event} or {name, path}",
        ));
    };
    if list.len() > MAX_GOALS {
        return Err(ApiError::invalid_field(
            &["goals"],
            format!("at most {MAX_GOALS} goals"),
        ));
    }
    let mut errors = Vec::new();
    let mut goals: Vec<Goal> = Vec::new();
    for (i, g) in list.iter().enumerate() {
        let i = i.to_string();
        let at = |k: &str, detail: &str| FieldError::at(&["goals", i.as_str(), k], detail);
        let Some(obj) = g.as_object() else {
            errors.push(FieldError::at(&["goals", i.as_str()], "must be an object"));
            continue;
        };
        if let Some(k) = obj
            .keys()
            .find(|k| !matches!(k.as_str(), "name" | "event" | "path"))
        {
            errors.push(at(k, "unknown field; a goal has name and event or path"));
            continue;
        }
        let name = match obj.get("name").and_then(Value::as_str).map(str::trim) {
            Some(n)
                if (1..=MAX_GOAL_NAME).contains(&n.chars().count())
                    && !n.chars().any(char::is_control) =>
            {
                n.to_owned()
            }
            _ => {
                errors.push(at("name", "required: 1 to 64 printable characters"));
                continue;
            }
        };
        if goals.iter().any(|g| g.name == name) {
            errors.push(at("name", "another goal has this name"));
            continue;
        }
        let target = match (obj.get("event"), obj.get("path")) {
            (Some(Value::String(e)), None) => match pulse_ingest::events::check_name(e, 128) {
                Ok(()) => Target::Event(e.clone()),
                Err(why) => {
                    errors.push(at("event", why));
                    continue;
                }
            },
            (None, Some(Value::String(p))) => {
                let shaped = p.starts_with('/')
                    && p.len() <= MAX_PATH
                    && !p.chars().any(|c| c.is_control() || c.is_whitespace())
                    && !p.strip_suffix('*').unwrap_or(p).contains('*');
                if !shaped {
                    errors.push(at(
                        "path",
                        "a path from /, at most 256 characters, no spaces; a trailing * for every path under it",
                    ));
                    continue;
                }
                Target::Path(p.clone())
            }
            _ => {
                errors.push(at("event", "a goal has either an event (a name) or a path"));
                continue;
            }
        };
        goals.push(Goal { name, target });
    }
    if errors.is_empty() {
        Ok(goals)
    } else {
        Err(ApiError::Validation {
            detail: format!("{} problems with the goals", errors.len()),
            errors,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_and_paths_are_goals_and_round_trip_as_they_were_sent() {
        let body = json!({"goals": [{"name": "Signed up", "event": "signup"}, {"name": "Read the blog", "path": "/blog/*"}]});
        let goals = parse(&body).expect("valid");
        assert_eq!(goals[0].target, Target::Event("signup".into()));
        assert_eq!(goals[1].target, Target::Path("/blog/*".into()));
        assert_eq!(serde_json::to_value(&goals).expect("json"), body["goals"]);
    }

    #[test]
    fn each_bad_goal_is_refused_with_its_pointer() {
        let body = json!({"goals": [
            {"name": "", "event": "x"},
            {"name": "both", "event": "x", "path": "/"},
            {"name": "bad event", "event": "__totals__"},
            {"name": "bad path", "path": "no-slash"},
            {"name": "star inside", "path": "/a*/b"},
            {"name": "ok", "event": "ok"},
            {"name": "ok", "path": "/"},
            {"name": "extra", "event": "x", "color": "red"},
            7
        ]});
        let Err(ApiError::Validation { errors, .. }) = parse(&body) else {
            panic!("refused");
        };
        let pointers: Vec<&str> = errors.iter().map(|e| e.pointer.as_str()).collect();
        assert_eq!(
            pointers,
            [
                "#/goals/0/name",
                "#/goals/1/event",
                "#/goals/2/event",
                "#/goals/3/path",
                "#/goals/4/path",
                "#/goals/6/name",
                "#/goals/7/color",
                "#/goals/8",
            ]
        );
        assert!(parse(&json!({"goals": vec![json!({"name": "x", "event": "x"}); 21]})).is_err());
        assert!(parse(&json!({})).is_err());
        assert!(
            parse(&json!({"goals": [{"name": "é", "path": "/é"}, {"name": "ü*", "path": "/ü*"}]}))
                .is_ok()
        );
        assert_eq!(parse(&json!({"goals": []})).expect("none"), []);
    }
}
