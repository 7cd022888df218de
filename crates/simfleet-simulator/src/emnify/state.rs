//! emnify authentication tokens issued by the simulator: issued per credential, checked, and
//! expired with the virtual clock (or on demand).

use base64::Engine;
use jiff::{SignedDuration, Timestamp};

use std::collections::HashMap;

/// What the emnify surface keeps besides the SIM table: the auth tokens it issued.
#[derive(Debug)]
pub(crate) struct EmnifyWorld {
    tokens: HashMap<String, Token>,
    next_token: u64,
}

impl Default for EmnifyWorld {
    fn default() -> Self {
        Self {
            tokens: HashMap::new(),
            next_token: 1,
        }
    }
}

/// An issued emnify token.
#[derive(Clone, Debug)]
struct Token {
    credential: String,
    expires_at: Timestamp,
}

impl EmnifyWorld {
    /// Issues an emnify auth token for a credential (application tokens get no refresh token).
    pub(crate) fn issue_token(
        &mut self,
        credential: &str,
        now: Timestamp,
        lifetime: SignedDuration,
    ) -> String {
        let expires_at = now.saturating_add(lifetime).unwrap_or(now);
        let serial = self.next_token;
        self.next_token += 1;
        let encode = |v: &serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        // A JWT shape, so clients can read `exp`; the signature is not checked by anyone.
        let auth = format!(
            "{}.{}.{}",
            encode(&serde_json::json!({"alg": "HS512", "typ": "JWT"})),
            encode(
                &serde_json::json!({"exp": expires_at.as_second(), "iat": now.as_second(), "jti": serial, "sub": "simfleet-simulator"})
            ),
            encode(&serde_json::json!(format!("sig-{serial}"))),
        );
        self.tokens.insert(
            auth.clone(),
            Token {
                credential: credential.to_owned(),
                expires_at,
            },
        );
        auth
    }

    /// The credential behind an auth token: `Err` once it has expired, `None` for a token this
    /// simulator never issued.
    pub(crate) fn check_token(&self, token: &str, now: Timestamp) -> Option<Result<&str, ()>> {
        self.tokens.get(token).map(|t| {
            if t.expires_at > now {
                Ok(t.credential.as_str())
            } else {
                Err(())
            }
        })
    }

    /// Expires every issued auth token now (fault injection); returns how many.
    pub(crate) fn expire_tokens(&mut self, now: Timestamp) -> usize {
        for token in self.tokens.values_mut() {
            token.expires_at = token.expires_at.min(now);
        }
        self.tokens.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_expire_with_the_clock_and_on_demand() {
        let mut w = EmnifyWorld::default();
        let now: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let auth = w.issue_token("app", now, SignedDuration::from_hours(1));
        assert_eq!(w.check_token(&auth, now), Some(Ok("app")));
        assert_eq!(
            w.check_token(&auth, "2026-01-01T01:00:00Z".parse().unwrap()),
            Some(Err(()))
        );
        assert_eq!(w.check_token("never-issued", now), None);
        let auth = w.issue_token("app", now, SignedDuration::from_hours(1));
        w.expire_tokens(now);
        assert_eq!(w.check_token(&auth, now), Some(Err(())));
    }
}
