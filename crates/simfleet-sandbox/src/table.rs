//! Server-side printing: `meta.k8s.io/v1` Tables built from printer columns, so that
//! `kubectl get` shows each resource's columns.

use jiff::Timestamp;
use serde_json::{Value, json};

use super::registry::{Column, ResourceDef};

/// Evaluates the JSONPath subset printer columns use: `.a.b`, `.a[0]`, and
/// `.a[?(@.k=="v")].b` filters. Returns the matching values.
pub(crate) fn json_path<'a>(object: &'a Value, path: &str) -> Vec<&'a Value> {
    let mut current = vec![object];
    let mut rest = path
        .trim()
        .trim_start_matches('{')
        .trim_end_matches('}')
        .trim_start_matches('$');
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            let key = &after[..end];
            current = current.into_iter().filter_map(|v| v.get(key)).collect();
            rest = &after[end..];
        } else if let Some(after) = rest.strip_prefix('[') {
            let Some(close) = find_close(after) else {
                return Vec::new();
            };
            let inner = &after[..close];
            rest = &after[close + 1..];
            if let Some(filter) = inner.strip_prefix("?(@.").and_then(|f| f.strip_suffix(')')) {
                let Some((key, expected)) = filter.split_once("==") else {
                    return Vec::new();
                };
                let expected = expected.trim().trim_matches('"').trim_matches('\'');
                current = current
                    .into_iter()
                    .filter_map(Value::as_array)
                    .flatten()
                    .filter(|item| item.get(key.trim()).and_then(Value::as_str) == Some(expected))
                    .collect();
            } else if inner == "*" {
                current = current
                    .into_iter()
                    .filter_map(Value::as_array)
                    .flatten()
                    .collect();
            } else if let Ok(index) = inner.parse::<usize>() {
                current = current.into_iter().filter_map(|v| v.get(index)).collect();
            } else {
                return Vec::new();
            }
        } else {
            return Vec::new();
        }
    }
    current
}

fn find_close(text: &str) -> Option<usize> {
    let mut depth = 0;
    for (i, c) in text.char_indices() {
        match c {
            '[' | '(' => depth += 1,
            ')' => depth -= 1,
            ']' if depth == 0 => return Some(i),
            ']' => depth -= 1,
            _ => {}
        }
    }
    None
}

/// A duration as kubectl shows ages: `45s`, `12m`, `5h`, `3d`.
pub(crate) fn human_age(since: Timestamp) -> String {
    let seconds = simfleet_core::clock::Clock::default()
        .now()
        .as_second()
        .saturating_sub(since.as_second())
        .max(0);
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 120 * 60 => format!("{}m", s / 60),
        s if s < 48 * 3600 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

fn cell(object: &Value, column: &Column) -> Value {
    let values = json_path(object, &column.json_path);
    let Some(first) = values.first() else {
        return Value::Null;
    };
    match column.kind.as_str() {
        "date" => first
            .as_str()
            .and_then(|t| t.parse::<Timestamp>().ok())
            .map_or(Value::Null, |t| json!(human_age(t))),
        "string" if values.len() > 1 => json!(
            values
                .iter()
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                .collect::<Vec<_>>()
                .join(",")
        ),
        _ => (*first).clone(),
    }
}

fn column_type(kind: &str) -> &str {
    match kind {
        "date" => "string",
        other => other,
    }
}

/// A Table of objects (a list) or of one object.
pub fn table(def: &ResourceDef, objects: &[Value], list_meta: Value) -> Value {
    let mut definitions = vec![
        json!({"name": "Name", "type": "string", "format": "name", "description": "Name must be unique within a namespace.", "priority": 0}),
    ];
    definitions.extend(def.columns.iter().map(|c| {
        json!({"name": c.name, "type": column_type(&c.kind), "format": "", "description": c.description, "priority": c.priority})
    }));
    let rows: Vec<Value> = objects
        .iter()
        .map(|object| {
            let mut cells = vec![
                object
                    .pointer("/metadata/name")
                    .cloned()
                    .unwrap_or(Value::Null),
            ];
            cells.extend(def.columns.iter().map(|c| cell(object, c)));
            json!({
                "cells": cells,
                "object": {
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": object.get("metadata").cloned().unwrap_or(json!({})),
                },
            })
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": definitions,
        "rows": rows,
    })
}

/// True when the client asked for a Table.
pub(crate) fn wants_table(accept: &str) -> bool {
    accept
        .split(',')
        .next()
        .is_some_and(|first| first.contains("as=Table"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_path_reads_fields_indexes_and_filters() {
        let object = json!({"status": {"conditions": [
            {"type": "Reconciling", "status": "False"},
            {"type": "Ready", "status": "True"}
        ], "counts": {"selected": 7}}, "spec": {"list": ["a", "b"]}});
        assert_eq!(json_path(&object, ".status.counts.selected"), [&json!(7)]);
        assert_eq!(
            json_path(&object, ".status.conditions[?(@.type==\"Ready\")].status"),
            [&json!("True")]
        );
        assert_eq!(json_path(&object, ".spec.list[1]"), [&json!("b")]);
        assert!(json_path(&object, ".status.missing").is_empty());
    }

    #[test]
    fn tables_carry_the_printer_columns() {
        let def = crate::registry::all(&simfleet_api::crds())
            .into_iter()
            .find(|d| d.kind == "SimGroup")
            .unwrap();
        let object = json!({"metadata": {"name": "g", "creationTimestamp": "2020-01-01T00:00:00Z"},
            "spec": {"state": "Paused"}, "status": {"counts": {"selected": 3, "inDesiredState": 1, "pending": 2}}});
        let table = table(&def, &[object], json!({"resourceVersion": "5"}));
        let names: Vec<&str> = table["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            &names[..6],
            ["Name", "State", "Selected", "In-State", "Pending", "Ready"]
        );
        let cells = &table["rows"][0]["cells"];
        assert_eq!(cells[0], "g");
        assert_eq!(cells[1], "Paused");
        assert_eq!(cells[2], 3);
        assert!(cells[5].is_null());
        assert!(
            cells
                .as_array()
                .unwrap()
                .last()
                .unwrap()
                .as_str()
                .unwrap()
                .ends_with('d')
        );
    }
}
