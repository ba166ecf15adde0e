//! Reading and writing the files subcommands take, with errors that name the file.

use std::io::Read;
use std::path::Path;

/// Largest file a subcommand reads (a 4M-entity snapshot is ~400 MB).
const MAX_FILE_BYTES: u64 = 2 << 30;

/// The whole of `path`, refusing anything over 2 GiB. The limit is enforced while
/// reading, not taken from the file's metadata, so a device or a growing file cannot
/// make it read forever.
pub fn read(path: &Path) -> Result<Vec<u8>, String> {
    let shown = path.display();
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read {shown}: {e}"))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(format!(
            "{shown} is over {MAX_FILE_BYTES} bytes; larger files are not read"
        ));
    }
    Ok(bytes)
}

/// Writes `bytes` to `path` through a temporary file and a rename, so a crash never
/// leaves half a file under the final name.
pub fn write(path: &Path, bytes: &[u8]) -> Result<(), String> {
    write_with_mode(path, bytes, 0o644)
}

/// Writes a file that holds a secret (a client id): readable and writable by its owner
/// only (mode 0600 on Unix), through a temporary file and a rename.
pub fn write_secret(path: &Path, bytes: &[u8]) -> Result<(), String> {
    write_with_mode(path, bytes, 0o600)
}

fn write_with_mode(path: &Path, bytes: &[u8], mode: u32) -> Result<(), String> {
    let shown = path.display();
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options
        .open(&temporary)
        .map_err(|e| format!("cannot write {shown}: {e}"))?;
    // A file already there keeps its old mode through open: set it.
    #[cfg(unix)]
    let moded = {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(mode))
    };
    #[cfg(not(unix))]
    let moded = Ok(());
    let written = moded.and_then(|()| std::io::Write::write_all(&mut file, bytes));
    drop(file);
    let result = written.and_then(|()| std::fs::rename(&temporary, path));
    if result.is_err() {
        // Nothing of a failed write stays behind.
        let _ = std::fs::remove_file(&temporary);
    }
    result.map_err(|e| format!("cannot write {shown}: {e}"))
}

/// Reads a file that holds a secret, refusing one that other users can read (on Unix:
/// any group or world permission) — its secret may have leaked, and using it would
/// hide that.
pub fn read_secret(path: &Path) -> Result<Vec<u8>, String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let shown = path.display();
        let mode = std::fs::metadata(path)
            .map_err(|e| format!("cannot read {shown}: {e}"))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(format!(
                "{shown} is readable by other users (mode {:03o}) but holds a secret client id: run `chmod 600 {shown}` if nobody else could have read it",
                mode & 0o777
            ));
        }
    }
    read(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_that_fails_leaves_no_temporary_file() {
        let dir = std::env::temp_dir().join(format!("tickstep-files-{}", std::process::id()));
        // A directory where the file should go: the rename onto it fails.
        let path = dir.join("taken");
        std::fs::create_dir_all(&path).unwrap();
        let error = write_with_mode(&path, b"x", 0o644).unwrap_err();
        assert!(error.starts_with("cannot write"), "{error}");
        assert!(!dir.join("taken.tmp").exists(), "the temporary file stayed");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
