//! The `longwave` command line: `process`, `analyze`, `generate` and `demo` on local files.
//! Errors become one line on stderr and a non-zero exit code; anyhow lives only here.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    match cli::run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // One line: the chain of causes joined, so scripts can grep it.
            let mut message = error.to_string();
            for cause in error.chain().skip(1) {
                let cause = cause.to_string();
                if !message.to_lowercase().contains(&cause.to_lowercase()) {
                    message.push_str(": ");
                    message.push_str(&cause);
                }
            }
            eprintln!("longwave: error: {message}");
            ExitCode::FAILURE
        }
    }
}
