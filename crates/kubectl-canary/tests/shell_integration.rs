//! Shell and kubectl integration, with the real programs: the completion scripts load in
//! bash, zsh and fish and complete the commands; kubectl itself completes `kubectl canary`
//! through kubectl_complete-canary; the man pages render without warnings; `--version`
//! names the commit; the krew manifest written by scripts/release-archives names the
//! archive it built, with its sha256.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::BIN;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kc-shell-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {program} (scripts/ensure-test-tools installs it): {e}")
        })
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Writes `completion SHELL` into `dir`; returns the file.
fn script(dir: &Path, shell: &str, file: &str) -> PathBuf {
    let text = stdout(&run(BIN, &["completion", shell]));
    let path = dir.join(file);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn bash_loads_the_completion_and_completes_commands() {
    let dir = scratch("bash");
    let path = script(&dir, "bash", "kubectl-canary.bash");
    stdout(&run("bash", &["-n", path.to_str().unwrap()]));
    let words = stdout(&run(
        "bash",
        &[
            "-c",
            &format!(
                "source {}; COMP_WORDS=(kubectl-canary st); COMP_CWORD=1; COMP_LINE='kubectl-canary st'; \
                 COMP_POINT=${{#COMP_LINE}}; \
                 function=$(complete -p kubectl-canary | sed 's/.*-F \\([^ ]*\\).*/\\1/'); \
                 \"$function\" kubectl-canary st kubectl-canary; echo \"${{COMPREPLY[@]}}\"",
                path.display()
            ),
        ],
    ));
    assert_eq!(words.trim(), "start status", "{words}");
}

#[test]
fn zsh_loads_the_completion() {
    let dir = scratch("zsh");
    let path = script(&dir, "zsh", "_kubectl-canary");
    stdout(&run("zsh", &["-n", path.to_str().unwrap()]));
    // Loaded the way zsh loads completion functions: from fpath, by compinit.
    let loaded = stdout(&run(
        "zsh",
        &[
            "-f",
            "-c",
            &format!(
                "fpath=({} $fpath); autoload -U compinit; compinit -u -D; autoload -U _kubectl-canary; \
                 whence -w _kubectl-canary; echo ${{_comps[kubectl-canary]}}",
                dir.display()
            ),
        ],
    ));
    assert!(loaded.contains("_kubectl-canary: function"), "{loaded}");
    assert!(loaded.trim_end().ends_with("_kubectl-canary"), "{loaded}");
}

#[test]
fn fish_loads_the_completion_and_completes_commands() {
    let dir = scratch("fish");
    let path = script(&dir, "fish", "kubectl-canary.fish");
    stdout(&run("fish", &["--no-execute", path.to_str().unwrap()]));
    let words = stdout(&run(
        "fish",
        &[
            "--no-config",
            "-c",
            &format!("source {}; complete -C 'kubectl-canary st'", path.display()),
        ],
    ));
    let names: Vec<&str> = words
        .lines()
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    assert_eq!(names, ["start", "status"], "{words}");
}

#[test]
fn kubectl_completes_the_plugin_through_kubectl_complete_canary() {
    let dir = scratch("kubectl");
    std::os::unix::fs::symlink(BIN, dir.join("kubectl-canary")).unwrap();
    let plugin = script(&dir, "kubectl-plugin", "kubectl_complete-canary");
    stdout(&run("sh", &["-n", plugin.to_str().unwrap()]));
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&plugin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let complete = |words: &[&str]| {
        let output = Command::new("kubectl")
            .arg("__complete")
            .arg("canary")
            .args(words)
            .env("PATH", &path)
            .output()
            .expect("kubectl runs");
        stdout(&output)
    };
    let commands = complete(&["st"]);
    assert!(
        commands.starts_with("start\t") && commands.contains("\nstatus\t"),
        "{commands}"
    );
    assert!(commands.trim_end().ends_with(":4"), "{commands}");
    let modes = complete(&["start", "deploy/web", "--mode", ""]);
    assert!(
        modes.contains("surge\t") && modes.contains("replace\t"),
        "{modes}"
    );
}

#[test]
fn the_man_pages_render_without_warnings() {
    let dir = scratch("man");
    let listed = stdout(&run(BIN, &["man", dir.to_str().unwrap()]));
    assert!(listed.lines().count() >= 10, "{listed}");
    for page in [
        "kubectl-canary.1",
        "kubectl-canary-start.1",
        "kubectl-canary-report.1",
    ] {
        let output = run(
            "groff",
            &[
                "-man",
                "-Tutf8",
                "-ww",
                "-z",
                dir.join(page).to_str().unwrap(),
            ],
        );
        assert!(
            output.status.success() && output.stderr.is_empty(),
            "{page}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let start = stdout(&run(
        "groff",
        &[
            "-man",
            "-Tutf8",
            dir.join("kubectl-canary-start.1").to_str().unwrap(),
        ],
    ));
    assert!(
        start.contains("--canary") || start.contains("‐‐canary"),
        "{start}"
    );
}

#[test]
fn version_names_the_commit() {
    let version = stdout(&run(BIN, &["--version"]));
    let manifest_dir = env!("CARGO_MANIFEST_DIR");
    let head = Command::new("git")
        .args(["-C", manifest_dir, "rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let expected = match head {
        Some(commit) => format!("(commit {commit})"),
        // A source archive without git: says so instead of a commit.
        None => "(commit unknown (built without git))".to_string(),
    };
    assert!(
        version.starts_with(&format!("kubectl-canary {}", env!("CARGO_PKG_VERSION")))
            && version.trim_end().ends_with(&expected),
        "{version} (expected {expected})"
    );
}

#[test]
fn the_krew_manifest_names_the_archive_built_with_its_sha256() {
    let out = scratch("krew");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let status = Command::new(root.join("scripts/release-archives"))
        .args([
            "--bin",
            BIN,
            "--out",
            out.to_str().unwrap(),
            "--version",
            "v9.9.9",
        ])
        .status()
        .expect("scripts/release-archives runs");
    assert!(status.success());
    let manifest: serde_json::Value = serde_saphyr::from_str(
        &std::fs::read_to_string(out.join("canary.yaml")).expect("the manifest"),
    )
    .expect("the manifest is YAML");
    assert_eq!(manifest["kind"], "Plugin");
    assert_eq!(manifest["metadata"]["name"], "canary");
    assert_eq!(manifest["spec"]["version"], "v9.9.9");
    let platforms = manifest["spec"]["platforms"].as_array().expect("platforms");
    assert_eq!(platforms.len(), 1);
    let platform = &platforms[0];
    let uri = platform["uri"].as_str().unwrap();
    let file = uri.rsplit('/').next().unwrap();
    assert!(
        file.starts_with("kubectl-canary_v9.9.9_") && file.ends_with(".tar.gz"),
        "{uri}"
    );
    let archive = out.join(file);
    let sum = stdout(&run("sha256sum", &[archive.to_str().unwrap()]));
    assert_eq!(
        platform["sha256"].as_str().unwrap(),
        sum.split_whitespace().next().unwrap(),
        "the manifest's sha256 is the archive's"
    );
    let listing = stdout(&run("tar", &["-tzf", archive.to_str().unwrap()]));
    for entry in [
        "./kubectl-canary",
        "./kubectl_complete-canary",
        "./completions/kubectl-canary.bash",
        "./man/kubectl-canary.1",
    ] {
        assert!(listing.lines().any(|l| l == entry), "{entry} in\n{listing}");
    }
    assert_eq!(platform["bin"], "kubectl-canary");
    // The binary in the archive is the one packaged.
    let unpacked = scratch("krew-unpacked");
    stdout(&run(
        "tar",
        &[
            "-xzf",
            archive.to_str().unwrap(),
            "-C",
            unpacked.to_str().unwrap(),
        ],
    ));
    assert_eq!(
        std::fs::read(unpacked.join("kubectl-canary")).unwrap(),
        std::fs::read(BIN).unwrap()
    );
    // A debug binary is hundreds of megabytes: nothing of it stays behind.
    std::fs::remove_dir_all(&out).ok();
    std::fs::remove_dir_all(&unpacked).ok();
}
