//! Injected faults: error statuses, proxy pages and dropped connections on
//! chosen or random requests.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// What an injected fault does to a request.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Answer with this status and a Mattermost `AppError` JSON body (id
    /// `api.stand_in.injected_fault.app_error`), as the server itself does
    /// when its database fails.
    Status(u16),
    /// Answer with this status and an HTML page, as a reverse proxy in front
    /// of Mattermost does (`<html>...<h1>502 Bad Gateway</h1>...`). The answer
    /// comes from the "proxy", so it carries no Mattermost headers.
    ProxyHtml(u16),
    /// Close the TCP connection without answering.
    DropConnection,
}

/// When an injected fault strikes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FaultPoint {
    /// Before the handler runs: the server changes nothing.
    #[default]
    BeforeHandler,
    /// After the handler ran: the change happened, but the answer is lost or
    /// replaced (the "did my POST go through?" case).
    AfterHandler,
}

#[derive(Clone, Debug)]
enum Trigger {
    /// Fires on matching requests number `first ..= first + times - 1`
    /// (1-based, counted from when the rule was added).
    Nth { first: u64, times: u64, seen: u64 },
    /// Fires on each matching request with this probability.
    Random { probability: f64, rng: Box<StdRng> },
}

/// A rule saying which requests get which [`Fault`].
///
/// Endpoints are route keys as counted by
/// [`StandIn::requests`](super::StandIn::requests), e.g.
/// `"POST /api/v4/users/{user_id}/tokens"`; `"*"` matches every request.
///
/// ```
/// use mattermost_tokens_stand_in::{Fault, FaultRule};
///
/// // The second token creation succeeds on the server, but its answer is
/// // replaced by a proxy's 504 page.
/// let rule = FaultRule::nth("POST /api/v4/users/{user_id}/tokens", 2, Fault::ProxyHtml(504))
///     .after_handler();
/// # let _ = rule;
/// ```
#[derive(Clone, Debug)]
pub struct FaultRule {
    endpoint: String,
    trigger: Trigger,
    fault: Fault,
    point: FaultPoint,
}

impl FaultRule {
    /// Fault the `n`-th request (1-based, counted from when the rule is added)
    /// that matches `endpoint`.
    pub fn nth(endpoint: impl Into<String>, n: u64, fault: Fault) -> Self {
        Self {
            endpoint: endpoint.into(),
            trigger: Trigger::Nth {
                first: n.max(1),
                times: 1,
                seen: 0,
            },
            fault,
            point: FaultPoint::BeforeHandler,
        }
    }

    /// Fault the next request that matches `endpoint`.
    pub fn next(endpoint: impl Into<String>, fault: Fault) -> Self {
        Self::nth(endpoint, 1, fault)
    }

    /// Fault every request that matches `endpoint`, until the rule is
    /// cleared.
    pub fn always(endpoint: impl Into<String>, fault: Fault) -> Self {
        Self::nth(endpoint, 1, fault).times(u64::MAX)
    }

    /// Fault each request with probability `probability` (0.0 to 1.0),
    /// drawing from a generator seeded with `seed` so a run can be repeated.
    /// Matches every endpoint unless narrowed with [`FaultRule::on`].
    pub fn random(probability: f64, seed: u64, fault: Fault) -> Self {
        Self {
            endpoint: "*".to_owned(),
            trigger: Trigger::Random {
                probability: probability.clamp(0.0, 1.0),
                rng: Box::new(StdRng::seed_from_u64(seed)),
            },
            fault,
            point: FaultPoint::BeforeHandler,
        }
    }

    /// For an `nth` rule: fault `times` consecutive matching requests,
    /// starting with the `n`-th.
    pub fn times(mut self, times: u64) -> Self {
        if let Trigger::Nth { times: t, .. } = &mut self.trigger {
            *t = times.max(1);
        }
        self
    }

    /// Only requests to this endpoint (route key, or `"*"`) are considered.
    pub fn on(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = endpoint.into();
        self
    }

    /// Strike after the handler ran: the change is made, the answer lost.
    pub fn after_handler(mut self) -> Self {
        self.point = FaultPoint::AfterHandler;
        self
    }

    /// Strike before the handler runs (the default): nothing changes.
    pub fn before_handler(mut self) -> Self {
        self.point = FaultPoint::BeforeHandler;
        self
    }

    fn matches(&self, key: &str) -> bool {
        self.endpoint == "*" || self.endpoint == key
    }

    /// Counts the request and says whether the rule fires on it.
    fn observe(&mut self) -> bool {
        match &mut self.trigger {
            Trigger::Nth { first, times, seen } => {
                *seen += 1;
                *seen >= *first && *seen - *first < *times
            }
            Trigger::Random { probability, rng } => rng.random_bool(*probability),
        }
    }

    fn exhausted(&self) -> bool {
        match &self.trigger {
            Trigger::Nth { first, times, seen } => *seen >= *first && *seen - *first >= *times - 1,
            Trigger::Random { .. } => false,
        }
    }
}

/// A fault chosen for one request.
#[derive(Clone, Debug)]
pub(crate) struct Chosen {
    pub fault: Fault,
    pub point: FaultPoint,
}

/// The installed rules.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    rules: Vec<FaultRule>,
}

impl Faults {
    pub fn add(&mut self, rule: FaultRule) {
        self.rules.push(rule);
    }

    pub fn clear(&mut self) {
        self.rules.clear();
    }

    /// Every matching rule sees the request; the first that fires wins.
    pub fn choose(&mut self, key: &str) -> Option<Chosen> {
        if self.rules.is_empty() {
            return None;
        }
        let mut chosen = None;
        for rule in self.rules.iter_mut().filter(|r| r.matches(key)) {
            if rule.observe() && chosen.is_none() {
                chosen = Some(Chosen {
                    fault: rule.fault.clone(),
                    point: rule.point,
                });
            }
        }
        self.rules.retain(|r| !r.exhausted());
        chosen
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nth_fires_once_then_is_dropped() {
        let mut faults = Faults::default();
        faults.add(FaultRule::nth("GET /x", 2, Fault::Status(500)));
        assert!(faults.choose("GET /x").is_none());
        assert!(faults.choose("GET /y").is_none());
        assert!(faults.choose("GET /x").is_some());
        assert!(faults.rules.is_empty());
        assert!(faults.choose("GET /x").is_none());
    }

    #[test]
    fn times_fires_consecutively() {
        let mut faults = Faults::default();
        faults.add(FaultRule::next("*", Fault::DropConnection).times(2));
        assert!(faults.choose("GET /a").is_some());
        assert!(faults.choose("GET /b").is_some());
        assert!(faults.choose("GET /c").is_none());
    }

    #[test]
    fn random_is_repeatable() {
        let run = || {
            let mut faults = Faults::default();
            faults.add(FaultRule::random(0.3, 7, Fault::Status(503)));
            (0..100)
                .map(|_| faults.choose("GET /a").is_some())
                .collect::<Vec<_>>()
        };
        let a = run();
        assert_eq!(a, run());
        let hits = a.iter().filter(|h| **h).count();
        assert!((10..60).contains(&hits), "{hits}");
    }
}
