//! The access token held in memory between connections, and when it counts
//! as used up: a while before the endpoint's `expires_in`, so a connection
//! never starts with a token that dies during the login.

use std::time::{Duration, Instant};

use crate::secret::Secret;

/// Refresh this long before the endpoint's stated expiry.
const MARGIN: Duration = Duration::from_secs(120);
/// Assumed lifetime when the endpoint does not say (RFC 6749 leaves
/// `expires_in` optional); short, so a wrong guess costs one refresh.
const UNSTATED: Duration = Duration::from_secs(300);

#[derive(Debug, Default)]
pub struct TokenCache {
    held: Option<(Secret, Instant)>,
}

impl TokenCache {
    /// The token, if it is still good at `now`.
    pub fn get(&self, now: Instant) -> Option<Secret> {
        match &self.held {
            Some((t, until)) if now < *until => Some(t.clone()),
            _ => None,
        }
    }

    /// Keeps a token granted at `now` that lives `expires_in` seconds.
    pub fn put(&mut self, token: Secret, expires_in: Option<u64>, now: Instant) {
        let life = expires_in.map(Duration::from_secs).unwrap_or(UNSTATED);
        // A token that lives less than twice the margin is used for half
        // its life rather than not at all.
        let usable = if life > MARGIN * 2 {
            life - MARGIN
        } else {
            life / 2
        };
        self.held = Some((token, now + usable));
    }

    /// Drops the token (the server refused it).
    pub fn forget(&mut self) {
        self.held = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_used_until_shortly_before_expiry() {
        let t0 = Instant::now();
        let mut c = TokenCache::default();
        assert!(c.get(t0).is_none());
        c.put(Secret::new("a"), Some(3600), t0);
        assert_eq!(
            c.get(t0 + Duration::from_secs(3400))
                .expect("fresh")
                .expose(),
            "a"
        );
        assert!(
            c.get(t0 + Duration::from_secs(3481)).is_none(),
            "within the margin"
        );
        c.put(Secret::new("b"), Some(60), t0);
        assert!(c.get(t0 + Duration::from_secs(29)).is_some());
        assert!(c.get(t0 + Duration::from_secs(31)).is_none());
        c.put(Secret::new("c"), None, t0);
        assert!(c.get(t0 + Duration::from_secs(100)).is_some());
        c.forget();
        assert!(c.get(t0).is_none());
    }
}
