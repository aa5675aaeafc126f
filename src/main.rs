//! The `longwave` command line: `process`, `analyze`, `generate` and `demo` on local files.
//! Errors become one line on stderr and a non-zero exit code; anyhow lives only here.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    match cli::run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // One line: the chain of causes joined, so scripts can grep it. A cause whose text
            // the message already carries (library errors include their reason) is left out.
            let mut message = error.to_string();
            for cause in error.chain().skip(1) {
                let cause = cause.to_string();
                let essence = cause
                    .split(" (os error")
                    .next()
                    .unwrap_or(&cause)
                    .to_lowercase();
                if !message.to_lowercase().contains(&essence) {
                    message.push_str(": ");
                    message.push_str(&cause);
                }
            }
            eprintln!("longwave: error: {message}");
            ExitCode::FAILURE
        }
    }
}
