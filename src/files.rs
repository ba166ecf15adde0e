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
    let shown = path.display();
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    std::fs::write(&temporary, bytes).map_err(|e| format!("cannot write {shown}: {e}"))?;
    std::fs::rename(&temporary, path).map_err(|e| format!("cannot write {shown}: {e}"))
}
