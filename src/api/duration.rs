//! Durations written the way people write them in YAML: `30s`, `5m`, `1h30m`, `30d`.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use jiff::{SignedDuration, Span, SpanRelativeTo};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The schema pattern for durations: one or more `<digits><unit>` groups, units `d`, `h`, `m`, `s`.
pub const DURATION_PATTERN: &str = "^([0-9]+[dhms])+$";

/// Longest duration accepted anywhere in the API: ten years.
const MAX_SECONDS: i64 = 3650 * 24 * 3600;

/// A non-negative duration such as `90s`, `15m`, `1h30m` or `30d` (a day is 24 hours).
///
/// The text the user wrote is kept, so a manifest read and written back is unchanged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FriendlyDuration {
    text: String,
    duration: SignedDuration,
}

/// Why a duration string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// The text is not a sequence of `<digits><unit>` groups.
    #[error(
        "{0:?} is not a duration: write digits followed by a unit d, h, m or s, e.g. 30s, 15m, 1h30m, 30d"
    )]
    Format(String),
    /// The duration is longer than the API allows.
    #[error("{0:?} is too long: the longest accepted duration is 3650d")]
    TooLong(String),
}

impl FriendlyDuration {
    /// The duration as an exact length of time.
    pub fn as_duration(&self) -> SignedDuration {
        self.duration
    }

    /// The text as written in the manifest.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// True when `text` matches [`DURATION_PATTERN`] (kept in step with the schema pattern).
fn matches_pattern(text: &str) -> bool {
    let mut saw_digit = false;
    let mut groups = 0;
    for c in text.chars() {
        match c {
            '0'..='9' => saw_digit = true,
            'd' | 'h' | 'm' | 's' if saw_digit => {
                saw_digit = false;
                groups += 1;
            }
            _ => return false,
        }
    }
    groups > 0 && !saw_digit
}

impl FromStr for FriendlyDuration {
    type Err = DurationError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if !matches_pattern(text) {
            return Err(DurationError::Format(text.to_owned()));
        }
        // jiff's "friendly" parser reads `1h30m` and `30d`; the pattern check above keeps it to
        // the grammar the CRD schema accepts, so the API server and the operator agree.
        let span: Span = text
            .parse()
            .map_err(|_| DurationError::Format(text.to_owned()))?;
        let duration = span
            .to_duration(SpanRelativeTo::days_are_24_hours())
            .map_err(|_| DurationError::TooLong(text.to_owned()))?;
        if duration.as_secs() > MAX_SECONDS {
            return Err(DurationError::TooLong(text.to_owned()));
        }
        Ok(Self {
            text: text.to_owned(),
            duration,
        })
    }
}

impl fmt::Display for FriendlyDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for FriendlyDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for FriendlyDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for FriendlyDuration {
    fn schema_name() -> Cow<'static, str> {
        "FriendlyDuration".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": DURATION_PATTERN,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(text: &str) -> i64 {
        text.parse::<FriendlyDuration>()
            .unwrap()
            .as_duration()
            .as_secs()
    }

    #[test]
    fn reads_each_unit_and_combinations() {
        assert_eq!(secs("90s"), 90);
        assert_eq!(secs("15m"), 900);
        assert_eq!(secs("1h30m"), 5400);
        assert_eq!(secs("30d"), 30 * 86_400);
        assert_eq!(secs("1d12h"), 36 * 3600);
        assert_eq!(secs("0s"), 0);
    }

    #[test]
    fn refuses_what_the_schema_pattern_refuses() {
        for bad in [
            "", "30", "d", "1.5h", "-1h", "1 h", "PT1H", "1w", "1h ago", "1H", "h1",
        ] {
            assert!(
                matches!(
                    bad.parse::<FriendlyDuration>(),
                    Err(DurationError::Format(_))
                ),
                "{bad:?} should be refused"
            );
        }
    }

    #[test]
    fn refuses_more_than_ten_years() {
        assert!(matches!(
            "3651d".parse::<FriendlyDuration>(),
            Err(DurationError::TooLong(_))
        ));
        assert_eq!(secs("3650d"), MAX_SECONDS);
    }

    #[test]
    fn round_trips_the_text_as_written() {
        let d: FriendlyDuration = serde_json::from_str("\"1h30m\"").unwrap();
        assert_eq!(serde_json::to_string(&d).unwrap(), "\"1h30m\"");
    }
}
