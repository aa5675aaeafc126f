//! The local file sink: [`FileSink`] writes an output atomically (a hidden temporary file,
//! renamed into place on commit, removed when dropped), and [`move_into_place`] renames without
//! ever replacing what another process wrote. The S3 multipart sink is its sibling
//! (`io::sink`); both implement [`ByteSink`].

use super::IoError;
use crate::audio::{check_patch, ByteSink, SinkError};
use std::fs::{self, File};
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Size of [`FileSink`]'s write buffer: large enough that a 4096-frame block (16–192 KiB) is
/// written to the OS in few system calls.
const FILE_BUFFER_BYTES: usize = 256 * 1024;

/// Distinguishes temporary files of one process writing several outputs into one folder.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A local file written atomically: bytes go to a hidden temporary file in the same folder
/// (`.<name>.longwave-<pid>-<n>.tmp`), which [`commit`](ByteSink::commit) flushes, syncs and
/// renames to the final name. Dropped without commit, the temporary file is removed.
///
/// An existing file with the final name is replaced only at commit.
#[derive(Debug)]
pub struct FileSink {
    final_path: PathBuf,
    /// The path errors name: the final path, or the output the user asked for when this sink
    /// writes an intermediate (pending) file ([`FileSink::shown_as`]).
    shown_path: PathBuf,
    temp_path: PathBuf,
    /// `None` once a failure left the file in an unknown state (the temp file is still removed
    /// on drop).
    writer: Option<BufWriter<File>>,
    position: u64,
    /// Set by a successful commit; tells `Drop` to leave the (renamed) file alone.
    committed: bool,
}

impl FileSink {
    /// Creates the temporary file next to `final_path`.
    ///
    /// # Errors
    /// Fails, naming `final_path`, when the folder does not exist or is not writable, or the path
    /// has no file name.
    pub fn create(final_path: impl AsRef<Path>) -> Result<Self, SinkError> {
        let final_path = final_path.as_ref().to_path_buf();
        let io_error = |op, source| SinkError::Io {
            op,
            path: final_path.clone(),
            source,
        };
        let name = final_path.file_name().ok_or_else(|| {
            io_error(
                "create",
                io::Error::new(io::ErrorKind::InvalidInput, "the path has no file name"),
            )
        })?;
        let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let mut temp_name = std::ffi::OsString::from(".");
        temp_name.push(name);
        temp_name.push(format!(".longwave-{}-{n}.tmp", std::process::id()));
        let temp_path = final_path.with_file_name(temp_name);
        let file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp_path)
            .map_err(|e| io_error("create", e))?;
        Ok(Self {
            shown_path: final_path.clone(),
            final_path,
            temp_path,
            writer: Some(BufWriter::with_capacity(FILE_BUFFER_BYTES, file)),
            position: 0,
            committed: false,
        })
    }

    /// The name the output will have once committed.
    pub fn final_path(&self) -> &Path {
        &self.final_path
    }

    /// Names `path` instead of the file's own in errors: for a pending file that stands for the
    /// user's output until the job has succeeded.
    pub fn shown_as(mut self, path: impl Into<PathBuf>) -> Self {
        self.shown_path = path.into();
        self
    }

    fn io_error(&self, op: &'static str, source: io::Error) -> SinkError {
        SinkError::Io {
            op,
            path: self.shown_path.clone(),
            source,
        }
    }

    /// Runs `f` on the writer; on failure the sink is poisoned (the file state is unknown).
    fn with_writer<T>(
        &mut self,
        op: &'static str,
        f: impl FnOnce(&mut BufWriter<File>) -> io::Result<T>,
    ) -> Result<T, SinkError> {
        let writer = self.writer.as_mut().ok_or(SinkError::Poisoned)?;
        match f(writer) {
            Ok(value) => Ok(value),
            Err(e) => {
                self.discard_writer();
                Err(self.io_error(op, e))
            }
        }
    }

    /// Closes the file without flushing the buffer (its content is being thrown away).
    fn discard_writer(&mut self) {
        if let Some(writer) = self.writer.take() {
            let (file, _unflushed) = writer.into_parts();
            drop(file);
        }
    }
}

impl ByteSink for FileSink {
    fn write_all(&mut self, bytes: &[u8]) -> Result<(), SinkError> {
        self.with_writer("write", |w| w.write_all(bytes))?;
        self.position += bytes.len() as u64;
        Ok(())
    }

    fn patch(&mut self, offset: u64, bytes: &[u8]) -> Result<(), SinkError> {
        check_patch(offset, bytes.len(), self.position)?;
        let end = self.position;
        self.with_writer("write", |w| {
            // `BufWriter::seek` flushes first, so the bytes being patched are on file.
            w.seek(SeekFrom::Start(offset))?;
            w.write_all(bytes)?;
            w.seek(SeekFrom::Start(end))?;
            Ok(())
        })
    }

    fn position(&self) -> u64 {
        self.position
    }

    fn commit(mut self: Box<Self>) -> Result<u64, SinkError> {
        self.with_writer("write", |w| {
            w.flush()?;
            w.get_ref().sync_all()
        })?;
        self.discard_writer();
        fs::rename(&self.temp_path, &self.final_path).map_err(|e| self.io_error("rename to", e))?;
        self.committed = true;
        // Make the rename itself durable. Best effort: some filesystems refuse to sync a folder,
        // and the data is already safely on disk.
        if let Some(dir) = self.final_path.parent() {
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            if let Ok(dir) = File::open(dir) {
                let _ = dir.sync_all();
            }
        }
        crate::telemetry::add_written_bytes(self.position);
        Ok(self.position)
    }
}

