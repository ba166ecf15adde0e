//! Reading and writing the files subcommands take, with errors that name the file.

use std::path::Path;

/// Largest file a subcommand reads (a 4M-entity snapshot is ~400 MB).
const MAX_FILE_BYTES: u64 = 2 << 30;

/// The whole of `path`, refusing files over 2 GiB before reading them.
pub fn read(path: &Path) -> Result<Vec<u8>, String> {
    let shown = path.display();
    let len = std::fs::metadata(path)
        .map_err(|e| format!("cannot read {shown}: {e}"))?
        .len();
    if len > MAX_FILE_BYTES {
        return Err(format!(
            "{shown} is {len} bytes; at most {MAX_FILE_BYTES} are read"
        ));
    }
    std::fs::read(path).map_err(|e| format!("cannot read {shown}: {e}"))
}

/// Writes `bytes` to `path` through a temporary file and a rename, so a crash never
/// leaves half a file under the final name.
pub fn write(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let shown = path.display();
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    std::fs::write(&temporary, bytes).map_err(|e| format!("cannot write {shown}: {e}"))?;
    std::fs::rename(&temporary, path).map_err(|e| format!("cannot write {shown}: {e}"))
}
