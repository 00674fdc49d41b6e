//! Prometheus metrics through the `metrics` facade: the use cases count their events
//! (`metrics::counter!`), `metrics-exporter-prometheus` renders them, and
//! `metrics-process` adds the process figures. Labels are bounded sets (outcomes, path
//! templates, statuses): never a username, token, key or address.
//!
//! The recorder is process-wide, like the process it describes: several servers in one
//! process (tests) share it.

use std::sync::OnceLock;

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// `tokenmint_http_requests_total{method, route, status}`.
pub const HTTP_REQUESTS: &str = "tokenmint_http_requests_total";
/// `tokenmint_http_request_duration_seconds{route}`.
pub const HTTP_DURATION: &str = "tokenmint_http_request_duration_seconds";
/// `tokenmint_logins_total{outcome}`: `success`, `failure`, `rate_limited`, `busy`.
pub const LOGINS: &str = "tokenmint_logins_total";
/// `tokenmint_refreshes_total{outcome}`: `rotated`, `converged`, `reused`, `expired`,
/// `revoked`, `invalid`.
pub const REFRESHES: &str = "tokenmint_refreshes_total";
/// `tokenmint_revocation_checks_total{outcome}`: `active`, `revoked`, `unavailable`.
pub const REVOCATION_CHECKS: &str = "tokenmint_revocation_checks_total";
/// `tokenmint_revocation_mirror`: 1 while revocation checks are answered from the
/// in-memory mirror of the Redis list, 0 while they read Redis.
pub const REVOCATION_MIRROR: &str = "tokenmint_revocation_mirror";
/// `tokenmint_revocation_list_refills_total`: the list copied again from the database
/// (found behind it, or empty).
pub const REVOCATION_REFILLS: &str = "tokenmint_revocation_list_refills_total";
/// `tokenmint_tickets_total{outcome}`: `issued`, `redeemed`, `refused`.
pub const TICKETS: &str = "tokenmint_tickets_total";
/// `tokenmint_signing_key_rotations_total`.
pub const KEY_ROTATIONS: &str = "tokenmint_signing_key_rotations_total";
/// `tokenmint_signing_keys{status}`.
pub const SIGNING_KEYS: &str = "tokenmint_signing_keys";
/// `tokenmint_db_connections{state}`: `idle`, `in_use`.
pub const DB_CONNECTIONS: &str = "tokenmint_db_connections";
/// `tokenmint_password_hashes_in_flight`.
pub const HASHES_IN_FLIGHT: &str = "tokenmint_password_hashes_in_flight";

/// Every outcome of each counted event: exported at 0 from the start, so that `rate()`
/// and alerts work on a fresh instance.
const OUTCOMES: &[(&str, &[&str])] = &[
    (LOGINS, &["success", "failure", "rate_limited", "busy"]),
    (
        REFRESHES,
        &[
            "rotated",
            "converged",
            "reused",
            "expired",
            "revoked",
            "invalid",
        ],
    ),
    (REVOCATION_CHECKS, &["active", "revoked", "unavailable"]),
    (TICKETS, &["issued", "redeemed", "refused"]),
];

/// Latency buckets, seconds: from a cached JWKS answer to a contended argon2 login.
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

struct Installed {
    handle: PrometheusHandle,
    process: metrics_process::Collector,
}

static INSTALLED: OnceLock<Option<Installed>> = OnceLock::new();

/// Installs the recorder (once per process) and describes every metric.
pub fn install() {
    INSTALLED.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(HTTP_DURATION.to_owned()), BUCKETS)
            .ok()?
            .build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            // Another recorder is installed (an embedding program's): leave it.
            return None;
        }
        describe();
        for (name, outcomes) in OUTCOMES {
            for outcome in *outcomes {
                metrics::counter!(*name, "outcome" => *outcome).increment(0);
            }
        }
        metrics::counter!(KEY_ROTATIONS).increment(0);
        metrics::counter!(REVOCATION_REFILLS).increment(0);
        let process = metrics_process::Collector::default();
        process.describe();
        Some(Installed { handle, process })
    });
}

fn describe() {
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests answered, by method, route template and status."
    );
    describe_histogram!(
        HTTP_DURATION,
        Unit::Seconds,
        "Time to answer, by route template."
    );
    describe_counter!(LOGINS, "Login attempts by outcome.");
    describe_counter!(REFRESHES, "Refresh-token presentations by outcome.");
    describe_counter!(
        REVOCATION_CHECKS,
        "Revocation-list checks by outcome (unavailable: the list could not be read; the request failed closed)."
    );
    describe_counter!(
        REVOCATION_REFILLS,
        "Revocation-list refills from the database: a check found the list behind the database or empty (at a start, after a lost publication, a flush or a restore, and now and then when revocations from several places arrive out of order)."
    );
    describe_counter!(
        TICKETS,
        "Connect tickets issued, redeemed and refused at redemption."
    );
    describe_counter!(
        KEY_ROTATIONS,
        "Signing-key rotations (scheduled or on demand)."
    );
    describe_gauge!(SIGNING_KEYS, "Signing keys by status.");
    describe_gauge!(
        REVOCATION_MIRROR,
        "1 while revocation checks are answered from the in-memory mirror of the Redis list (subscribed and complete), 0 while they read Redis."
    );
    describe_gauge!(DB_CONNECTIONS, "Database pool connections by state.");
    describe_gauge!(
        HASHES_IN_FLIGHT,
        "Password hashes (argon2id) being computed or waiting for a thread."
    );
}

