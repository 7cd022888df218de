//! A token a carrier issues for an account's credentials (emnify's bearer token, Soracom's API
//! key and token), the one way the clients keep it: cached until shortly before it lapses
//! (measured on the operator's clock from the lifetime the token states, so a skewed carrier
//! clock does not matter), issued by one call at a time, and renewed once when the carrier
//! refuses a call made with it.

use std::future::Future;
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};

use crate::CarrierError;

/// How a client gets a new token.
pub(crate) trait Issuer<T> {
    /// Asks the carrier for a new token; returns it with the lifetime it states (none: it is
    /// kept until the carrier refuses it).
    fn issue(&self) -> impl Future<Output = Result<(T, Option<SignedDuration>), CarrierError>>;

    /// The operator's clock.
    fn now(&self) -> Timestamp;
}

/// A token and when to renew it.
pub(crate) struct Issued<T> {
    pub(crate) token: T,
    renew_at: Option<Timestamp>,
}

/// The cached token of one account.
pub(crate) struct TokenSession<T> {
    cached: tokio::sync::Mutex<Option<Arc<Issued<T>>>>,
    /// How long before it lapses a token is renewed.
    renew_early: SignedDuration,
}

impl<T> TokenSession<T> {
    /// No token yet; each will be renewed `renew_early` before it lapses.
    pub(crate) fn new(renew_early: SignedDuration) -> Self {
        Self {
            cached: tokio::sync::Mutex::new(None),
            renew_early,
        }
    }

    /// The cached token, or a new one when there is none or it is due (one issue at a time).
    pub(crate) async fn current(
        &self,
        issuer: &impl Issuer<T>,
    ) -> Result<Arc<Issued<T>>, CarrierError> {
        let mut cached = self.cached.lock().await;
        let now = issuer.now();
        if let Some(issued) = cached
            .as_ref()
            .filter(|i| i.renew_at.is_none_or(|at| now < at))
        {
            return Ok(issued.clone());
        }
        let (token, lifetime) = issuer.issue().await?;
        let renew_at = lifetime.map(|life| {
            now.saturating_add((life - self.renew_early).max(SignedDuration::ZERO))
                .unwrap_or(now)
        });
        let issued = Arc::new(Issued { token, renew_at });
        *cached = Some(issued.clone());
        Ok(issued)
    }

    /// Sends with the current token; when the carrier refuses it (`refused` says which errors
    /// mean that for this carrier), the token is renewed and the call sent once more.
    pub(crate) async fn send<R, Fut>(
        &self,
        issuer: &impl Issuer<T>,
        refused: impl Fn(&CarrierError) -> bool,
        send: impl Fn(Arc<Issued<T>>) -> Fut,
    ) -> Result<R, CarrierError>
    where
        Fut: Future<Output = Result<R, CarrierError>>,
    {
        let used = self.current(issuer).await?;
        match send(used.clone()).await {
            Err(error) if refused(&error) => {
                self.forget(&used).await;
                send(self.current(issuer).await?).await
            }
            other => other,
        }
    }

    /// Drops `used` if it is still the cached token (another call may have renewed it).
    async fn forget(&self, used: &Arc<Issued<T>>) {
        let mut cached = self.cached.lock().await;
        if cached.as_ref().is_some_and(|c| Arc::ptr_eq(c, used)) {
            *cached = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// Issues numbered tokens that last `lifetime`, on a clock the test moves.
    struct Counter {
        issued: Mutex<u32>,
        now: Mutex<Timestamp>,
        lifetime: Option<SignedDuration>,
    }

    impl Issuer<u32> for Counter {
        async fn issue(&self) -> Result<(u32, Option<SignedDuration>), CarrierError> {
            let mut issued = self.issued.lock().unwrap();
            *issued += 1;
            Ok((*issued, self.lifetime))
        }

        fn now(&self) -> Timestamp {
            *self.now.lock().unwrap()
        }
    }

    fn counter(lifetime: Option<SignedDuration>) -> Counter {
        Counter {
            issued: Mutex::new(0),
            now: Mutex::new(Timestamp::UNIX_EPOCH),
            lifetime,
        }
    }

    #[tokio::test]
    async fn a_token_is_kept_until_shortly_before_it_lapses() {
        let issuer = counter(Some(SignedDuration::from_mins(60)));
        let session = TokenSession::new(SignedDuration::from_mins(10));
        assert_eq!(session.current(&issuer).await.unwrap().token, 1);
        *issuer.now.lock().unwrap() += SignedDuration::from_mins(49);
        assert_eq!(session.current(&issuer).await.unwrap().token, 1);
        *issuer.now.lock().unwrap() += SignedDuration::from_mins(1);
        assert_eq!(session.current(&issuer).await.unwrap().token, 2);
    }

    #[tokio::test]
    async fn a_refused_token_is_renewed_once_and_the_call_sent_again() {
        let issuer = counter(None);
        let session = TokenSession::new(SignedDuration::ZERO);
        let calls = Mutex::new(Vec::new());
        let refused = |e: &CarrierError| matches!(e, CarrierError::Unauthorized { .. });
        // Token 1 is refused, token 2 accepted.
        let answer = session
            .send(&issuer, refused, |issued| {
                calls.lock().unwrap().push(issued.token);
                let token = issued.token;
                async move {
                    if token == 1 {
                        Err(CarrierError::Unauthorized {
                            message: "expired".into(),
                        })
                    } else {
                        Ok(token)
                    }
                }
            })
            .await;
        assert_eq!(answer.unwrap(), 2);
        assert_eq!(*calls.lock().unwrap(), [1, 2]);
        // A token refused twice in a row is the carrier's answer: no third call.
        calls.lock().unwrap().clear();
        let answer: Result<u32, _> = session
            .send(&issuer, refused, |issued| {
                calls.lock().unwrap().push(issued.token);
                async {
                    Err(CarrierError::Unauthorized {
                        message: "revoked".into(),
                    })
                }
            })
            .await;
        assert!(answer.is_err());
        assert_eq!(*calls.lock().unwrap(), [2, 3]);
    }
}
