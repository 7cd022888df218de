//! The docs hold what they promise: a short README, links that resolve inside the repository,
//! every shell block run by a named test, a troubleshooting page that lists every reason the
//! operator writes, no internal words in user docs, and a chart README that describes every
//! value.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every Markdown page a user or contributor reads, relative to the repository.
fn pages() -> Vec<String> {
    let mut pages = vec![
        "README.md".to_owned(),
        "charts/simfleet/README.md".to_owned(),
        "crates/simfleet-simulator/README.md".to_owned(),
    ];
    let mut dirs = vec![repo("docs")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                let relative = path.strip_prefix(repo("")).unwrap();
                pages.push(relative.to_string_lossy().into_owned());
            }
        }
    }
    pages.sort();
    pages
}

/// The pages for users (architecture.md is for contributors and may name the code's parts).
fn user_pages() -> Vec<String> {
    pages()
        .into_iter()
        .filter(|p| p != "docs/architecture.md")
        .collect()
}

/// The text outside fenced code blocks, line by line (code may show anything).
fn prose_lines(text: &str) -> Vec<&str> {
    let mut fenced = false;
    text.lines()
        .filter(|line| {
            if line.trim_start().starts_with("```") {
                fenced = !fenced;
                return false;
            }
            !fenced
        })
        .collect()
}

/// The targets of a page's Markdown links `[text](target)`, outside code.
fn links(text: &str) -> Vec<String> {
    let mut targets = Vec::new();
    for line in prose_lines(text) {
        // Code spans may hold brackets and parentheses that are not links.
        let without_code: String = line
            .split('`')
            .enumerate()
            .filter(|(i, _)| i % 2 == 0)
            .map(|(_, part)| part)
            .collect::<Vec<_>>()
            .join("");
        for piece in without_code.split("](").skip(1) {
            if let Some(end) = piece.find(')') {
                targets.push(piece[..end].to_owned());
            }
        }
    }
    targets
}

/// GitHub's anchor for a heading: lower case, spaces to hyphens, punctuation dropped.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

fn anchors(text: &str) -> BTreeSet<String> {
    prose_lines(text)
        .into_iter()
        .filter_map(|l| l.strip_prefix('#'))
        .map(|l| anchor(l.trim_start_matches('#')))
        .collect()
}

#[test]
fn the_readme_is_at_most_250_lines() {
    let lines = read("README.md").lines().count();
    assert!(lines <= 250, "README.md has {lines} lines; at most 250");
}

#[test]
fn every_link_resolves_inside_the_repository() {
    let mut broken = Vec::new();
    for page in pages() {
        let text = read(&page);
        let dir = repo(&page).parent().unwrap().to_owned();
        for target in links(&text) {
            if target.contains("://") || target.starts_with("mailto:") {
                broken.push(format!("{page}: {target} points outside the repository"));
                continue;
            }
            let (path, fragment) = target.split_once('#').unwrap_or((&target, ""));
            let file = if path.is_empty() {
                repo(&page)
            } else {
                dir.join(path)
            };
            let Ok(file) = file.canonicalize() else {
                broken.push(format!("{page}: {target}: no such file"));
                continue;
            };
            if !file.starts_with(repo("").canonicalize().unwrap()) {
                broken.push(format!("{page}: {target} leaves the repository"));
                continue;
            }
            if !fragment.is_empty() {
                let target_text = std::fs::read_to_string(&file).unwrap_or_default();
                if !anchors(&target_text).contains(fragment) {
                    broken.push(format!("{page}: {target}: no heading #{fragment}"));
                }
            }
        }
        for line in prose_lines(&text) {
            if line.contains("shared/") || line.contains("../shared") {
                broken.push(format!(
                    "{page}: names a file outside the repository: {line}"
                ));
            }
        }
    }
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}

