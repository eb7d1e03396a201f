//! The commands that need no cluster: `completion`, `man` and the hidden `__complete`.

use std::io::Write;

use crate::cli::Command;
use crate::commands::{completion, man};
use crate::exit_code;

/// Runs `command` if it is one of the shell-integration commands; returns its exit code,
/// or `None` for every other command.
pub fn run(command: &Command) -> Option<i32> {
    Some(match command {
        Command::Completion(args) => {
            let mut out = std::io::stdout().lock();
            let code = completion::print_script(args.shell, &mut out);
            let _ = out.flush();
            code
        }
        Command::Complete(args) => {
            print!("{}", completion::candidates(&args.words));
            exit_code::OK
        }
        Command::Man(args) => match man::write_pages(&args.dir) {
            Ok(written) => {
                for path in written {
                    println!("{}", path.display());
                }
                exit_code::OK
            }
            Err(error) => {
                eprintln!(
                    "error: cannot write the man pages into {}: {error}",
                    args.dir.display()
                );
                exit_code::ERROR
            }
        },
        _ => return None,
    })
}
