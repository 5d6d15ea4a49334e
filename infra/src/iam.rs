//! What each function's IAM policy must grant, derived from the storage traits it takes: a
//! table in code of each trait's AWS actions (what its adapter calls) and of each function's
//! traits, checked against template.yaml's policies by the test below. A function granted an
//! action none of its traits needs, or missing one they need, fails it.

/// A resource as the test names it: a table (`AppTable`), an index (`AppTable/index/gsi1`),
/// a bucket's objects (`DeadLetterBucket/*`), a queue, or the WebSocket API's connections.
type Resource = &'static str;

/// Each storage or notification trait, with the `(resource, action)` pairs its adapter calls.
pub const TRAIT_ACTIONS: &[(&str, &[(Resource, &str)])] = &[
    (
        "TableProbe",
        &[
            ("EventsTable", "dynamodb:DescribeTable"),
            ("MetricsTable", "dynamodb:DescribeTable"),
            ("AppTable", "dynamodb:DescribeTable"),
        ],
    ),
    ("EventWriter", &[("EventsTable", "dynamodb:BatchWriteItem")]),
    // `DynamoEvents::with_claims`: an event id's claim, written conditionally, read on a race.
    (
        "EventClaims",
        &[
            ("AppTable", "dynamodb:PutItem"),
            ("AppTable", "dynamodb:GetItem"),
        ],
    ),
    ("EventReader", &[("EventsTable", "dynamodb:Query")]),
    // Unknown series read together, new ones claimed under the cap (conditional put, a count
    // kept with ADD, a claim over the cap released), the overflow counted.
    (
        "SeriesRegistry",
        &[
            ("MetricsTable", "dynamodb:BatchGetItem"),
            ("MetricsTable", "dynamodb:GetItem"),
            ("MetricsTable", "dynamodb:PutItem"),
            ("MetricsTable", "dynamodb:UpdateItem"),
            ("MetricsTable", "dynamodb:DeleteItem"),
        ],
    ),
    // Live minute buckets: read together, each written with a conditional put (re-read on a
    // lost race).
    (
        "BucketStore",
        &[
            ("MetricsTable", "dynamodb:BatchGetItem"),
            ("MetricsTable", "dynamodb:GetItem"),
            ("MetricsTable", "dynamodb:PutItem"),
        ],
    ),
    (
        "PendingWindows",
        &[
            ("MetricsTable", "dynamodb:UpdateItem"),
            ("MetricsTable", "dynamodb:Query"),
            ("MetricsTable", "dynamodb:DeleteItem"),
        ],
    ),
    // The import lease (conditional put, delete), then a batch read and batched or
    // conditional puts of buckets.
    (
        "HistoryWriter",
        &[
            ("MetricsTable", "dynamodb:BatchGetItem"),
            ("MetricsTable", "dynamodb:BatchWriteItem"),
            ("MetricsTable", "dynamodb:GetItem"),
            ("MetricsTable", "dynamodb:PutItem"),
            ("MetricsTable", "dynamodb:DeleteItem"),
        ],
    ),
    ("RollupBuckets", &[("MetricsTable", "dynamodb:Query")]),
    (
        "BucketWriter",
        &[
            ("MetricsTable", "dynamodb:PutItem"),
            ("MetricsTable", "dynamodb:BatchWriteItem"),
        ],
    ),
    ("Totals", &[("MetricsTable", "dynamodb:Query")]),
    ("SeriesCatalog", &[("MetricsTable", "dynamodb:Query")]),
    ("TrailStore", &[("MetricsTable", "dynamodb:Query")]),
    ("TrailWriter", &[("MetricsTable", "dynamodb:PutItem")]),
    ("VisitReader", &[("MetricsTable", "dynamodb:Query")]),
    ("VisitWriter", &[("MetricsTable", "dynamodb:PutItem")]),
    ("BreakdownReader", &[("MetricsTable", "dynamodb:Query")]),
    (
        "BreakdownWriter",
        &[("MetricsTable", "dynamodb:BatchWriteItem")],
    ),
    ("DefinitionStore", &[("AppTable", "dynamodb:Query")]),
    (
        "DefinitionWriter",
        &[
            ("AppTable", "dynamodb:PutItem"),
            ("AppTable", "dynamodb:DeleteItem"),
        ],
    ),
    (
        "ConnectionStore",
        &[
            ("AppTable", "dynamodb:GetItem"),
            ("AppTable", "dynamodb:PutItem"),
            ("AppTable", "dynamodb:DeleteItem"),
        ],
    ),
    (
        "TenantConnections",
        &[("AppTable/index/gsi1", "dynamodb:Query")],
    ),
    (
        "ConnectionPush",
        &[("WebSocketApi/@connections", "execute-api:ManageConnections")],
    ),
    (
        "CardSettings",
        &[
            ("AppTable", "dynamodb:GetItem"),
            ("AppTable", "dynamodb:PutItem"),
        ],
    ),
    (
        "GoalSettings",
        &[
            ("AppTable", "dynamodb:GetItem"),
            ("AppTable", "dynamodb:PutItem"),
        ],
    ),
    (
        "TenantSettings",
        &[
            ("AppTable", "dynamodb:GetItem"),
            ("AppTable", "dynamodb:PutItem"),
        ],
    ),
    ("SiteLookup", &[("AppTable", "dynamodb:GetItem")]),
    (
        "SiteStore",
        &[
            ("AppTable/index/gsi1", "dynamodb:Query"),
            ("AppTable", "dynamodb:PutItem"),
            ("AppTable", "dynamodb:DeleteItem"),
        ],
    ),
    (
        "TrackStore",
        &[
            ("AppTable", "dynamodb:GetItem"),
            ("AppTable", "dynamodb:PutItem"),
            ("AppTable", "dynamodb:UpdateItem"),
        ],
    ),
    ("KeyLookup", &[("AppTable", "dynamodb:GetItem")]),
    (
        "KeyStore",
        &[
            ("AppTable/index/gsi1", "dynamodb:Query"),
            ("AppTable", "dynamodb:PutItem"),
            ("AppTable", "dynamodb:DeleteItem"),
        ],
    ),
    ("DeadLetters", &[("DeadLetterBucket/*", "s3:PutObject")]),
    (
        "PushLater",
        &[
            ("LivePushQueue", "sqs:SendMessage"),
            ("LivePushQueue", "sqs:GetQueueUrl"),
        ],
    ),
    (
        "FitStore",
        &[
            ("AppTable", "dynamodb:GetItem"),
            ("AppTable", "dynamodb:Query"),
        ],
    ),
    // The fit with its version counted up in one update, then the day's accuracy record.
    (
        "FitWriter",
        &[
            ("AppTable", "dynamodb:UpdateItem"),
            ("AppTable", "dynamodb:PutItem"),
        ],
    ),
    (
        "RetrainJobs",
        &[
            ("AppTable", "dynamodb:PutItem"),
            ("AppTable", "dynamodb:GetItem"),
            ("AppTable", "dynamodb:Query"),
        ],
    ),
    (
        "ForecastTenants",
        &[
            ("AppTable", "dynamodb:PutItem"),
            ("AppTable", "dynamodb:Query"),
        ],
    ),
    (
        "DetectorStates",
        &[
            ("AppTable", "dynamodb:Query"),
            ("AppTable", "dynamodb:PutItem"),
        ],
    ),
    (
        "AnomalyLog",
        &[
            ("AppTable", "dynamodb:PutItem"),
            ("AppTable", "dynamodb:Query"),
        ],
    ),
    (
        "SealedNotices",
        &[
            ("DetectQueue", "sqs:SendMessage"),
            ("DetectQueue", "sqs:GetQueueUrl"),
        ],
    ),
    (
        "RetrainQueue",
        &[
            ("RetrainQueue", "sqs:SendMessage"),
            ("RetrainQueue", "sqs:GetQueueUrl"),
        ],
    ),
    // Pulse's record of its own requests (`pulse_http::selfmon`): events without claims.
    (
        "RequestRecorder",
        &[("EventsTable", "dynamodb:BatchWriteItem")],
    ),
];

