//! Label and field selectors of lists and watches.

use std::collections::{BTreeMap, BTreeSet};

use kube::core::{Expression, Selector, SelectorExt};
use serde_json::Value;

use super::events::FieldLabels;
use super::status::ApiStatus;

/// Parsed label and field selectors of a list or watch.
#[derive(Debug, Default)]
pub(crate) struct Filter {
    labels: Option<Selector>,
    fields: Vec<(String, bool, String)>,
}

impl Filter {
    /// Parses `labelSelector` and `fieldSelector` (with the field labels the resource takes).
    pub fn parse(
        labels: Option<&str>,
        fields: Option<&str>,
        field_labels: FieldLabels,
    ) -> Result<Self, ApiStatus> {
        let labels = labels
            .filter(|s| !s.trim().is_empty())
            .map(parse_label_selector)
            .transpose()?;
        let mut parsed = Vec::new();
        for term in fields
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
        {
            let (key, equal, value) = if let Some((k, v)) = term.split_once("!=") {
                (k, false, v)
            } else if let Some((k, v)) = term.split_once("==") {
                (k, true, v)
            } else if let Some((k, v)) = term.split_once('=') {
                (k, true, v)
            } else {
                return Err(ApiStatus::bad_request(format!(
                    "invalid field selector {term:?}"
                )));
            };
            let Some(path) = field_labels.path(key.trim()) else {
                return Err(ApiStatus::bad_request(format!(
                    "field label not supported: {key}"
                )));
            };
            parsed.push((path, equal, value.trim().to_owned()));
        }
        Ok(Self {
            labels,
            fields: parsed,
        })
    }

    /// True when the object passes both selectors.
    pub fn matches(&self, object: &Value) -> bool {
        let labels_ok = self.labels.as_ref().is_none_or(|selector| {
            let labels: BTreeMap<String, String> = object
                .pointer("/metadata/labels")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                        .collect()
                })
                .unwrap_or_default();
            selector.matches(&labels)
        });
        labels_ok
            && self.fields.iter().all(|(key, equal, value)| {
                let actual = object
                    .pointer(&format!("/{}", key.replace('.', "/")))
                    .and_then(Value::as_str)
                    .unwrap_or("");
                (actual == value) == *equal
            })
    }
}

/// Parses a label selector string (`a=b,c!=d,e in (x,y),f notin (z),g,!h`).
fn parse_label_selector(text: &str) -> Result<Selector, ApiStatus> {
    let bad = || {
        ApiStatus::bad_request(format!(
            "unable to parse requirement: invalid label selector {text:?}"
        ))
    };
    let mut terms = Vec::new();
    let mut depth = 0;
    let mut current = String::new();
    for c in text.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                terms.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    terms.push(current);
    let mut expressions = Vec::new();
    for term in terms.iter().map(|t| t.trim()).filter(|t| !t.is_empty()) {
        let set = |rest: &str| -> Result<BTreeSet<String>, ApiStatus> {
            let inner = rest
                .trim()
                .strip_prefix('(')
                .and_then(|r| r.strip_suffix(')'))
                .ok_or_else(bad)?;
            Ok(inner
                .split(',')
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
                .collect())
        };
        let expression = if let Some((k, v)) = term.split_once("!=") {
            Expression::NotEqual(k.trim().into(), v.trim().into())
        } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
            Expression::Equal(k.trim().into(), v.trim().into())
        } else if let Some((k, rest)) = term.split_once(" notin ") {
            Expression::NotIn(k.trim().into(), set(rest)?)
        } else if let Some((k, rest)) = term.split_once(" in ") {
            Expression::In(k.trim().into(), set(rest)?)
        } else if let Some(k) = term.strip_prefix('!') {
            Expression::DoesNotExist(k.trim().into())
        } else if term
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
        {
            Expression::Exists(term.into())
        } else {
            return Err(bad());
        };
        expressions.push(expression);
    }
    Ok(expressions.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn label_selectors_parse_every_operator() {
        let filter = Filter::parse(
            Some("app=x,tier!=db,env in (a, b),zone notin (z),team,!legacy"),
            None,
            FieldLabels::Metadata,
        )
        .unwrap();
        let object = |labels: Value| json!({"metadata": {"labels": labels}});
        assert!(filter.matches(&object(
            json!({"app": "x", "tier": "web", "env": "a", "team": "t"})
        )));
        assert!(!filter.matches(&object(
            json!({"app": "x", "tier": "web", "env": "c", "team": "t"})
        )));
        assert!(!filter.matches(&object(
            json!({"app": "x", "env": "a", "team": "t", "legacy": "1"})
        )));
        assert!(Filter::parse(Some("a in b"), None, FieldLabels::Metadata).is_err());
        let fields = Filter::parse(None, Some("metadata.name=n1"), FieldLabels::Metadata).unwrap();
        assert!(fields.matches(&json!({"metadata": {"name": "n1"}})));
        assert!(!fields.matches(&json!({"metadata": {"name": "n2"}})));
        assert!(Filter::parse(None, Some("spec.x=1"), FieldLabels::Metadata).is_err());
    }
}
