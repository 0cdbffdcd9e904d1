//! Where a password or an OAuth2 client secret comes from, and reading it
//! when a connection needs it (never at load time, never into a message).

use std::path::PathBuf;

use crate::secret::Secret;

use super::ConfigError;

/// Where an account's password comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordSource {
    Inline(Secret),
    Env(String),
    File(PathBuf),
    Command(String),
}

impl PasswordSource {
    /// Reads the password now (files and commands may change while running).
    pub fn resolve(&self, account: &str) -> Result<Secret, ConfigError> {
        let err = |message: String| ConfigError::Password {
            account: account.to_owned(),
            message,
        };
        match self {
            PasswordSource::Inline(s) => Ok(s.clone()),
            PasswordSource::Env(var) => std::env::var(var).map(Secret::new).map_err(|_| {
                err(format!(
                    "password_env names `{var}`, which is not set (or not UTF-8) in mailfeed's environment"
                ))
            }),
            PasswordSource::File(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    err(format!("password_file {}: {e}", path.display()))
                })?;
                Ok(Secret::new(text.trim_end_matches(['\r', '\n'])))
            }
            PasswordSource::Command(cmd) => {
                let out = std::process::Command::new("/bin/sh")
                    .arg("-c")
                    .arg(cmd)
                    .stdin(std::process::Stdio::null())
                    .stderr(std::process::Stdio::inherit())
                    .output()
                    .map_err(|e| err(format!("password_command could not start: {e}")))?;
                if !out.status.success() {
                    return Err(err(format!("password_command exited with {}", out.status)));
                }
                let text = String::from_utf8(out.stdout)
                    .map_err(|_| err("password_command printed non-UTF-8 output".into()))?;
                Ok(Secret::new(text.trim_end_matches(['\r', '\n'])))
            }
        }
    }
}

/// Where the OAuth2 client secret comes from (public clients have none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientSecret {
    Inline(Secret),
    File(PathBuf),
}

impl ClientSecret {
    /// Reads the secret now (a credential file may be replaced while running).
    pub fn resolve(&self, account: &str) -> Result<Secret, ConfigError> {
        match self {
            ClientSecret::Inline(s) => Ok(s.clone().registered()),
            ClientSecret::File(path) => std::fs::read_to_string(path)
                .map(|t| Secret::new(t.trim_end_matches(['\r', '\n'])).registered())
                .map_err(|e| ConfigError::Password {
                    account: account.to_owned(),
                    message: format!("oauth2.client_secret_file {}: {e}", path.display()),
                }),
        }
    }
}
