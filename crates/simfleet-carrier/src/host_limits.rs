//! One rate limit per carrier host, shared by every account this process serves there. emnify
//! limits requests per client IP (2,000 in any 5 minutes [doc]), and every account of one
//! operator calls from the same IP: per-account limits alone add up past it. Each account's own
//! `rateLimit` still applies first; the host's is taken after it.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

/// emnify's API host.
const EMNIFY_ORIGIN: &str = "https://cdn.emnify.net";

/// A host's limit: sustained requests per second and burst.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HostLimit {
    /// Requests per second, sustained.
    pub per_second: f64,
    /// Requests allowed at once.
    pub burst: u32,
}

impl HostLimit {
    /// What a carrier documents of its own host's limit per client IP. emnify
    /// (`https://cdn.emnify.net`): 2,000 requests in any 5 minutes; a burst of 20 and 1,980 over
    /// the window keep any 5 minutes at 2,000 at most. Hologram publishes no number, and other
    /// hosts (a proxy, the simulator) are limited only when `--carrier-host-limit` says so.
    pub fn documented(origin: &str) -> Option<HostLimit> {
        (origin == EMNIFY_ORIGIN).then_some(HostLimit {
            per_second: 1980.0 / 300.0,
            burst: 20,
        })
    }

    /// Parses `PER_SECOND[/BURST]` (burst 1 by default).
    pub fn parse(text: &str) -> Result<HostLimit, String> {
        let (rate, burst) = text.split_once('/').unwrap_or((text, "1"));
        let per_second: f64 = rate
            .trim()
            .parse()
            .map_err(|_| format!("{rate:?} is not a number of requests per second"))?;
        let burst: u32 = burst
            .trim()
            .parse()
            .map_err(|_| format!("{burst:?} is not a whole burst"))?;
        if !(per_second > 0.0 && per_second.is_finite()) || burst == 0 {
            return Err("the rate and the burst must be above 0".into());
        }
        Ok(HostLimit { per_second, burst })
    }

    fn limiter(self) -> DefaultDirectRateLimiter {
        let period = Duration::from_secs_f64(1.0 / self.per_second);
        let quota = Quota::with_period(period)
            .expect("a positive period")
            .allow_burst(NonZeroU32::new(self.burst).expect("a positive burst"));
        RateLimiter::direct(quota)
    }
}

/// The limiter of `origin` (scheme, host and port), made with `limit` by its first user and
/// shared by every client of this process after that.
pub fn limiter(origin: &str, limit: HostLimit) -> Arc<DefaultDirectRateLimiter> {
    static HOSTS: LazyLock<Mutex<HashMap<String, Arc<DefaultDirectRateLimiter>>>> =
        LazyLock::new(Mutex::default);
    HOSTS
        .lock()
        .expect("host limits lock")
        .entry(origin.to_owned())
        .or_insert_with(|| Arc::new(limit.limiter()))
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_parse_with_the_field_and_the_fix_named() {
        assert_eq!(
            HostLimit::parse("6.6/20").unwrap(),
            HostLimit {
                per_second: 6.6,
                burst: 20
            }
        );
        assert_eq!(HostLimit::parse("5").unwrap().burst, 1);
        assert!(
            HostLimit::parse("fast")
                .unwrap_err()
                .contains("requests per second")
        );
        assert!(HostLimit::parse("0/5").unwrap_err().contains("above 0"));
    }

    #[test]
    fn emnify_s_documented_limit_never_exceeds_2000_in_5_minutes() {
        let limit = HostLimit::documented("https://cdn.emnify.net").unwrap();
        let most = f64::from(limit.burst) + limit.per_second * 300.0;
        assert!(most <= 2000.0, "{most}");
        assert_eq!(HostLimit::documented("https://dashboard.hologram.io"), None);
        assert_eq!(HostLimit::documented("http://127.0.0.1:8080"), None);
    }
}
