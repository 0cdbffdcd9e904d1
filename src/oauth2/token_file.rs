//! The refresh token's file: one line, mode 0600, owned by mailfeed, and
//! replaced atomically (write a new file beside it, fsync, rename, fsync the
//! folder) so a crash leaves either the old token or the new one, never half
//! of one. Nothing else reads or writes it.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::secret::Secret;

/// The stored refresh token; `None` when there is no file yet.
pub fn read(path: &Path) -> std::io::Result<Option<Secret>> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let t = text.trim();
            Ok((!t.is_empty()).then(|| Secret::new(t).registered()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Replaces the stored refresh token.
pub fn write(path: &Path, token: &Secret) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "token".into());
    let tmp = dir.join(format!(".{name}.{}.new", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        // The mode given to open is filtered by the umask; 0600 is meant.
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        f.write_all(token.expose().as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn written_private_replaced_whole_and_read_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub").join("acct.oauth2-token");
        assert!(read(&path).expect("no file").is_none());
        write(&path, &Secret::new("first-rt")).expect("write");
        assert_eq!(
            read(&path).expect("read").expect("some").expose(),
            "first-rt"
        );
        assert_eq!(
            std::fs::metadata(&path).expect("meta").mode() & 0o777,
            0o600
        );
        write(&path, &Secret::new("second-rt")).expect("rewrite");
        assert_eq!(
            read(&path).expect("read").expect("some").expose(),
            "second-rt"
        );
        let leftovers: Vec<_> = std::fs::read_dir(path.parent().expect("dir"))
            .expect("list")
            .collect();
        assert_eq!(leftovers.len(), 1, "no temporary file left behind");
    }
}
