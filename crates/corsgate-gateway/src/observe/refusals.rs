//! The refusal log: what the gateway refused lately, for `GET /refusals` and
//! the admin dashboard.
//!
//! Two fixed-size records, whatever the traffic:
//!
//! - a table of at most [`CAPACITY`] entries, one per (route, origin, reason),
//!   with a count and when it was first and last seen. When the table is full,
//!   a new key takes the place of the entry with the smallest count and starts
//!   from that count (the space-saving algorithm of Metwally, Agrawal and El
//!   Abbadi, "Efficient Computation of Frequent and Top-k Elements in Data
//!   Streams", 2005): a flood of distinct origins, each refused once, churns
//!   through the smallest entries and never pushes out an origin refused more
//!   often than the flood's share of the table; each entry says how much of its
//!   count it may have inherited (`count_error`);
//! - a ring of the last [`RECENT`] refusals as they came.
//!
//! Strings are cut to [`MAX_LOGGED_VALUE`](super::access_log::MAX_LOGGED_VALUE)
//! bytes, as in log lines, and written into the buffers of the entry they
//! replace: once the records are full, recording a refusal allocates nothing.
//! Allowed requests never reach this module; a refusal takes one short lock.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use corsgate_policy::{RejectionReason, RequestClass};
use hashbrown::HashTable;
use http::header::{ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD, HOST};
use http::{HeaderValue, Request};

use super::access_log::capped;
use super::metrics::RouteStats;
use crate::request::proxy::RequestCtx;

/// A header's value as text (most are ASCII: borrowed, not copied).
fn text(value: Option<&HeaderValue>) -> Cow<'_, str> {
    value.map_or(Cow::Borrowed(""), |v| String::from_utf8_lossy(v.as_bytes()))
}

/// Most (route, origin, reason) entries kept.
pub(crate) const CAPACITY: usize = 1024;
/// Most single refusals kept in the ring of recent ones.
pub(crate) const RECENT: usize = 256;

/// The refusal log of one gateway process; survives reloads.
pub(crate) struct RefusalLog {
    inner: Mutex<Inner>,
    /// Seeded per process: a client cannot choose origins that collide.
    hasher: RandomState,
}

/// One refusal as the request path hands it over: borrowed, nothing copied
/// until the lock is held and a buffer is there to take it.
struct Refusal<'a> {
    route: &'a Arc<RouteStats>,
    origin: &'a str,
    reason: RejectionReason,
    class: RequestClass,
    method: &'a str,
    requested_method: &'a str,
    requested_headers: &'a str,
    https: bool,
    host: &'a str,
    path: &'a str,
    request_id: &'a str,
    time: SystemTime,
}

/// The last refusal of an entry (or one of the ring): enough to explain it
/// again.
#[derive(Debug, Clone, Default)]
pub(crate) struct Sample {
    pub(crate) class: &'static str,
    pub(crate) method: String,
    /// `Access-Control-Request-Method` of a preflight.
    pub(crate) requested_method: String,
    /// `Access-Control-Request-Headers` of a preflight.
    pub(crate) requested_headers: String,
    pub(crate) https: bool,
    pub(crate) host: String,
    pub(crate) path: String,
    pub(crate) request_id: String,
}

impl Sample {
    fn set(&mut self, refusal: &Refusal<'_>) {
        self.class = refusal.class.as_str();
        put(&mut self.method, refusal.method);
        put(&mut self.requested_method, refusal.requested_method);
        put(&mut self.requested_headers, refusal.requested_headers);
        self.https = refusal.https;
        put(&mut self.host, refusal.host);
        put(&mut self.path, refusal.path);
        put(&mut self.request_id, refusal.request_id);
    }
}

/// `value`, cut as in log lines, written into `buffer` (which keeps its
/// allocation).
fn put(buffer: &mut String, value: &str) {
    buffer.clear();
    buffer.push_str(&capped(value));
}