impl Drop for FileSink {
    fn drop(&mut self) {
        if !self.committed {
            self.discard_writer();
            // Nothing useful can be done if removal fails; the name marks it as ours.
            let _ = fs::remove_file(&self.temp_path);
        }
    }
}

/// Opens the local file `path` for reading. Anything but a regular file is refused before it
/// is opened: `open()` on a FIFO without a writer blocks forever, and a device or pipe has no
/// length to check a decode against ("file is empty" for /dev/zero would be false).
///
/// # Errors
/// [`IoError::NotAFile`] for a folder, pipe, device or socket; [`IoError::Local`] when opening
/// fails (not found, permission denied).
pub fn open_file(path: &Path) -> Result<File, IoError> {
    if let Ok(meta) = fs::metadata(path) {
        if !meta.is_file() {
            return Err(IoError::NotAFile {
                path: path.to_owned(),
                what: file_kind(&meta),
            });
        }
    }
    File::open(path).map_err(|source| IoError::Local {
        op: "open",
        path: path.to_owned(),
        source,
    })
}

/// What a non-regular file is, for error messages ([`IoError::NotAFile`], and the job's checks
/// of the paths it writes).
pub fn file_kind(meta: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_dir() {
        "a folder"
    } else if t.is_fifo() {
        "a named pipe"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// Moves a finished file from `from` to `to`. With `replace` false the move fails with
/// [`io::ErrorKind::AlreadyExists`] if `to` exists, atomically: no check-then-rename window in
/// which another process's file could be replaced.
///
/// Linux's `renameat2(RENAME_NOREPLACE)` does it in one step; on filesystems without it (EINVAL)
/// a hard link (which never replaces) followed by removing `from` gives the same guarantee.
///
/// # Errors
/// The rename (or link) failure; `AlreadyExists` when `to` exists and `replace` is false.
pub fn move_into_place(from: &Path, to: &Path, replace: bool) -> io::Result<()> {
    if replace {
        return fs::rename(from, to);
    }
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::ffi::OsStrExt;
        let c = |p: &Path| std::ffi::CString::new(p.as_os_str().as_bytes());
        let (Ok(from_c), Ok(to_c)) = (c(from), c(to)) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "path contains a NUL byte",
            ));
        };
        // SAFETY: both pointers are valid NUL-terminated strings for the duration of the call;
        // AT_FDCWD resolves relative paths as rename(2) does.
        let rc = unsafe {
            libc::renameat2(
                libc::AT_FDCWD,
                from_c.as_ptr(),
                libc::AT_FDCWD,
                to_c.as_ptr(),
                libc::RENAME_NOREPLACE,
            )
        };
        if rc == 0 {
            return Ok(());
        }
        let error = io::Error::last_os_error();
        if !matches!(error.raw_os_error(), Some(libc::EINVAL | libc::ENOSYS)) {
            return Err(error);
        }
    }
    fs::hard_link(from, to)?;
    fs::remove_file(from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::{MemorySink, PATCH_WINDOW};

    fn dir_entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn commit_renames_temp_file_to_final_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.bin");
        let mut sink = FileSink::create(&path).unwrap();
        sink.write_all(b"hello world").unwrap();
        // Before commit only a hidden temporary file exists.
        let names = dir_entries(dir.path());
        assert_eq!(names.len(), 1);
        assert!(names[0].starts_with(".out.bin.longwave-"), "{names:?}");
        assert!(names[0].ends_with(".tmp"), "{names:?}");
        sink.patch(0, b"HELLO").unwrap();
        sink.write_all(b"!").unwrap();
        let size = Box::new(sink).commit().unwrap();
        assert_eq!(size, 12);
        assert_eq!(fs::read(&path).unwrap(), b"HELLO world!");
        assert_eq!(dir_entries(dir.path()), vec!["out.bin".to_owned()]);
    }

    #[test]
    fn drop_without_commit_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.bin");
        let mut sink = FileSink::create(&path).unwrap();
        sink.write_all(&[7; 1000]).unwrap();
        drop(sink);
        assert!(dir_entries(dir.path()).is_empty());
    }

    #[test]
    fn patch_outside_window_or_written_range_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = FileSink::create(dir.path().join("out.bin")).unwrap();
        sink.write_all(&vec![0; PATCH_WINDOW as usize + 100])
            .unwrap();
        let err = sink.patch(PATCH_WINDOW - 2, &[1, 2, 3]).unwrap_err();
        assert!(matches!(err, SinkError::PatchOutOfWindow { .. }), "{err}");
        assert!(sink.patch(PATCH_WINDOW - 3, &[1, 2, 3]).is_ok());

        let mut mem = MemorySink::new();
        mem.write_all(&[0; 10]).unwrap();
        assert!(mem.patch(8, &[1, 2, 3]).is_err(), "beyond what was written");
        assert!(mem.patch(u64::MAX, &[1]).is_err(), "overflowing offset");
        mem.patch(7, &[1, 2, 3]).unwrap();
        assert_eq!(mem.bytes()[7..], [1, 2, 3]);
    }

    #[test]
    fn create_in_missing_folder_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing").join("out.wav");
        let err = FileSink::create(&path).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "cannot create {}: no such file or directory",
                path.display()
            )
        );
    }

    #[test]
    fn memory_sink_hands_out_bytes_only_after_commit() {
        let mut sink = MemorySink::new();
        let output = sink.output();
        sink.write_all(b"abc").unwrap();
        assert_eq!(output.take(), None);
        assert_eq!(Box::new(sink).commit().unwrap(), 3);
        assert_eq!(output.take().as_deref(), Some(&b"abc"[..]));
    }
}
