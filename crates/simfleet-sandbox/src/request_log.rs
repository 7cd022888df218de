//! The requests made to the sandbox: the most recent ones in order (bounded), and every
//! distinct (verb, group, resource, namespace, user agent) ever seen, which the RBAC check
//! compares with the chart's rules.

use std::collections::{BTreeSet, VecDeque};

/// A request made to the sandbox, for the RBAC check.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct RequestRecord {
    /// Kubernetes verb (get, list, watch, create, update, patch, delete).
    pub verb: String,
    /// API group ("" for core).
    pub group: String,
    /// Resource (plural), with `/status` for the subresource.
    pub resource: String,
    /// Namespace, if any.
    pub namespace: String,
    /// The client's User-Agent.
    pub user_agent: String,
    /// The `fieldSelector` of a list or watch (empty without one): a watch by name is not a
    /// watch of every object.
    pub field_selector: String,
}

/// Requests kept in order; older ones are dropped (their kinds stay in the distinct set).
pub(crate) const RECENT_REQUESTS: usize = 50_000;

/// The request log: bounded in memory however long the sandbox runs.
#[derive(Debug, Default)]
pub(crate) struct RequestLog {
    recent: VecDeque<RequestRecord>,
    distinct: BTreeSet<RequestRecord>,
    total: u64,
}

impl RequestLog {
    /// Notes one request.
    pub fn push(&mut self, record: RequestRecord) {
        self.total += 1;
        if !self.distinct.contains(&record) {
            self.distinct.insert(record.clone());
        }
        if self.recent.len() == RECENT_REQUESTS {
            self.recent.pop_front();
        }
        self.recent.push_back(record);
    }

    /// The most recent requests (at most [`RECENT_REQUESTS`]), oldest first.
    pub(crate) fn recent(&self) -> Vec<RequestRecord> {
        self.recent.iter().cloned().collect()
    }

    /// How many requests were made, however many the log still holds.
    pub(crate) fn total(&self) -> u64 {
        self.total
    }

    /// Every distinct request ever made, sorted.
    pub fn distinct(&self) -> Vec<RequestRecord> {
        self.distinct.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(verb: &str, namespace: &str) -> RequestRecord {
        RequestRecord {
            verb: verb.into(),
            group: "simfleet.io".into(),
            resource: "simgroups".into(),
            namespace: namespace.into(),
            user_agent: "test".into(),
            field_selector: String::new(),
        }
    }

    #[test]
    fn the_log_keeps_the_recent_requests_in_order_and_every_kind_ever_seen() {
        let mut log = RequestLog::default();
        log.push(record("create", "a"));
        for _ in 0..RECENT_REQUESTS {
            log.push(record("get", "a"));
        }
        log.push(record("patch", "b"));
        let recent = log.recent();
        assert_eq!(recent.len(), RECENT_REQUESTS, "bounded");
        assert_eq!(recent.last(), Some(&record("patch", "b")));
        assert_eq!(recent[0], record("get", "a"), "the oldest went first");
        let verbs: Vec<String> = log.distinct().into_iter().map(|r| r.verb).collect();
        assert_eq!(
            verbs,
            ["create", "get", "patch"],
            "the first create is still known"
        );
    }
}
