//! The warning a command logs before it connects to an account over
//! plaintext. (The connect options themselves are `session::connect_options`.)

use crate::config::{AccountConfig, Security};

pub(super) fn warn_plaintext(account: &AccountConfig) {
    if account.security == Security::Plain {
        tracing::warn!(
            account = %account.name,
            "security = \"plain\": the password and all mail travel unencrypted"
        );
    }
}