/// One (route, origin, reason).
struct Entry {
    hash: u64,
    route: Arc<RouteStats>,
    origin: String,
    reason: RejectionReason,
    /// Refusals counted since `first_seen`.
    count: u64,
    /// The count of the entry this one replaced: earlier refusals of this key
    /// may hide in it.
    error: u64,
    first_seen: SystemTime,
    last_seen: SystemTime,
    sample: Sample,
    /// Unique over the process's life: a slot reused for another key gets a
    /// new one, so a fix computed outside the lock lands on its own entry.
    serial: u64,
    /// The fix, once computed, with the configuration generation it was
    /// computed for.
    fix: Option<(u64, Arc<serde_json::Value>)>,
}

impl Entry {
    /// What eviction ranks by: the most this key can have been refused.
    fn estimate(&self) -> u64 {
        self.count.saturating_add(self.error)
    }
}

/// One single refusal, in the ring.
#[derive(Clone)]
struct Recent {
    time: SystemTime,
    route: Arc<RouteStats>,
    origin: String,
    reason: RejectionReason,
    sample: Sample,
}

struct Inner {
    entries: Vec<Entry>,
    /// Slot by key hash.
    index: HashTable<usize>,
    /// (estimate, slot), smallest first: the next entry to give way.
    order: BTreeSet<(u64, usize)>,
    recent: Vec<Recent>,
    /// Where the next refusal goes in `recent` once it is full.
    next_recent: usize,
    total: u64,
    evictions: u64,
    serials: u64,
}

impl Default for RefusalLog {
    fn default() -> Self {
        RefusalLog {
            inner: Mutex::new(Inner {
                entries: Vec::new(),
                index: HashTable::new(),
                order: BTreeSet::new(),
                recent: Vec::new(),
                next_recent: 0,
                total: 0,
                evictions: 0,
                serials: 0,
            }),
            hasher: RandomState::new(),
        }
    }
}

impl RefusalLog {
    /// Records the refusal the request path just decided. Called only for a
    /// refused CORS request on a route.
    pub(crate) fn record<B>(&self, ctx: &RequestCtx<'_>, request: &Request<B>) {
        let Some(rejection) = ctx.decision.rejection() else {
            return;
        };
        let headers = request.headers();
        let origin = text(ctx.decision.origin());
        let requested_method = text(headers.get(ACCESS_CONTROL_REQUEST_METHOD));
        let requested_headers = text(headers.get(ACCESS_CONTROL_REQUEST_HEADERS));
        // The canonical authority the request was routed by (`resolve` wrote
        // it into `Host`), or the target's for HTTP/2.
        let host = match headers.get(HOST) {
            Some(host) => text(Some(host)),
            None => Cow::Borrowed(request.uri().authority().map_or("", |a| a.as_str())),
        };
        let request_id = text(Some(&ctx.request_id));
        self.add(&Refusal {
            route: ctx.stats,
            origin: &origin,
            reason: rejection.reason(),
            class: ctx.decision.class(),
            method: request.method().as_str(),
            requested_method: &requested_method,
            requested_headers: &requested_headers,
            https: ctx.conn.https,
            host: &host,
            path: request.uri().path(),
            request_id: &request_id,
            time: SystemTime::now(),
        });
    }

