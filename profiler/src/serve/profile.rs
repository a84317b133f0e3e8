//! `GET /profile?seconds=N&view=V`: a pprof (gzip `profile.proto`, as `export --format
//! pprof` writes) of the N seconds from the request on: a snapshot now, another after N s,
//! and the lock waits of the interval between them. The wait is a timer of the serve loop,
//! so `/metrics` is scraped as usual meanwhile. At most [`MAX_IN_FLIGHT`] windows are open
//! at once (each holds one snapshot), so memory stays bounded; more get 429.
use std::{cell::Cell, time::Duration};

use crate::output::{export::pprof, flamegraph::View};

/// The longest window.
pub const MAX_SECONDS: u64 = 300;
/// `/profile` requests served at once.
pub const MAX_IN_FLIGHT: usize = 2;

/// What a `/profile` request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProfileQuery {
    pub seconds: u64,
    pub view: View,
}

impl ProfileQuery {
    pub fn window(&self) -> Duration {
        Duration::from_secs(self.seconds)
    }
}

/// A bad query: the one-line body of the 400 answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("seconds is missing: GET /profile?seconds=N (N from 1 to {MAX_SECONDS})")]
    MissingSeconds,
    #[error("seconds={0:?} is not a whole number from 1 to {MAX_SECONDS}")]
    BadSeconds(String),
    #[error("view={0:?} is not a lock view: zone-wait (default), zone-alloc, zone-free or locks")]
    BadView(String),
    #[error("unknown parameter {0:?}: /profile takes seconds and view")]
    Unknown(String),
    #[error("{0} is given more than once")]
    Repeated(String),
    #[error("the query is not valid percent-encoded UTF-8")]
    Encoding,
}

/// Parses the query string of a `/profile` request (without the `?`; None: no query).
pub fn parse_query(query: Option<&str>) -> Result<ProfileQuery, QueryError> {
    let (mut seconds, mut view) = (None, None);
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (k, v) = (decode(k)?, decode(v)?);
        let slot = match k.as_str() {
            "seconds" => &mut seconds,
            "view" => &mut view,
            _ => return Err(QueryError::Unknown(k)),
        };
        if slot.replace(v).is_some() {
            return Err(QueryError::Repeated(k));
        }
    }
    let seconds = seconds.ok_or(QueryError::MissingSeconds)?;
    let seconds = match seconds.parse::<u64>() {
        Ok(n) if (1..=MAX_SECONDS).contains(&n) && !seconds.starts_with('+') => n,
        _ => return Err(QueryError::BadSeconds(seconds)),
    };
    let view = match view {
        None => View::ZoneWait,
        Some(v) => match <View as clap::ValueEnum>::from_str(&v, false) {
            Ok(view) if pprof::supports(view) => view,
            _ => return Err(QueryError::BadView(v)),
        },
    };
    Ok(ProfileQuery { seconds, view })
}

/// Percent-decoding of one query component (`+` is a space, as forms send it).
fn decode(s: &str) -> Result<String, QueryError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = b
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or(QueryError::Encoding)?;
                out.push(hex);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| QueryError::Encoding)
}

/// A `/profile` request being served; dropped (answered, or the client gone) it frees its
/// place.
pub struct InFlight<'a>(&'a Cell<usize>);

impl<'a> InFlight<'a> {
    /// A place among the [`MAX_IN_FLIGHT`], or None when all are taken.
    pub fn take(count: &'a Cell<usize>) -> Option<InFlight<'a>> {
        if count.get() >= MAX_IN_FLIGHT {
            return None;
        }
        count.set(count.get() + 1);
        Some(InFlight(count))
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.set(self.0.get().saturating_sub(1));
    }
}

/// The file name a client saves the profile as.
pub fn file_name(q: &ProfileQuery, start_unix_ms: u64) -> String {
    format!("zoneprof-{}-{start_unix_ms}.pb.gz", q.view.name())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(q: &str) -> ProfileQuery {
        parse_query(Some(q)).unwrap_or_else(|e| panic!("{q}: {e}"))
    }

    fn err(q: Option<&str>) -> QueryError {
        parse_query(q).expect_err("must be refused")
    }

    #[test]
    fn seconds_and_the_lock_views_parse() {
        assert_eq!(
            ok("seconds=30"),
            ProfileQuery {
                seconds: 30,
                view: View::ZoneWait
            }
        );
        assert_eq!(ok("seconds=1").window(), Duration::from_secs(1));
        assert_eq!(ok("seconds=300").seconds, MAX_SECONDS);
        for (v, want) in [
            ("zone-wait", View::ZoneWait),
            ("zone-alloc", View::ZoneAlloc),
            ("zone-free", View::ZoneFree),
            ("locks", View::Locks),
        ] {
            assert_eq!(ok(&format!("view={v}&seconds=5")).view, want, "{v}");
        }
        // Percent-encoded, and empty pairs are skipped.
        assert_eq!(ok("seconds=%32&view=zone%2Dfree&").view, View::ZoneFree);
        assert_eq!(ok("&seconds=2&&").seconds, 2);
    }

    #[test]
    fn bad_queries_say_what_is_wrong_in_one_line() {
        assert_eq!(err(None), QueryError::MissingSeconds);
        assert_eq!(err(Some("")), QueryError::MissingSeconds);
        assert_eq!(err(Some("view=locks")), QueryError::MissingSeconds);
        for s in ["0", "301", "-1", "1.5", "", "x", "99999999999999999999"] {
            assert_eq!(
                err(Some(&format!("seconds={s}"))),
                QueryError::BadSeconds(s.into()),
                "{s}"
            );
        }
        assert_eq!(err(Some("seconds")), QueryError::BadSeconds(String::new()));
        // Decoded before parsing: `+` is a space, `%2B` a plus sign.
        assert_eq!(err(Some("seconds=+3")), QueryError::BadSeconds(" 3".into()));
        assert_eq!(
            err(Some("seconds=%2B3")),
            QueryError::BadSeconds("+3".into())
        );
        for v in ["pages", "skb-free", "Zone-Wait", "nope", ""] {
            assert_eq!(
                err(Some(&format!("seconds=2&view={v}"))),
                QueryError::BadView(v.into()),
                "{v}"
            );
        }
        assert_eq!(
            err(Some("seconds=2&debug=1")),
            QueryError::Unknown("debug".into())
        );
        assert_eq!(
            err(Some("seconds=2&seconds=3")),
            QueryError::Repeated("seconds".into())
        );
        for q in ["seconds=%zz", "seconds=%3", "view=%ff&seconds=1"] {
            assert_eq!(err(Some(q)), QueryError::Encoding, "{q}");
        }
        for e in [
            QueryError::MissingSeconds,
            QueryError::BadView("x".into()),
            QueryError::Encoding,
        ] {
            assert!(!e.to_string().contains('\n'), "{e}");
        }
    }

    #[test]
    fn in_flight_places_are_bounded_and_freed_on_drop() {
        let n = Cell::new(0);
        let a = InFlight::take(&n).expect("first");
        let b = InFlight::take(&n).expect("second");
        assert!(InFlight::take(&n).is_none());
        drop(a);
        let c = InFlight::take(&n).expect("a freed place");
        drop((b, c));
        assert_eq!(n.get(), 0);
    }

    #[test]
    fn file_name_names_the_view_and_start() {
        assert_eq!(
            file_name(&ok("seconds=2&view=locks"), 1_700_000_000_000),
            "zoneprof-locks-1700000000000.pb.gz"
        );
    }
}
