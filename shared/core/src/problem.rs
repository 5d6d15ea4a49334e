//! RFC 9457 problem details: the body of every error response.

use serde::{Deserialize, Serialize};

/// Media type of a problem body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// A problem document (RFC 9457 §3). `type` is a URN naming the kind of problem; `errors`
/// lists each bad field of a validation problem with a JSON pointer into the request body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// Extension members (RFC 9457 §3.2), such as the ids a partial write stored.
    #[serde(flatten, default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub extensions: serde_json::Map<String, serde_json::Value>,
}

/// One invalid part of a request: where (a JSON pointer, RFC 6901, in URI fragment form as in
/// RFC 9457's example: `#/events/3/timestamp`) and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    pub pointer: String,
    pub detail: String,
}

impl FieldError {
    /// A field error at `path`, whose segments are escaped as RFC 6901 requires.
    pub fn at<S: AsRef<str>>(path: &[S], detail: impl Into<String>) -> Self {
        let mut pointer = String::from("#");
        for segment in path {
            pointer.push('/');
            pointer.push_str(&segment.as_ref().replace('~', "~0").replace('/', "~1"));
        }
        Self {
            pointer,
            detail: detail.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointer_segments_are_escaped() {
        let e = FieldError::at(&["events", "3", "tags", "a/b~c"], "too long");
        assert_eq!(e.pointer, "#/events/3/tags/a~1b~0c");
    }

    #[test]
    fn serialises_with_rfc_member_names_and_omits_empty_errors() {
        let p = Problem {
            kind: "urn:pulse:problem:not-found".into(),
            title: "Not Found".into(),
            status: 404,
            detail: "no such dashboard".into(),
            instance: None,
            errors: vec![],
            extensions: Default::default(),
        };
        let v = serde_json::to_value(&p).expect("serialises");
        assert_eq!(v["type"], "urn:pulse:problem:not-found");
        assert!(v.get("errors").is_none());
        assert!(v.get("instance").is_none());
    }
}
