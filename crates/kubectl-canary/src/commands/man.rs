//! `kubectl-canary man DIR`: the man pages, generated from the clap command line (one for
//! the tool, one per command), so they say exactly what `--help` says.

use std::path::{Path, PathBuf};

use clap::CommandFactory;

use crate::cli::Cli;

/// Writes `kubectl-canary.1` and `kubectl-canary-COMMAND.1` for every visible command into
/// `dir` (created if missing); returns the files written.
pub fn write_pages(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let command = Cli::command()
        .name("kubectl-canary")
        .bin_name("kubectl-canary");
    let mut written = Vec::new();
    let mut write = |name: String, page: clap::Command| -> std::io::Result<()> {
        let path = dir.join(format!("{name}.1"));
        let mut bytes = Vec::new();
        clap_mangen::Man::new(page).render(&mut bytes)?;
        std::fs::write(&path, bytes)?;
        written.push(path);
        Ok(())
    };
    for sub in command.get_subcommands().filter(|c| !c.is_hide_set()) {
        let name = format!("kubectl-canary-{}", sub.get_name());
        // clap names are &'static without its "string" feature; a few bytes, once per run.
        let page = sub
            .clone()
            .name(&*name.clone().leak())
            .bin_name(format!("kubectl canary {}", sub.get_name()));
        write(name, page)?;
    }
    write("kubectl-canary".into(), command)?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_for_the_tool_and_each_command() {
        let dir = std::env::temp_dir().join(format!("kc-man-{}", std::process::id()));
        let written = write_pages(&dir).expect("pages are written");
        let names: Vec<String> = written
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        for expected in [
            "kubectl-canary.1",
            "kubectl-canary-start.1",
            "kubectl-canary-status.1",
            "kubectl-canary-report.1",
        ] {
            assert!(names.iter().any(|n| n == expected), "{names:?}");
        }
        assert!(!names.iter().any(|n| n.contains("__complete")), "{names:?}");
        let start = std::fs::read_to_string(dir.join("kubectl-canary-start.1")).unwrap();
        assert!(start.starts_with(".ie") || start.contains(".TH"), "{start}");
        assert!(start.contains("canary"), "{start}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