/// Each function (its binary) with the traits its handler and `wire` take.
pub const FUNCTION_TRAITS: &[(&str, &[&str])] = &[
    (
        "api-health",
        &[
            "TableProbe",
            "RollupBuckets",
            "SeriesCatalog",
            "Totals",
            "BreakdownReader",
            "RequestRecorder",
        ],
    ),
    ("api-me", &[]),
    (
        "api-insights",
        &[
            "Totals",
            "FitStore",
            "FitWriter",
            "RetrainJobs",
            "ForecastTenants",
            "RetrainQueue",
            "DetectorStates",
            "AnomalyLog",
            "RequestRecorder",
        ],
    ),
    (
        "api-ingest",
        &[
            "EventWriter",
            "EventClaims",
            "DefinitionStore",
            "SeriesRegistry",
            "HistoryWriter",
            "TrailStore",
            "TrailWriter",
            "BreakdownWriter",
            "RequestRecorder",
        ],
    ),
    ("api-keys", &["KeyStore", "RequestRecorder"]),
    (
        "api-metric-definitions",
        &["DefinitionStore", "DefinitionWriter", "RequestRecorder"],
    ),
    (
        "api-query",
        &[
            "RollupBuckets",
            "SeriesCatalog",
            "Totals",
            "TrailStore",
            "BreakdownReader",
            "CardSettings",
            "GoalSettings",
            "TenantSettings",
            "DefinitionStore",
            "RequestRecorder",
        ],
    ),
    ("api-sites", &["SiteLookup", "SiteStore", "RequestRecorder"]),
    (
        "api-track",
        &["SiteLookup", "TrackStore", "EventWriter", "EventClaims"],
    ),
    ("authorizer", &["KeyLookup"]),
    (
        "job-rollup",
        &[
            "EventReader",
            "PendingWindows",
            "RollupBuckets",
            "BucketWriter",
            "SeriesRegistry",
            "BucketStore",
            "TrailWriter",
            "VisitReader",
            "VisitWriter",
            "BreakdownReader",
            "BreakdownWriter",
            "SealedNotices",
        ],
    ),
    ("job-detect", &["Totals", "DetectorStates", "AnomalyLog"]),
    (
        "job-retrain",
        &["Totals", "FitWriter", "RetrainJobs", "ForecastTenants"],
    ),
    (
        "stream-aggregator",
        &[
            "SeriesRegistry",
            "BucketStore",
            "PendingWindows",
            "RollupBuckets",
            "SeriesCatalog",
            "Totals",
            "ConnectionStore",
            "TenantConnections",
            "ConnectionPush",
            "DeadLetters",
            "PushLater",
        ],
    ),
    (
        "ws",
        &[
            "ConnectionStore",
            "ConnectionPush",
            "DefinitionStore",
            "RollupBuckets",
            "SeriesCatalog",
            "Totals",
        ],
    ),
];