/// Each ```sh block follows a comment naming the test that runs it, and that test reads the
/// page, so that no command in the docs goes untested.
#[test]
fn every_shell_block_is_run_by_the_test_it_names() {
    // The README's walkthrough is read through the shared runner.
    let runner = read("tests/common/walkthrough.rs") + &read("tests/common/doc_shell.rs");
    let mut unrun = Vec::new();
    for page in pages() {
        let text = read(&page);
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            if line.trim() != "```sh" {
                continue;
            }
            let marker = lines[..i]
                .iter()
                .rev()
                .find(|l| !l.trim().is_empty())
                .copied()
                .unwrap_or_default();
            let named: Vec<&str> = marker
                .split_whitespace()
                .filter(|w| w.starts_with("tests/"))
                .map(|w| w.trim_end_matches([',', ':', ')']))
                .collect();
            if !marker.starts_with("<!--") || named.is_empty() {
                unrun.push(format!(
                    "{page}:{}: a shell block without a comment naming its test",
                    i + 1
                ));
                continue;
            }
            for test in named {
                let path = repo(test);
                let sources: String = if path.is_dir() {
                    std::fs::read_dir(&path)
                        .unwrap()
                        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap_or_default())
                        .collect()
                } else {
                    std::fs::read_to_string(&path).unwrap_or_default()
                };
                let reads_page = sources.contains(&format!("\"{page}\""))
                    || sources.contains(&format!("/{page}\""))
                    || (sources.contains("walkthrough::")
                        && runner.contains(&format!("\"{page}\"")));
                if !reads_page {
                    unrun.push(format!("{page}:{}: {test} does not read {page}", i + 1));
                }
            }
        }
    }
    assert!(unrun.is_empty(), "{}", unrun.join("\n"));
}

/// The README's test command is what CI runs.
#[test]
fn ci_runs_the_readme_s_test_command() {
    let readme = read("README.md");
    let setup = readme
        .split("## Set-up")
        .nth(1)
        .and_then(|s| s.split("```sh\n").nth(1))
        .and_then(|s| s.split("\n```").next())
        .unwrap();
    let test_command = setup
        .lines()
        .nth(1)
        .unwrap()
        .split('#')
        .next()
        .unwrap()
        .trim();
    assert_eq!(test_command, "./scripts/test");
    let ci = read(".ci/run");
    assert!(
        ci.lines().any(|l| l.trim() == test_command),
        ".ci/run runs {test_command}"
    );
}

/// The reason literals of the operator's code: the CamelCase strings of its sources (tests
/// excluded), less the words that are not reasons.
fn reasons_in_code() -> BTreeSet<String> {
    // Words the operator writes that are not condition or event reasons: kinds, states, types
    // printed in Debug output, and a Kubernetes Status reason a unit test builds.
    const NOT_REASONS: &[&str] = &[
        "Active",
        "CarrierAccount",
        "CarrierCache",
        "DataQuota",
        "False",
        "Invalid",
        "Metrics",
        "Reconcile",
        "ResourceCollector",
        "Secret",
        "SimGroup",
        "True",
    ];
    let mut found = BTreeSet::new();
    let mut dirs = vec![repo("crates/simfleet-operator/src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if name.ends_with("_tests.rs") || name == "test_world.rs" || name == "fake_carrier.rs" {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for literal in text.split('"').skip(1).step_by(2) {
                let camel = literal.len() > 1
                    && literal.starts_with(|c: char| c.is_ascii_uppercase())
                    && literal.chars().all(|c| c.is_ascii_alphabetic())
                    && literal.chars().any(|c| c.is_ascii_lowercase());
                if camel && !NOT_REASONS.contains(&literal) {
                    found.insert(literal.to_owned());
                }
            }
        }
    }
    found
}

/// The reasons in the first column of the troubleshooting page's tables.
fn reasons_in_troubleshooting() -> BTreeSet<String> {
    let text = read("docs/troubleshooting.md");
    let mut found = BTreeSet::new();
    for line in text.lines().filter(|l| l.starts_with("| `")) {
        let first = line.split('|').nth(1).unwrap();
        for reason in first.split('`').skip(1).step_by(2) {
            found.insert(reason.to_owned());
        }
    }
    found
}

#[test]
fn the_troubleshooting_page_lists_every_reason_the_operator_writes_and_no_other() {
    let code = reasons_in_code();
    let page = reasons_in_troubleshooting();
    // Reasons of problem SIMs come from the CRD's enum, not from literals.
    let problem_sims: BTreeSet<String> = {
        let crd = simfleet::api::crds()
            .into_iter()
            .find(|c| c.spec.names.kind == "SimGroup")
            .unwrap();
        let schema = serde_json::to_value(&crd.spec.versions[0].schema).unwrap();
        schema["openAPIV3Schema"]["properties"]["status"]["properties"]["problemSims"]["items"]
            ["properties"]["reason"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    };
    let expected: BTreeSet<String> = code.union(&problem_sims).cloned().collect();
    let missing: Vec<&String> = expected.difference(&page).collect();
    let stale: Vec<&String> = page.difference(&expected).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "docs/troubleshooting.md lacks these reasons: {missing:?}; \
         it lists these, which the operator never writes: {stale:?}"
    );
}

