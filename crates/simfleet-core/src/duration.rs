//! Durations written the way people write them in YAML: `30s`, `5m`, `1h30m`, `30d`.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use jiff::SignedDuration;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The schema pattern for durations: `<digits><unit>` groups with the units in the order d,
/// h, m, s, each at most once, with at most 4, 5, 6 and 7 digits. The digit bounds keep every
/// duration the schema accepts within what the operator can use (about 41 years at most), so
/// the API server and the operator never disagree on a duration.
pub const DURATION_PATTERN: &str = "^([0-9]{1,4}d)?([0-9]{1,5}h)?([0-9]{1,6}m)?([0-9]{1,7}s)?$";

/// Each unit, its length in seconds and its most digits (as in [`DURATION_PATTERN`]).
const UNITS: [(char, i64, usize); 4] =
    [('d', 86_400, 4), ('h', 3_600, 5), ('m', 60, 6), ('s', 1, 7)];

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
    /// The text is not the schema's `<digits><unit>` grammar.
    #[error(
        "{0:?} is not a duration: write digits followed by a unit d, h, m or s, each unit at most once and in that order, e.g. 30s, 15m, 1h30m, 30d (at most 9999d)"
    )]
    Format(String),
}

impl FriendlyDuration {
    /// The duration as an exact length of time.
    pub fn as_duration(&self) -> SignedDuration {
        self.duration
    }
}

/// The seconds `text` stands for, when it follows [`DURATION_PATTERN`] (kept in step with it).
fn seconds_of(text: &str) -> Option<i64> {
    let mut rest = text;
    let mut seconds = 0i64;
    let mut units = UNITS.iter();
    while !rest.is_empty() {
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        let unit = rest[digits..].chars().next()?;
        let &(_, length, most) = units.by_ref().find(|(u, ..)| *u == unit)?;
        if digits == 0 || digits > most {
            return None;
        }
        seconds += rest[..digits].parse::<i64>().ok()? * length;
        rest = &rest[digits + 1..];
    }
    (!text.is_empty()).then_some(seconds)
}

impl FromStr for FriendlyDuration {
    type Err = DurationError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let seconds = seconds_of(text).ok_or_else(|| DurationError::Format(text.to_owned()))?;
        Ok(Self {
            text: text.to_owned(),
            duration: SignedDuration::from_secs(seconds),
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
        // The longest text the pattern admits (`9999d99999h999999m9999999s`); a bound also keeps
        // the API server's CEL cost estimate of rules that read the field small.
        json_schema!({
            "type": "string",
            "minLength": 2,
            "maxLength": 26,
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
        let pattern = regex_lite(DURATION_PATTERN);
        for bad in [
            "",
            "30",
            "d",
            "1.5h",
            "-1h",
            "1 h",
            "PT1H",
            "1w",
            "1h ago",
            "1H",
            "h1",
            "30m1h",
            "1d1d",
            "10000d",
            "99999d",
            "123456h",
            "1234567m",
            "12345678s",
        ] {
            assert!(
                matches!(
                    bad.parse::<FriendlyDuration>(),
                    Err(DurationError::Format(_))
                ),
                "{bad:?} should be refused"
            );
            assert!(
                bad.len() < 2 || !pattern(bad),
                "the schema refuses {bad:?} too"
            );
        }
        for good in [
            "9999d99999h999999m9999999s",
            "0s",
            "1d12h",
            "3650d",
            "45m30s",
        ] {
            assert!(good.parse::<FriendlyDuration>().is_ok(), "{good:?}");
            assert!(pattern(good), "the schema accepts {good:?} too");
        }
    }

    /// The schema pattern as a matcher (the API server's regex semantics for this pattern).
    fn regex_lite(pattern: &str) -> impl Fn(&str) -> bool {
        let schema = serde_json::json!({"type": "string", "pattern": pattern});
        let validator = jsonschema::validator_for(&schema).unwrap();
        move |text| validator.is_valid(&serde_json::json!(text))
    }

    #[test]
    fn the_longest_duration_the_schema_accepts_is_about_41_years() {
        let longest = secs("9999d99999h999999m9999999s");
        assert_eq!(
            longest,
            9999 * 86_400 + 99_999 * 3600 + 999_999 * 60 + 9_999_999
        );
        assert!(longest < 42 * 365 * 86_400);
    }

    #[test]
    fn round_trips_the_text_as_written() {
        let d: FriendlyDuration = serde_json::from_str("\"1h30m\"").unwrap();
        assert_eq!(serde_json::to_string(&d).unwrap(), "\"1h30m\"");
    }
}