#[cfg(test)]
mod tests {
    use super::*;
    use serde_yaml_ng::Value;
    use std::collections::{BTreeMap, BTreeSet};

    /// The test's name of a policy `Resource`: `!GetAtt X.Arn` is `X`, `!Sub "${X.Arn}/rest"`
    /// is `X/rest`, and the WebSocket API's connections ARN is `WebSocketApi/@connections`.
    fn resource_name(v: &Value) -> String {
        let text = match v {
            Value::Tagged(t) => t.value.as_str().unwrap_or_default().to_owned(),
            other => other.as_str().unwrap_or_default().to_owned(),
        };
        if text.contains("${WebSocketApi}") && text.contains("@connections") {
            return "WebSocketApi/@connections".into();
        }
        text.replace("${", "")
            .replace(".Arn}", "")
            .replace(".Arn", "")
    }

    fn granted(function: &Value) -> BTreeSet<(String, String)> {
        let mut out = BTreeSet::new();
        let policies = function["Properties"]["Policies"]
            .as_sequence()
            .cloned()
            .unwrap_or_default();
        for policy in policies {
            let statements = policy["Statement"]
                .as_sequence()
                .cloned()
                .unwrap_or_default();
            for st in statements {
                assert_eq!(st["Effect"].as_str(), Some("Allow"));
                let as_list = |v: &Value| match v {
                    Value::Sequence(s) => s.clone(),
                    other => vec![other.clone()],
                };
                for action in as_list(&st["Action"]) {
                    for resource in as_list(&st["Resource"]) {
                        out.insert((
                            resource_name(&resource),
                            action.as_str().unwrap_or_default().to_owned(),
                        ));
                    }
                }
            }
        }
        out
    }

    #[test]
    fn each_function_is_granted_exactly_the_actions_its_traits_need() {
        // Given template.yaml's functions and their policies
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
        let text = std::fs::read_to_string(path).expect("template.yaml");
        let template: Value = serde_yaml_ng::from_str(&text).expect("YAML");
        let actions: BTreeMap<&str, &[(Resource, &str)]> = TRAIT_ACTIONS.iter().copied().collect();
        let mut seen = BTreeSet::new();
        for (logical_id, resource) in template["Resources"].as_mapping().expect("resources") {
            if resource["Type"].as_str() != Some("AWS::Serverless::Function") {
                continue;
            }
            let binary = resource["Metadata"]["BuildProperties"]["Binary"]
                .as_str()
                .expect("a binary");
            let logical_id = logical_id.as_str().unwrap_or_default();
            // When the actions its traits need are gathered
            let (_, traits) = FUNCTION_TRAITS
                .iter()
                .find(|(b, _)| *b == binary)
                .unwrap_or_else(|| panic!("{binary} ({logical_id}) is not in FUNCTION_TRAITS"));
            let needed: BTreeSet<(String, String)> = traits
                .iter()
                .flat_map(|t| {
                    actions
                        .get(t)
                        .unwrap_or_else(|| panic!("{t} is not in TRAIT_ACTIONS"))
                        .iter()
                        .map(|(r, a)| ((*r).to_owned(), (*a).to_owned()))
                })
                .collect();
            // Then its policy grants exactly those
            let granted = granted(resource);
            let extra: Vec<_> = granted.difference(&needed).collect();
            let missing: Vec<_> = needed.difference(&granted).collect();
            assert!(
                extra.is_empty() && missing.is_empty(),
                "{logical_id} ({binary}): granted but not needed {extra:?}; needed but not granted {missing:?}"
            );
            seen.insert(binary.to_owned());
        }
        for (binary, _) in FUNCTION_TRAITS {
            assert!(
                seen.contains(*binary),
                "{binary} is not a function of template.yaml"
            );
        }
    }
}
