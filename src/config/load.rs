//! Reading the file (and `MAILFEED__...` overrides) into the raw shape,
//! with parser errors that never quote the file's lines.

use std::path::{Path, PathBuf};

use super::raw::RawFile;
use super::{Config, ConfigError};

/// The parser's error on one line, without the source excerpt it quotes:
/// that excerpt is the offending line of the file, which may be the one
/// holding a password (`password = hunter2`, unquoted, is a syntax error),
/// and errors are logged. Line and column stay, which is what the fix needs.
pub(super) fn load_error(path: &Path, e: &config::ConfigError) -> ConfigError {
    let text = e.to_string();
    let mut parts: Vec<&str> = Vec::new();
    for line in text.lines() {
        let rest = line
            .trim_start()
            .trim_start_matches(|c: char| c.is_ascii_digit());
        if rest.trim_start().starts_with('|') {
            continue;
        }
        let line = line.trim();
        if !line.is_empty() {
            parts.push(line);
        }
    }
    // The `config` crate ends with " in FILE" (a path of its own making),
    // which the caller already says.
    if parts.len() > 1 && parts.last().is_some_and(|l| l.starts_with("in ")) {
        parts.pop();
    }
    ConfigError::Load {
        path: path.to_owned(),
        message: parts.join(": "),
    }
}

impl Config {
    /// Loads the file, applies `MAILFEED__...` overrides, and validates.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let built = ::config::Config::builder()
            .add_source(::config::File::from(path).format(::config::FileFormat::Toml))
            .add_source(
                ::config::Environment::with_prefix("MAILFEED")
                    .separator("__")
                    .try_parsing(true),
            )
            .build()
            .map_err(|e| load_error(path, &e))?;
        let raw: RawFile = built.try_deserialize().map_err(|e| load_error(path, &e))?;
        let base = path
            .parent()
            .map(Path::to_path_buf)
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from("."));
        Self::from_raw(raw, path, &base).map_err(|message| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        })
    }

    /// Parses configuration text (for tests and `check`), paths relative to `base`.
    pub fn from_toml(text: &str, base: &Path) -> Result<Config, ConfigError> {
        let source = base.join("<inline>");
        let built = ::config::Config::builder()
            .add_source(::config::File::from_str(text, ::config::FileFormat::Toml))
            .build()
            .map_err(|e| load_error(&source, &e))?;
        let raw: RawFile = built
            .try_deserialize()
            .map_err(|e| load_error(&source, &e))?;
        Self::from_raw(raw, &source, base).map_err(|message| ConfigError::Invalid {
            path: source.clone(),
            message,
        })
    }
}