/// Words of the code's insides that a user would not know.
#[test]
fn user_docs_use_words_a_user_knows() {
    let internal = ["journal", "ledger", "audit slice", "audit's slice"];
    let mut found = Vec::new();
    for page in user_pages() {
        for line in prose_lines(&read(&page)) {
            let lower = line.to_lowercase();
            for word in internal {
                if lower.contains(word) {
                    found.push(format!("{page}: {word:?} in: {line}"));
                }
            }
        }
    }
    assert!(found.is_empty(), "{}", found.join("\n"));
}

/// The leaves of values.yaml, as dotted paths with their values (an empty map or list is a
/// leaf: it is a value a user sets whole).
fn leaves(value: &Value, path: &str, out: &mut Vec<(String, Value)>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, child) in map {
                let child_path = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                leaves(child, &child_path, out);
            }
        }
        _ => out.push((path.to_owned(), value.clone())),
    }
}

/// The chart's README has a row for every value, with the default values.yaml holds, and the
/// values schema knows every value (and no other).
#[test]
fn the_chart_readme_describes_every_value_with_its_default() {
    let values: Value = serde_saphyr::from_str(&read("charts/simfleet/values.yaml")).unwrap();
    let schema: Value = serde_json::from_str(&read("charts/simfleet/values.schema.json")).unwrap();
    let readme = read("charts/simfleet/README.md");
    let section = readme
        .split("\n## Values\n")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("the chart's README has a Values section");
    let rows: Vec<(String, String)> = section
        .lines()
        .filter(|l| l.starts_with("| `"))
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            Some((
                cells.get(1)?.trim_matches('`').to_owned(),
                cells.get(2)?.to_string(),
            ))
        })
        .collect();
    let mut all = Vec::new();
    leaves(&values, "", &mut all);
    let mut problems = Vec::new();
    for (path, value) in &all {
        let shown = match value {
            Value::String(s) => format!("`\"{s}\"`"),
            other => format!("`{other}`"),
        };
        match rows.iter().find(|(p, _)| p == path) {
            None => problems.push(format!("{path}: no row in the chart's README")),
            Some((_, default)) if default != &shown => problems.push(format!(
                "{path}: the README says the default is {default}, values.yaml has {shown}"
            )),
            Some(_) => {}
        }
        // A free-form object in the schema (Kubernetes' own types, e.g. resources) takes any key.
        let mut node = &schema;
        for key in path.split('.') {
            if node["type"] == "object" && node.get("properties").is_none() {
                break;
            }
            node = &node["properties"][key];
        }
        if node.is_null() {
            problems.push(format!("{path}: not in values.schema.json"));
        }
    }
    for (path, _) in &rows {
        if !all.iter().any(|(p, _)| p == path) {
            problems.push(format!("{path}: in the README, not a value of values.yaml"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Every manifest of simfleet's kinds shown in the docs (```yaml blocks, and the ones a guide
/// writes with a here-document) is accepted by the CRDs' schemas and rules, as the API server
/// would accept it.
#[test]
fn every_manifest_shown_in_the_docs_is_valid() {
    let validator = simfleet::api::validation::ManifestValidator::new().unwrap();
    let mut checked = 0;
    let mut refused = Vec::new();
    for page in pages() {
        let text = read(&page);
        let mut blocks: Vec<String> = text
            .split("```yaml\n")
            .skip(1)
            .map(|rest| rest.split("\n```").next().unwrap().to_owned())
            .collect();
        blocks.extend(
            text.split("<<'EOF'\n")
                .skip(1)
                .map(|rest| rest.split("\nEOF").next().unwrap().to_owned()),
        );
        for block in blocks {
            let Ok(documents) = serde_saphyr::from_multiple::<Value>(&block) else {
                continue;
            };
            for mut document in documents {
                if document["apiVersion"] != simfleet::api::API_VERSION {
                    continue;
                }
                document["metadata"]["namespace"] = "docs".into();
                checked += 1;
                if let Err(err) = validator.parse(&document) {
                    refused.push(format!("{page}: {}: {err}", document["metadata"]["name"]));
                }
            }
        }
    }
    assert!(refused.is_empty(), "{}", refused.join("\n"));
    assert!(checked >= 3, "the docs show manifests: {checked} checked");
}
