//! Checks on the local paths a job writes, before it reads a byte: a run never destroys what is
//! not its own.
//!
//! Rules (the README's error contract states them too):
//! - no path a run writes (the output, the pieces folder, the manifest) may be the input or
//!   another of those paths, compared by what they resolve to (device and inode for existing
//!   files, the canonical folder plus the name otherwise), not by spelling;
//! - a target that exists and is not a regular file (a device node, a FIFO, a folder where a
//!   file is meant) is refused: renaming over `/dev/null` would replace the device;
//! - an existing output or manifest (or a pieces folder already holding pieces or a manifest)
//!   is refused unless the job says `overwrite`, as S3 outputs are never overwritten;
//! - the folder of a file target must exist (the manifest's too), so a run does not fail at its
//!   very end after all the work.
//!
//! The check is repeated atomically where it matters: outputs and manifests are moved into
//! place with [`crate::io::move_into_place`], which refuses to replace a file that appeared
//! in the meantime.

use super::JobError;
use crate::io::file_kind;
use std::path::{Path, PathBuf};

/// What a path resolves to, for "is this the same file" questions.
#[derive(Debug, PartialEq, Eq)]
enum Identity {
    /// An existing file: its device and inode.
    Existing { dev: u64, ino: u64 },
    /// A path that does not exist yet: its canonical folder and its name.
    Planned(PathBuf),
}

fn identity(path: &Path) -> Option<Identity> {
    use std::os::unix::fs::MetadataExt;
    if let Ok(meta) = std::fs::metadata(path) {
        return Some(Identity::Existing {
            dev: meta.dev(),
            ino: meta.ino(),
        });
    }
    let name = path.file_name()?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    Some(Identity::Planned(parent.canonicalize().ok()?.join(name)))
}

/// True when `a` and `b` name the same file (or would, once created).
pub(crate) fn same_file(a: &Path, b: &Path) -> bool {
    match (identity(a), identity(b)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

fn refuse(path: &Path, reason: impl Into<String>) -> JobError {
    JobError::Output {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

/// Checks a file the job will create (`role`: "output", "manifest"). `folder_made_by_job`: the
/// file goes into a folder the job itself creates (a split's pieces folder), which need not
/// exist yet.
///
/// # Errors
/// [`JobError::Output`] when the path is not a regular file, exists without `overwrite`, or its
/// folder does not exist.
pub(crate) fn check_file_target(
    path: &Path,
    role: &str,
    overwrite: bool,
    folder_made_by_job: bool,
) -> Result<(), JobError> {
    match std::fs::metadata(path) {
        Ok(meta) if !meta.is_file() => Err(refuse(
            path,
            format!(
                "the {role} path is {} (not a regular file); longwave writes regular files only",
                file_kind(&meta)
            ),
        )),
        Ok(_) if !overwrite => Err(refuse(
            path,
            format!("the {role} already exists; pass --overwrite to replace it"),
        )),
        Ok(_) => Ok(()),
        Err(_) => {
            let parent = match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            if parent.is_dir() || folder_made_by_job {
                Ok(())
            } else {
                Err(refuse(
                    path,
                    format!("the {role}'s folder {} does not exist", parent.display()),
                ))
            }
        }
    }
}

/// Checks the folder that receives a split's pieces.
///
/// # Errors
/// [`JobError::Output`] when it exists but is not a folder, or already holds pieces or a
/// manifest and `overwrite` is not set.
pub(crate) fn check_pieces_folder(dir: &Path, overwrite: bool) -> Result<(), JobError> {
    let meta = match std::fs::metadata(dir) {
        Ok(meta) => meta,
        Err(_) => return Ok(()), // created by the job
    };
    if !meta.is_dir() {
        return Err(refuse(
            dir,
            format!(
                "the pieces folder is {}; a split writes its pieces into a folder",
                file_kind(&meta)
            ),
        ));
    }
    if overwrite {
        return Ok(());
    }
    let earlier = std::fs::read_dir(dir)
        .map_err(|e| refuse(dir, format!("cannot read the pieces folder: {e}")))?
        .flatten()
        .filter_map(|entry| entry.file_name().into_string().ok())
        .find(|name| name == "manifest.json" || is_piece_name(name));
    match earlier {
        Some(name) => Err(refuse(
            dir,
            format!(
                "the folder already holds the output of an earlier run ({name}); pass \
                 --overwrite to replace it"
            ),
        )),
        None => Ok(()),
    }
}

/// `piece_NNNN.<ext>`.
fn is_piece_name(name: &str) -> bool {
    name.strip_prefix("piece_")
        .and_then(|rest| rest.split_once('.'))
        .is_some_and(|(n, _)| n.len() == 4 && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Refuses any two of `paths` (role, path) that name the same file, the first pair found.
///
/// # Errors
/// [`JobError::Output`] naming the later path and the role it collides with.
pub(crate) fn check_distinct(paths: &[(&str, &Path)]) -> Result<(), JobError> {
    for (i, (role_a, a)) in paths.iter().enumerate() {
        for (role_b, b) in &paths[i + 1..] {
            if same_file(a, b) {
                return Err(refuse(
                    b,
                    format!("the {role_b} would overwrite the {role_a}; choose another name"),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_file_sees_through_spelling_and_links() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.wav");
        std::fs::write(&a, b"x").unwrap();
        let dotted = dir.path().join(".").join("a.wav");
        assert!(same_file(&a, &dotted));
        let link = dir.path().join("link.wav");
        std::os::unix::fs::symlink(&a, &link).unwrap();
        assert!(same_file(&a, &link));
        let hard = dir.path().join("hard.wav");
        std::fs::hard_link(&a, &hard).unwrap();
        assert!(same_file(&a, &hard));
        // Not yet existing: same folder and name.
        let planned = dir.path().join("new.json");
        let planned_dotted = dir.path().join("sub/../new.json");
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        assert!(same_file(&planned, &planned_dotted));
        assert!(!same_file(&a, &planned));
    }

    #[test]
    fn targets_that_are_not_regular_files_are_refused() {
        let err = check_file_target(Path::new("/dev/null"), "output", true, false).unwrap_err();
        assert!(err.to_string().contains("character device"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let err = check_file_target(dir.path(), "manifest", true, false).unwrap_err();
        assert!(err.to_string().contains("a folder"), "{err}");
        let missing = dir.path().join("no/such/folder/m.json");
        let err = check_file_target(&missing, "manifest", false, false).unwrap_err();
        assert!(err.to_string().contains("does not exist"), "{err}");
    }

    #[test]
    fn existing_outputs_need_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("o.wav");
        std::fs::write(&out, b"x").unwrap();
        let err = check_file_target(&out, "output", false, false).unwrap_err();
        assert!(err.to_string().contains("--overwrite"), "{err}");
        check_file_target(&out, "output", true, false).unwrap();
        std::fs::write(dir.path().join("piece_0001.wav"), b"x").unwrap();
        let err = check_pieces_folder(dir.path(), false).unwrap_err();
        assert!(err.to_string().contains("piece_0001.wav"), "{err}");
        check_pieces_folder(dir.path(), true).unwrap();
    }
}
