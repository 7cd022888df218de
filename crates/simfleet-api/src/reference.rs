//! The API reference (`docs/reference/`), rendered from the CRDs themselves: every field with
//! its type, default, bounds and description, so that the reference cannot say what the
//! schema does not.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::Value;

/// The command that regenerates the reference (named in every file it writes).
pub const REGENERATE: &str = "cargo run -- crd --reference-dir docs/reference";

/// Every page of the reference, as (file name, Markdown): the index and one page per kind.
pub fn reference_pages(crds: &[CustomResourceDefinition]) -> Vec<(String, String)> {
    let mut pages = vec![("README.md".to_owned(), reference_index(crds))];
    for crd in crds {
        pages.push((reference_file_name(crd), reference_markdown(crd)));
    }
    pages
}

/// File name, under `docs/reference/`, of a kind's page (e.g. `simgroup.md`).
pub fn reference_file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}.md", crd.spec.names.kind.to_lowercase())
}

/// The index page (`docs/reference/README.md`): one line per kind.
pub fn reference_index(crds: &[CustomResourceDefinition]) -> String {
    let mut out = String::from("# API reference\n\n");
    out.push_str(&format!(
        "Generated from the CRDs by `{REGENERATE}`; a test fails when it and the code disagree.\n\n"
    ));
    for crd in crds {
        let names = &crd.spec.names;
        out.push_str(&format!(
            "- [{}]({}) (`{}`): {}\n",
            names.kind,
            reference_file_name(crd),
            names.short_names.clone().unwrap_or_default().join("`, `"),
            first_sentence(&root_schema(crd)["description"])
        ));
    }
    out
}

/// One kind's page: its names, printer columns, and a table per top-level part (spec, status).
pub fn reference_markdown(crd: &CustomResourceDefinition) -> String {
    let names = &crd.spec.names;
    let version = crd
        .spec
        .versions
        .first()
        .map(|v| v.name.as_str())
        .unwrap_or("");
    let root = root_schema(crd);
    let mut out = format!("# {}\n\n", names.kind);
    out.push_str(&format!(
        "`{}/{}`, {}; `kubectl get {}`{}. {}\n\n",
        crd.spec.group,
        version,
        crd.spec.scope.to_lowercase(),
        names.plural,
        names
            .short_names
            .as_ref()
            .map(|s| format!(" (short name `{}`)", s.join("`, `")))
            .unwrap_or_default(),
        one_line(&root["description"])
    ));
    out.push_str(&format!(
        "Generated from the CRD by `{REGENERATE}`; do not edit by hand. \
         [All kinds](README.md).\n\n"
    ));
    if let Some(columns) = crd
        .spec
        .versions
        .first()
        .and_then(|v| v.additional_printer_columns.as_ref())
    {
        out.push_str("## Columns of `kubectl get`\n\n| column | from | shown |\n|---|---|---|\n");
        for c in columns {
            out.push_str(&format!(
                "| {} | `{}` | {} |\n",
                c.name,
                c.json_path,
                if c.priority.unwrap_or(0) > 0 {
                    "with `-o wide`"
                } else {
                    "always"
                }
            ));
        }
        out.push('\n');
    }
    for part in ["spec", "status"] {
        let Some(schema) = root["properties"].get(part) else {
            continue;
        };
        out.push_str(&format!(
            "## `{part}`\n\n| field | type | default | bounds | description |\n|---|---|---|---|---|\n"
        ));
        let mut rules = Vec::new();
        rows(schema, part, false, &mut out, &mut rules);
        out.push('\n');
        if !rules.is_empty() {
            out.push_str(&format!(
                "Rules the API server checks on `{part}` (CEL), each with the message it gives:\n\n\
                 | field | rule | message |\n|---|---|---|\n"
            ));
            out.push_str(&rules.concat());
            out.push('\n');
        }
    }
    out
}

fn root_schema(crd: &CustomResourceDefinition) -> Value {
    crd.spec
        .versions
        .first()
        .and_then(|v| v.schema.as_ref())
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .map(|s| serde_json::to_value(s).expect("a schema serialises"))
        .unwrap_or(Value::Null)
}

/// Appends a row for every field under `schema` (depth first, in the schema's order), and the
/// CEL rules on the way to `rules`.
fn rows(schema: &Value, path: &str, required: bool, out: &mut String, rules: &mut Vec<String>) {
    out.push_str(&format!(
        "| `{path}` | {} | {} | {} | {} |\n",
        type_of(schema, required),
        schema
            .get("default")
            .map(|d| format!("`{}`", cell(&d.to_string())))
            .unwrap_or_default(),
        bounds(schema),
        cell(&one_line(&schema["description"]))
    ));
    push_rules(schema, path, rules);
    children(schema, path, out, rules);
    // The fields of a list's items, as `path[].field`.
    let items = &schema["items"];
    if items["properties"].is_object() {
        push_rules(items, &format!("{path}[]"), rules);
        children(items, &format!("{path}[]"), out, rules);
    }
}