/// The Prometheus text exposition of everything recorded, after refreshing the process
/// figures; `None` if this process uses another recorder.
pub fn render() -> Option<String> {
    let installed = INSTALLED.get()?.as_ref()?;
    installed.process.collect();
    installed.handle.run_upkeep();
    Some(installed.handle.render())
}

/// Counts one event.
///
/// Each worker keeps the handles it used, so an event costs a short scan, not the label's
/// allocation and a lookup in the registry that every worker shares (a token check counts
/// one). Names and outcomes are the code's own constants, so the list is bounded. Until
/// [`install`] ran there is nothing to keep: a handle from before would count nowhere.
pub fn count(name: &'static str, outcome: &'static str) {
    use std::cell::RefCell;
    type Counters = Vec<(&'static str, &'static str, metrics::Counter)>;
    thread_local! {
        static COUNTERS: RefCell<Counters> = const { RefCell::new(Vec::new()) };
    }
    if INSTALLED.get().is_none() {
        return metrics::counter!(name, "outcome" => outcome).increment(1);
    }
    COUNTERS.with_borrow_mut(|counters| {
        let known = counters
            .iter()
            .find(|(n, o, _)| *o == outcome && *n == name);
        if let Some((_, _, counter)) = known {
            counter.increment(1);
        } else {
            let counter = metrics::counter!(name, "outcome" => outcome);
            counter.increment(1);
            counters.push((name, outcome, counter));
        }
    });
}

/// Drains the histograms' sample buffers into their buckets. The exporter does it at
/// each scrape; between scrapes (or with no scraper at all) the buffers would grow with
/// every request, so the server also calls this every few seconds.
pub fn upkeep() {
    if let Some(Some(installed)) = INSTALLED.get() {
        installed.handle.run_upkeep();
    }
}

/// Records one answered request: `path` is the request's (`None`: no request to name,
/// counted as `unmatched`), and `template` gives its route template. It is not asked for
/// a path this worker has seen as a route of its own (a template without `{...}`): actix
/// finds a template by matching the path against the routes again, and hands it back as
/// a new string.
pub fn http_request(
    method: &'static str,
    status: u16,
    path: Option<&str>,
    template: impl FnOnce() -> Option<String>,
    seconds: f64,
) {
    use std::cell::RefCell;
    thread_local! {
        static ROUTES: RefCell<Routes> = RefCell::new(Routes::default());
    }
    if INSTALLED.get().is_none() {
        // Nothing to keep yet (see [`count`]).
        let label = path.and_then(|_| template());
        let mut route = Route::new(label.as_deref().unwrap_or("unmatched"));
        return route.record(method, status, seconds);
    }
    ROUTES.with_borrow_mut(|routes| routes.record(method, status, path, template, seconds));
}

/// A worker's handles for the request metrics, by route: a request costs a lookup, not
/// the labels' allocation and the registry's lock.
///
/// A route whose template is its own path (no `{...}` segment) is found by the request's
/// path, without asking for the template. Any other path asks for its template and is
/// kept under that, never under the path. Both are bounded by the routes there are.
#[derive(Default)]
struct Routes {
    /// Routes whose template is their path, by path.
    fixed: std::collections::HashMap<String, Route>,
    /// The other routes, by template.
    templated: std::collections::HashMap<String, Route>,
    unmatched: Option<Route>,
}

impl Routes {
    fn record(
        &mut self,
        method: &'static str,
        status: u16,
        path: Option<&str>,
        template: impl FnOnce() -> Option<String>,
        seconds: f64,
    ) {
        if let Some(route) = path.and_then(|path| self.fixed.get_mut(path)) {
            return route.record(method, status, seconds);
        }
        if self.fixed.len() + self.templated.len() > 4096 {
            // Bounded by the routes there are; this only guards the guard.
            self.fixed.clear();
            self.templated.clear();
        }
        let route = match path.and_then(|path| Some((path, template()?))) {
            Some((path, template)) if template == path => self
                .fixed
                .entry(template)
                .or_insert_with_key(|t| Route::new(t)),
            Some((_, template)) => self
                .templated
                .entry(template)
                .or_insert_with_key(|t| Route::new(t)),
            None => self
                .unmatched
                .get_or_insert_with(|| Route::new("unmatched")),
        };
        route.record(method, status, seconds);
    }
}

/// One route's latency histogram, and its request counters by (method, status): a
/// handful per route, so a short list.
struct Route {
    label: String,
    duration: metrics::Histogram,
    requests: Vec<(&'static str, u16, metrics::Counter)>,
}

impl Route {
    fn new(label: &str) -> Self {
        Self {
            label: label.to_owned(),
            duration: metrics::histogram!(HTTP_DURATION, "route" => label.to_owned()),
            requests: Vec::new(),
        }
    }

    fn record(&mut self, method: &'static str, status: u16, seconds: f64) {
        let known = self
            .requests
            .iter()
            .find(|(m, s, _)| *m == method && *s == status);
        if let Some((_, _, counter)) = known {
            counter.increment(1);
        } else {
            let counter = metrics::counter!(
                HTTP_REQUESTS,
                "method" => method,
                "route" => self.label.clone(),
                "status" => status.to_string()
            );
            counter.increment(1);
            self.requests.push((method, status, counter));
        }
        self.duration.record(seconds);
    }
}
