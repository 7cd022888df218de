//! Numbers as status messages write them.

/// `n` with thousands separators, as status messages show counts.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `n` and the noun, plural unless `n` is 1: "1 SIM", "2,000 SIMs", "0 devices".
pub fn count(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{} {noun}s", thousands(n))
    }
}

/// A duration as a person reads it, to the second: "2m 27s", "1h 5m".
pub fn duration(d: std::time::Duration) -> String {
    let whole = std::time::Duration::from_secs(d.as_secs());
    jiff::SignedDuration::try_from(whole)
        .map(|d| format!("{d:#}"))
        .unwrap_or_else(|_| format!("{}s", d.as_secs()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_read_as_english() {
        assert_eq!(count(1, "SIM"), "1 SIM");
        assert_eq!(count(0, "device"), "0 devices");
        assert_eq!(count(12_500, "SIM"), "12,500 SIMs");
    }

    #[test]
    fn durations_read_as_a_person_says_them() {
        use std::time::Duration;
        assert_eq!(duration(Duration::from_secs(147)), "2m 27s");
        assert_eq!(duration(Duration::from_millis(3_900)), "3s");
        assert_eq!(duration(Duration::from_secs(3_900)), "1h 5m");
    }
}