/// The rows of an object's properties.
fn children(schema: &Value, path: &str, out: &mut String, rules: &mut Vec<String>) {
    let required: Vec<&str> = schema["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    for (name, child) in schema["properties"].as_object().into_iter().flatten() {
        rows(
            child,
            &format!("{path}.{name}"),
            required.contains(&name.as_str()),
            out,
            rules,
        );
    }
}

/// A row per CEL rule of `schema`: the rule and the message the API server gives.
fn push_rules(schema: &Value, path: &str, rules: &mut Vec<String>) {
    for rule in schema["x-kubernetes-validations"]
        .as_array()
        .into_iter()
        .flatten()
    {
        rules.push(format!(
            "| `{path}` | `{}` | {} |\n",
            cell(&one_line(&rule["rule"])),
            cell(&one_line(&rule["message"]))
        ));
    }
}

/// `string`, `integer (int64)`, `array of string`, `map of string to string`, ... with
/// `required` when the parent requires it.
fn type_of(schema: &Value, required: bool) -> String {
    let base = |s: &Value| -> String {
        let mut t = s["type"].as_str().unwrap_or("any").to_owned();
        if s.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) {
            t = "integer or string".into();
        }
        if let Some(f) = s["format"].as_str() {
            t = format!("{t} ({f})");
        }
        t
    };
    let mut t = match schema["type"].as_str() {
        Some("array") => format!("array of {}", base(&schema["items"])),
        Some("object") if schema["additionalProperties"].is_object() => {
            format!("map of string to {}", base(&schema["additionalProperties"]))
        }
        _ => base(schema),
    };
    if schema["nullable"] == Value::Bool(true) {
        t.push_str(", may be null");
    }
    if required {
        t.push_str(", **required**");
    }
    t
}

/// The schema's bounds in words: enum, range, lengths, sizes, pattern.
fn bounds(schema: &Value) -> String {
    let mut parts = Vec::new();
    let num = |k: &str| schema.get(k).and_then(Value::as_f64).map(number);
    if let Some(values) = schema["enum"].as_array() {
        let values: Vec<String> = values
            .iter()
            .map(|v| {
                format!(
                    "`{}`",
                    v.as_str().map_or_else(|| v.to_string(), str::to_owned)
                )
            })
            .collect();
        parts.push(format!("one of {}", values.join(", ")));
    }
    let exclusive = |k: &str| schema[k] == Value::Bool(true);
    match (num("minimum"), num("maximum")) {
        (Some(lo), Some(hi)) => parts.push(format!(
            "{lo} {} value {} {hi}",
            if exclusive("exclusiveMinimum") {
                "<"
            } else {
                "≤"
            },
            if exclusive("exclusiveMaximum") {
                "<"
            } else {
                "≤"
            },
        )),
        (Some(lo), None) => parts.push(format!(
            "{} {lo}",
            if exclusive("exclusiveMinimum") {
                ">"
            } else {
                "≥"
            }
        )),
        (None, Some(hi)) => parts.push(format!(
            "{} {hi}",
            if exclusive("exclusiveMaximum") {
                "<"
            } else {
                "≤"
            }
        )),
        (None, None) => {}
    }
    let range = |lo: Option<String>, hi: Option<String>, unit: &str| match (lo, hi) {
        (Some(lo), Some(hi)) => Some(format!("{lo} to {hi} {unit}")),
        (Some(lo), None) => Some(format!("at least {lo} {unit}")),
        (None, Some(hi)) => Some(format!("at most {hi} {unit}")),
        (None, None) => None,
    };
    parts.extend(range(num("minLength"), num("maxLength"), "characters"));
    parts.extend(range(num("minItems"), num("maxItems"), "items"));
    parts.extend(range(num("minProperties"), num("maxProperties"), "entries"));
    if schema["uniqueItems"] == Value::Bool(true) {
        parts.push("no repeats".into());
    }
    if let Some(p) = schema["pattern"].as_str() {
        parts.push(format!("matches `{p}`"));
    }
    for (key, word) in [
        ("items", "each item"),
        ("additionalProperties", "each value"),
    ] {
        let inner = &schema[key];
        if inner.is_object() && !inner["properties"].is_object() {
            let b = bounds(inner);
            if !b.is_empty() {
                parts.push(format!("{word}: {b}"));
            }
        }
    }
    cell(&parts.join("; "))
}

/// A bound as people write it: `10000`, `0.01`, `9007199254740992`.
fn number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e16 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

fn one_line(text: &Value) -> String {
    text.as_str()
        .unwrap_or("")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn first_sentence(text: &Value) -> String {
    let line = one_line(text);
    match line.find(". ") {
        Some(end) => line[..=end].to_owned(),
        None => line,
    }
}

/// Text safe inside a Markdown table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}
