//! The release flags of `start` and `apply`, read: manifests (files, directories, standard
//! input) and patches (flags, files), each kept with where it came from for messages.

use std::io::Read;
use std::path::Path;

use canary_core::release::{Document, Patch, PatchType, ReleaseError, parse_documents, parse_yaml};

/// The name a path is shown by in messages and the record.
fn shown(path: &Path) -> String {
    if path == Path::new("-") {
        "(standard input)".to_string()
    } else {
        path.display().to_string()
    }
}

/// Reads a file, or standard input for `-`.
fn read_text(path: &Path) -> Result<String, ReleaseError> {
    let unreadable = |e: std::io::Error| ReleaseError::Unreadable {
        file: shown(path),
        message: e.to_string(),
    };
    if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(unreadable)?;
        Ok(text)
    } else {
        std::fs::read_to_string(path).map_err(unreadable)
    }
}

/// The documents of a manifest file (or standard input).
pub fn read_manifest(path: &Path) -> Result<Vec<Document>, ReleaseError> {
    parse_documents(&shown(path), &read_text(path)?)
}

/// The documents of files and directories (a directory's `*.yaml`, `*.yml` and `*.json`
/// files in name order, not recursively), in the order given.
pub fn read_manifests(paths: &[std::path::PathBuf]) -> Result<Vec<Document>, ReleaseError> {
    let mut documents = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(path)
                .map_err(|e| ReleaseError::Unreadable {
                    file: shown(path),
                    message: e.to_string(),
                })?
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|p| {
                    p.is_file()
                        && p.extension()
                            .and_then(|e| e.to_str())
                            .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
                })
                .collect();
            files.sort();
            for file in files {
                documents.extend(read_manifest(&file)?);
            }
        } else {
            documents.extend(read_manifest(path)?);
        }
    }
    Ok(documents)
}

/// The patches of `--patch` and `--patch-file`, flags first, each read as YAML or JSON.
pub fn read_patches(
    inline: &[String],
    files: &[std::path::PathBuf],
    patch_type: PatchType,
) -> Result<Vec<Patch>, ReleaseError> {
    let mut sources: Vec<(String, String)> = inline
        .iter()
        .map(|text| ("--patch".to_string(), text.clone()))
        .collect();
    for file in files {
        sources.push((shown(file), read_text(file)?));
    }
    sources
        .into_iter()
        .map(|(file, text)| {
            let body = parse_yaml(&text).map_err(|(line, message)| ReleaseError::Unparseable {
                file: file.clone(),
                line,
                message,
            })?;
            Ok(Patch {
                patch_type,
                body,
                file,
            })
        })
        .collect()
}