    fn add(&self, refusal: &Refusal<'_>) {
        let origin = capped(refusal.origin);
        let route = refusal.route.name();
        let hash = self.hasher.hash_one((route, &*origin, refusal.reason));
        let mut guard = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let inner = &mut *guard;
        inner.total += 1;

        let Inner {
            entries,
            index,
            order,
            recent: ring,
            next_recent,
            evictions,
            serials,
            ..
        } = inner;
        let found = index
            .find(hash, |&slot| {
                entries.get(slot).is_some_and(|e| {
                    e.reason == refusal.reason && e.origin == *origin && e.route.name() == route
                })
            })
            .copied();
        match found {
            Some(slot) => {
                if let Some(entry) = entries.get_mut(slot) {
                    order.remove(&(entry.estimate(), slot));
                    entry.count += 1;
                    entry.last_seen = refusal.time;
                    entry.sample.set(refusal);
                    order.insert((entry.estimate(), slot));
                }
            }
            None if entries.len() < CAPACITY => {
                *serials += 1;
                let mut entry = Entry {
                    hash,
                    route: refusal.route.clone(),
                    origin: origin.clone().into_owned(),
                    reason: refusal.reason,
                    count: 1,
                    error: 0,
                    first_seen: refusal.time,
                    last_seen: refusal.time,
                    sample: Sample::default(),
                    serial: *serials,
                    fix: None,
                };
                entry.sample.set(refusal);
                let slot = entries.len();
                order.insert((entry.estimate(), slot));
                entries.push(entry);
                index.insert_unique(hash, slot, |&slot| entries.get(slot).map_or(0, |e| e.hash));
            }
            None => {
                // Full: the entry with the smallest estimate gives way, and
                // the newcomer starts from its estimate.
                let Some((floor, slot)) = order.pop_first() else {
                    return;
                };
                let Some(entry) = entries.get_mut(slot) else {
                    return;
                };
                if let Ok(old) = index.find_entry(entry.hash, |&s| s == slot) {
                    old.remove();
                }
                *serials += 1;
                *evictions += 1;
                entry.hash = hash;
                if !Arc::ptr_eq(&entry.route, refusal.route) {
                    entry.route = refusal.route.clone();
                }
                put(&mut entry.origin, refusal.origin);
                entry.reason = refusal.reason;
                entry.count = 1;
                entry.error = floor;
                entry.first_seen = refusal.time;
                entry.last_seen = refusal.time;
                entry.sample.set(refusal);
                entry.serial = *serials;
                entry.fix = None;
                order.insert((entry.estimate(), slot));
                index.insert_unique(hash, slot, |&slot| entries.get(slot).map_or(0, |e| e.hash));
            }
        }

        // The ring: the oldest refusal gives its buffers to the newest.
        if ring.len() < RECENT {
            let mut recent = Recent {
                time: refusal.time,
                route: refusal.route.clone(),
                origin: String::new(),
                reason: refusal.reason,
                sample: Sample::default(),
            };
            put(&mut recent.origin, refusal.origin);
            recent.sample.set(refusal);
            ring.push(recent);
        } else if let Some(recent) = ring.get_mut(*next_recent) {
            recent.time = refusal.time;
            if !Arc::ptr_eq(&recent.route, refusal.route) {
                recent.route = refusal.route.clone();
            }
            put(&mut recent.origin, refusal.origin);
            recent.reason = refusal.reason;
            recent.sample.set(refusal);
            *next_recent = (*next_recent + 1) % RECENT;
        }
    }

    /// A page of the table, largest estimate first (ties: the latest seen
    /// first), with the ring, newest first; `route` keeps one route's only.
    pub(crate) fn page(&self, offset: usize, limit: usize, route: Option<&str>) -> Page {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let mut ranked: Vec<&Entry> = inner
            .entries
            .iter()
            .filter(|e| route.is_none_or(|r| e.route.name() == r))
            .collect();
        ranked.sort_by(|a, b| {
            b.estimate()
                .cmp(&a.estimate())
                .then(b.last_seen.cmp(&a.last_seen))
                .then(a.serial.cmp(&b.serial))
        });
        let matching = ranked.len();
        let entries = ranked
            .into_iter()
            .skip(offset)
            .take(limit)
            .map(|e| EntryView {
                serial: e.serial,
                route: e.route.name().to_owned(),
                origin: e.origin.clone(),
                reason: e.reason,
                count: e.count,
                error: e.error,
                first_seen: e.first_seen,
                last_seen: e.last_seen,
                sample: e.sample.clone(),
                fix: e.fix.clone(),
            })
            .collect();
        let (newer, older) = inner
            .recent
            .split_at(inner.next_recent.min(inner.recent.len()));
        let recent = newer
            .iter()
            .rev()
            .chain(older.iter().rev())
            .map(|r| RecentView {
                time: r.time,
                route: r.route.name().to_owned(),
                origin: r.origin.clone(),
                reason: r.reason,
                sample: r.sample.clone(),
            })
            .collect();
        Page {
            total: inner.total,
            evictions: inner.evictions,
            tracked: inner.entries.len(),
            matching,
            entries,
            recent,
        }
    }

