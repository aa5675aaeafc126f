//! The `longwave` command line: `process`, `analyze`, `generate` and `demo` on local files.
//! Errors become one line on stderr and a non-zero exit code; anyhow lives only here.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    bound_allocator_retention();
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
            if let Some(interrupted) = error.downcast_ref::<cli::Interrupted>() {
                ExitCode::from(u8::try_from(128 + interrupted.signal).unwrap_or(1))
            } else if error.is::<cli::UsageError>() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// Makes glibc's allocator give large buffers back to the system as soon as they are freed.
///
/// Why: S3 parts (8 MiB) and read chunks (4 MiB) are allocated and freed continuously. By
/// default glibc raises its mmap threshold after the first large free, so later buffers come
/// from per-thread arenas that keep freed memory: peak RSS then grows with the number of parts
/// (measured: 58 MiB for a 30-minute S3 job, 70 MiB for 3 hours). A fixed 256 KiB threshold
/// and at most two arenas keep the peak at the configured bound whatever the input's length.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn bound_allocator_retention() {
    // SAFETY: mallopt only changes allocator tuning parameters; it is called once, at the
    // start of main, before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn bound_allocator_retention() {}
