//! Sets `KUBECTL_CANARY_COMMIT` for `--version`: the git commit the binary was built from,
//! or the one a source archive names in `KUBECTL_CANARY_COMMIT` (git is not needed:
//! without either, the version says so).

use std::path::PathBuf;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
        .filter(|text| !text.is_empty())
}

fn main() {
    println!("cargo:rerun-if-env-changed=KUBECTL_CANARY_COMMIT");
    let commit = std::env::var("KUBECTL_CANARY_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .or_else(|| {
            let commit = git(&["rev-parse", "--short=12", "HEAD"])?;
            // Build again when HEAD moves: the HEAD file (of this worktree) and the branch
            // it points at, loose or packed. Only files that exist: cargo reruns a build
            // script on every build while a file it watches is missing.
            let branch = git(&["symbolic-ref", "-q", "HEAD"]);
            let paths = ["HEAD", "packed-refs"].into_iter().chain(branch.as_deref());
            for path in paths {
                if let Some(file) = git(&["rev-parse", "--git-path", path])
                    && absolute(&file).exists()
                {
                    println!("cargo:rerun-if-changed={}", absolute(&file).display());
                }
            }
            Some(commit)
        })
        .unwrap_or_else(|| "unknown (built without git)".to_string());
    println!("cargo:rustc-env=KUBECTL_CANARY_COMMIT={commit}");
}

/// git prints paths relative to the working directory, which for a build script is the
/// package's directory.
fn absolute(path: &str) -> PathBuf {
    let path = PathBuf::from(path);
    if path.is_absolute() {
        path
    } else {
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default()).join(path)
    }
}