    /// Keeps the fix computed for the entry `serial` (if it is still there).
    pub(crate) fn store_fix(&self, serial: u64, generation: u64, fix: Arc<serde_json::Value>) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = inner.entries.iter_mut().find(|e| e.serial == serial) {
            entry.fix = Some((generation, fix));
        }
    }
}

/// What [`RefusalLog::page`] copies out.
pub(crate) struct Page {
    /// Refusals recorded since the start.
    pub(crate) total: u64,
    /// Entries that gave way to a new key.
    pub(crate) evictions: u64,
    /// Entries in the table.
    pub(crate) tracked: usize,
    /// Entries matching the filter.
    pub(crate) matching: usize,
    pub(crate) entries: Vec<EntryView>,
    pub(crate) recent: Vec<RecentView>,
}

/// One entry, copied out of the lock.
pub(crate) struct EntryView {
    pub(crate) serial: u64,
    pub(crate) route: String,
    pub(crate) origin: String,
    pub(crate) reason: RejectionReason,
    pub(crate) count: u64,
    pub(crate) error: u64,
    pub(crate) first_seen: SystemTime,
    pub(crate) last_seen: SystemTime,
    pub(crate) sample: Sample,
    pub(crate) fix: Option<(u64, Arc<serde_json::Value>)>,
}

/// One refusal of the ring, copied out of the lock.
pub(crate) struct RecentView {
    pub(crate) time: SystemTime,
    pub(crate) route: String,
    pub(crate) origin: String,
    pub(crate) reason: RejectionReason,
    pub(crate) sample: Sample,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal<'a>(route: &'a Arc<RouteStats>, origin: &'a str) -> Refusal<'a> {
        Refusal {
            route,
            origin,
            reason: RejectionReason::OriginNotAllowed,
            class: RequestClass::Actual,
            method: "GET",
            requested_method: "",
            requested_headers: "",
            https: false,
            host: "api.example",
            path: "/api/x",
            request_id: "id",
            time: SystemTime::now(),
        }
    }

    #[test]
    fn a_flood_of_distinct_origins_keeps_the_frequent_ones_and_the_size() {
        let metrics = super::super::metrics::Metrics::default();
        let route = metrics.route("0:/api");
        let log = RefusalLog::default();
        for _ in 0..200 {
            log.add(&refusal(&route, "https://often.example"));
        }
        for i in 0..20_000 {
            log.add(&refusal(&route, &format!("https://h{i}.evil.example")));
            if i % 1000 == 0 {
                log.add(&refusal(&route, "https://often.example"));
            }
        }
        let page = log.page(0, 10, None);
        assert_eq!(page.tracked, CAPACITY);
        assert_eq!(page.total, 200 + 20_000 + 20);
        let top = &page.entries[0];
        assert_eq!(top.origin, "https://often.example");
        assert_eq!((top.count, top.error), (220, 0));
        assert_eq!(page.recent.len(), RECENT);
        assert_eq!(page.recent[0].origin, "https://h19999.evil.example");
        let inner = log.inner.lock().unwrap();
        assert_eq!(inner.entries.len(), CAPACITY);
        assert_eq!(inner.order.len(), CAPACITY);
        assert_eq!(inner.index.len(), CAPACITY);
        // The buffers stay within the cut.
        let long = "x".repeat(10_000);
        drop(inner);
        log.add(&refusal(&route, &long));
        let inner = log.inner.lock().unwrap();
        assert!(inner.entries.iter().all(|e| e.origin.len() < 300));
    }
}
