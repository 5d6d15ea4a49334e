//! A tenant's settings (`GET`/`PUT /api/v1/settings`): what its dashboard shows money in.

use crate::ApiError;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The tenant-wide settings every user of the tenant sees.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    /// The ISO 4217 code revenue, order values and costs are shown in (`EUR`); none shows them
    /// as plain numbers. Orders keep the currency they were sent in; this names what their
    /// sums mean, it converts nothing.
    pub currency: Option<String>,
}

impl Settings {
    /// Parses `{"currency": "EUR" | null}` (an unknown field is refused, not ignored).
    pub fn parse(body: &Value) -> Result<Self, ApiError> {
        let object = body
            .as_object()
            .ok_or_else(|| ApiError::invalid_field::<&str>(&[], "a JSON object"))?;
        if let Some(k) = object.keys().find(|k| k.as_str() != "currency") {
            return Err(ApiError::invalid_field(
                &[k.as_str()],
                "unknown setting; the settings are: currency",
            ));
        }
        let currency = match object.get("currency") {
            None | Some(Value::Null) => None,
            Some(Value::String(code))
                if code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase()) =>
            {
                Some(code.clone())
            }
            Some(_) => {
                return Err(ApiError::invalid_field(
                    &["currency"],
                    "an ISO 4217 code of three capital letters, such as EUR, or null",
                ));
            }
        };
        Ok(Self { currency })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_currency_is_three_capital_letters_or_none_and_nothing_else_is_a_setting() {
        // Given bodies a client may send
        // Then a code or null is taken, and a bad code or an unknown setting is named
        assert_eq!(
            Settings::parse(&json!({"currency": "EUR"}))
                .expect("eur")
                .currency
                .as_deref(),
            Some("EUR")
        );
        assert_eq!(
            Settings::parse(&json!({"currency": null})).expect("null"),
            Settings::default()
        );
        for (body, field) in [
            (json!({"currency": "eur"}), "currency"),
            (json!({"currency": "EURO"}), "currency"),
            (json!({"currency": "€€€"}), "currency"),
            (json!({"currency": "ÉUR"}), "currency"),
            (json!({"currency": "E\u{0}R"}), "currency"),
            (json!({"currency": ["EUR"]}), "currency"),
            (json!({"currency": 978}), "currency"),
            (json!({"timezone": "UTC"}), "timezone"),
        ] {
            match Settings::parse(&body) {
                Err(ApiError::Validation { errors, .. }) => {
                    assert_eq!(errors[0].pointer, format!("#/{field}"), "{body}");
                }
                other => panic!("{body}: {other:?}"),
            }
        }
        // And a body that is no object is a 400 too
        assert!(matches!(
            Settings::parse(&json!(["EUR"])),
            Err(ApiError::Validation { .. })
        ));
    }
}
