//! Reading manifests: multi-document YAML files, and directories of them in kustomization order.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

/// One YAML document of a manifest file.
#[derive(Clone, Debug, PartialEq)]
pub struct Document {
    /// The file it came from.
    pub source: PathBuf,
    /// Its position among the file's non-empty documents, from 0.
    pub index: usize,
    /// The document as JSON.
    pub value: Value,
}

impl Document {
    /// `file#index`, for messages.
    pub fn location(&self) -> String {
        format!("{}#{}", self.source.display(), self.index)
    }
}

/// Why manifests could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The file or directory could not be read.
    #[error("reading {path}: {source}")]
    Io {
        /// What was being read.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The file is not valid YAML.
    #[error("{path} is not valid YAML: {message}")]
    Yaml {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A document is not a mapping with `apiVersion` and `kind`.
    #[error("{path}#{index}: not a Kubernetes object: {message}")]
    NotAnObject {
        /// The file.
        path: PathBuf,
        /// The document's index in the file.
        index: usize,
        /// What is missing.
        message: String,
    },
    /// A `kustomization.yaml` lists something that cannot be used.
    #[error("{path}: {message}")]
    Kustomization {
        /// The kustomization file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// File names kustomize recognises, in its order of preference.
const KUSTOMIZATION_FILES: [&str; 3] = ["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// The subset of a kustomization this reader follows.
#[derive(Deserialize)]
struct Kustomization {
    #[serde(default)]
    resources: Vec<String>,
}

/// Parses the documents of one YAML text; empty documents are skipped.
pub fn parse_documents(source: &Path, text: &str) -> Result<Vec<Document>, ManifestError> {
    let values: Vec<Value> =
        serde_saphyr::from_multiple(text).map_err(|err| ManifestError::Yaml {
            path: source.to_owned(),
            message: err.to_string(),
        })?;
    values
        .into_iter()
        .filter(|v| !v.is_null())
        .enumerate()
        .map(|(index, value)| {
            let missing: Vec<&str> = ["apiVersion", "kind"]
                .into_iter()
                .filter(|key| value.get(key).and_then(Value::as_str).is_none())
                .collect();
            if missing.is_empty() {
                Ok(Document {
                    source: source.to_owned(),
                    index,
                    value,
                })
            } else {
                Err(ManifestError::NotAnObject {
                    path: source.to_owned(),
                    index,
                    message: format!("set {}", missing.join(" and ")),
                })
            }
        })
        .collect()
}

/// The kustomization file of a directory, if it has one.
pub fn kustomization_in(dir: &Path) -> Option<PathBuf> {
    KUSTOMIZATION_FILES
        .iter()
        .map(|name| dir.join(name))
        .find(|p| p.is_file())
}

/// Whether a path is a file this reader takes (`.yaml`, `.yml`, `.json`).
pub fn is_manifest_file(path: &Path) -> bool {
    path.is_file()
        && path
            .extension()
            .is_some_and(|ext| ext == "yaml" || ext == "yml" || ext == "json")
}

/// Reads one file, or a directory: the resources its kustomization lists, in that order, or
/// else every `.yaml`, `.yml` and `.json` file in it, sorted by name.
pub fn read_path(path: &Path) -> Result<Vec<Document>, ManifestError> {
    let io = |source| ManifestError::Io {
        path: path.to_owned(),
        source,
    };
    if !path.is_dir() {
        let text = std::fs::read_to_string(path).map_err(io)?;
        return parse_documents(path, &text);
    }
    if let Some(kustomization) = kustomization_in(path) {
        return read_kustomization(&kustomization);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(io)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| is_manifest_file(p))
        .collect();
    files.sort();
    let mut documents = Vec::new();
    for file in files {
        documents.extend(read_path(&file)?);
    }
    Ok(documents)
}

/// The resources of a kustomization, in the order it lists them.
fn read_kustomization(file: &Path) -> Result<Vec<Document>, ManifestError> {
    let text = std::fs::read_to_string(file).map_err(|source| ManifestError::Io {
        path: file.to_owned(),
        source,
    })?;
    let kustomization: Kustomization =
        serde_saphyr::from_str(&text).map_err(|err| ManifestError::Yaml {
            path: file.to_owned(),
            message: err.to_string(),
        })?;
    let base = file.parent().unwrap_or(Path::new("."));
    let mut documents = Vec::new();
    for resource in kustomization.resources {
        if resource.contains("://") {
            return Err(ManifestError::Kustomization {
                path: file.to_owned(),
                message: format!("remote resource {resource:?} is not supported; list local files"),
            });
        }
        let path = base.join(&resource);
        if !path.exists() {
            return Err(ManifestError::Kustomization {
                path: file.to_owned(),
                message: format!("resource {resource:?} does not exist"),
            });
        }
        documents.extend(read_path(&path)?);
    }
    Ok(documents)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_document_and_skips_empty_ones() {
        let text = "---\napiVersion: v1\nkind: A\n---\n---\napiVersion: v1\nkind: B\n";
        let docs = parse_documents(Path::new("x.yaml"), text).unwrap();
        let kinds: Vec<_> = docs.iter().map(|d| d.value["kind"].clone()).collect();
        assert_eq!(kinds, ["A", "B"]);
        assert_eq!(docs[1].location(), "x.yaml#1");
    }

    #[test]
    fn refuses_a_document_without_kind() {
        let err =
            parse_documents(Path::new("x.yaml"), "apiVersion: v1\nmetadata: {}\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "x.yaml#0: not a Kubernetes object: set kind"
        );
    }

    #[test]
    fn refuses_duplicate_keys_and_bad_yaml_with_the_file_name() {
        let err = parse_documents(Path::new("d.yaml"), "kind: A\nkind: B\n").unwrap_err();
        assert!(
            err.to_string().starts_with("d.yaml is not valid YAML"),
            "{err}"
        );
        let err = parse_documents(Path::new("b.yaml"), "a: [1, 2\n").unwrap_err();
        assert!(
            err.to_string().starts_with("b.yaml is not valid YAML"),
            "{err}"
        );
    }
}
