//! Paths written in the file: relative to the file's folder, with
//! systemd's `$CREDENTIALS_DIRECTORY` expanded.

use std::path::{Path, PathBuf};

/// Resolves a path written in the config relative to the config's folder.
pub(crate) fn resolve_path(base: &Path, p: &str) -> PathBuf {
    let expanded = expand_credentials_dir(p);
    let path = PathBuf::from(expanded);
    if path.is_absolute() {
        path
    } else {
        base.join(path)
    }
}

/// Expands `$CREDENTIALS_DIRECTORY` (set by systemd's LoadCredential=).
fn expand_credentials_dir(p: &str) -> String {
    for var in ["${CREDENTIALS_DIRECTORY}", "$CREDENTIALS_DIRECTORY"] {
        if let Some(rest) = p.strip_prefix(var)
            && let Ok(dir) = std::env::var("CREDENTIALS_DIRECTORY")
        {
            return format!("{dir}{rest}");
        }
    }
    p.to_owned()
}
