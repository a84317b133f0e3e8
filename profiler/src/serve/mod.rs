//! `zoneprof serve`: a live session whose aggregates are scraped as Prometheus metrics
//! (`GET /metrics`), until SIGINT, SIGTERM or SIGHUP detaches the probes; a pprof of the
//! next N seconds on `GET /profile?seconds=N` (`profile`); with `--rotate`, also rolling
//! recordings of each interval (`rotate`); with the hidden `--replay REC`, a recording
//! played back instead of probes (`replay`, for the benchmark).
//!
//! One thread: connections are tasks of a `LocalSet`, each scrape reads the maps and
//! renders in the handler (no await while the session is borrowed). At most
//! [`MAX_CONNECTIONS`] connections are served at once and a request's headers must arrive
//! within [`HEADER_TIMEOUT`], so clients cannot make memory grow.
pub mod profile;
pub mod replay;
pub mod rotate;

use std::{
    cell::{Cell, RefCell},
    convert::Infallible,
    net::SocketAddr,
    path::PathBuf,
    rc::Rc,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use http_body_util::Full;
use hyper::{
    Method, Request, Response, StatusCode,
    body::{Bytes, Incoming},
    header,
    server::conn::http1,
    service::service_fn,
};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::signal::unix::{SignalKind, signal};

use crate::{
    capture::{
        live::{Live, LiveOpts, Snapshot},
        readback::AggregateError,
    },
    kernel::attach,
    model::delta::delta,
    output::{
        export::pprof,
        prometheus::{CONTENT_TYPE, Exposition, MetricsOpts},
    },
};

/// Connections served at once; more are closed on accept.
pub const MAX_CONNECTIONS: usize = 64;
/// How long a client may take to send a request's headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

pub struct ServeOpts {
    pub listen: SocketAddr,
    pub metrics: MetricsOpts,
    pub live: LiveOpts,
    /// Rolling recordings (None: none).
    pub rotate: Option<rotate::Rotate>,
    /// Serve this recording at its own rates instead of attaching probes (benchmark).
    pub replay: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: address already in use")]
    AddrInUse { addr: SocketAddr },
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Where the snapshots come from.
enum Source {
    Live(Live),
    Replay(replay::Replay),
}

impl Source {
    fn snapshot(&mut self) -> Result<Snapshot, AggregateError> {
        match self {
            Source::Live(l) => l.snapshot(),
            Source::Replay(r) => Ok(r.snapshot()),
        }
    }
}

/// What the handlers share.
struct Shared {
    state: RefCell<State>,
    /// `/profile` requests being served.
    profiles: Cell<usize>,
}

struct State {
    source: Source,
    exposition: Exposition,
    /// Where the current rotation interval started (with `--rotate`).
    rotated: Option<Snapshot>,
}

impl State {
    /// Writes the interval since the last rotation; a failure is said and serving goes on.
    fn rotate(&mut self, r: &rotate::Rotate) {
        let written = self
            .source
            .snapshot()
            .map_err(anyhow::Error::from)
            .and_then(|cur| {
                let path = match &self.rotated {
                    Some(prev) => Some(r.write(prev, &cur)?),
                    None => None,
                };
                self.rotated = Some(cur);
                Ok(path)
            });
        if let Err(e) = written {
            eprintln!("zoneprof: rotation failed: {e:#}");
        }
    }

    /// The exposition of everything since attach, and what producing it took.
    fn scrape(&mut self) -> Result<String, AggregateError> {
        let t = Instant::now();
        let snap = self.source.snapshot()?;
        let mut text = self.exposition.render(&snap.rec);
        crate::output::prometheus::scrape_duration(&mut text, t.elapsed());
        Ok(text)
    }
}

/// Serves until a signal; then detaches. Privileges and the address are checked before any
/// probe is loaded.
pub async fn serve(opts: ServeOpts) -> Result<()> {
    let replay = match &opts.replay {
        Some(path) => Some(replay::Replay::open(path)?),
        None => {
            attach::check_privileges()?;
            None
        }
    };
    if let Some(r) = &opts.rotate {
        r.check()?;
    }
    let listener =
        tokio::net::TcpListener::bind(opts.listen)
            .await
            .map_err(|source| match source.kind() {
                std::io::ErrorKind::AddrInUse => ServeError::AddrInUse { addr: opts.listen },
                _ => ServeError::Listen {
                    addr: opts.listen,
                    source,
                },
            })?;
    let bound = listener
        .local_addr()
        .context("reading the listening address")?;
    let mut sigint = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    let mut sigterm = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut sighup = signal(SignalKind::hangup()).context("installing SIGHUP handler")?;

    let source = match (replay, &opts.replay) {
        (Some(r), Some(path)) => {
            eprintln!(
                "zoneprof: serving http://{bound}/metrics (replaying {}: {} CPUs at its recorded rates, no probes); SIGINT or SIGTERM exits",
                path.display(),
                r.recording().cpus.len()
            );
            Source::Replay(r)
        }
        _ => {
            let live = Live::attach(&opts.live)?;
            let attached = live.probes().iter().filter(|p| p.attached).count();
            eprintln!(
                "zoneprof: serving http://{bound}/metrics ({attached}/{} probes attached); SIGINT or SIGTERM detaches and exits",
                live.probes().len()
            );
            Source::Live(live)
        }
    };
    let shared = Rc::new(Shared {
        state: RefCell::new(State {
            source,
            exposition: Exposition::new(opts.metrics),
            rotated: None,
        }),
        profiles: Cell::new(0),
    });
    let state = &shared.state;
    let mut rotation = opts.rotate.as_ref().map(|r| {
        state.borrow_mut().rotate(r);
        let mut t = tokio::time::interval(r.every);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    if let Some(t) = &mut rotation {
        // The first tick is immediate: the interval has just begun.
        t.tick().await;
    }
    let open = Rc::new(Cell::new(0usize));
    let local = tokio::task::LocalSet::new();
    let signal = local
        .run_until(async {
            loop {
                tokio::select! {
                    _ = sigint.recv() => break "SIGINT",
                    _ = sigterm.recv() => break "SIGTERM",
                    _ = sighup.recv() => break "SIGHUP",
                    _ = async {
                        match &mut rotation {
                            Some(t) => { t.tick().await; }
                            None => std::future::pending().await,
                        }
                    } => {
                        if let Some(r) = &opts.rotate {
                            state.borrow_mut().rotate(r);
                        }
                    }
                    accepted = listener.accept() => {
                        // A failed accept (e.g. out of descriptors) is the client's loss.
                        let Ok((stream, _)) = accepted else { continue };
                        if open.get() >= MAX_CONNECTIONS {
                            drop(stream);
                            continue;
                        }
                        open.set(open.get() + 1);
                        let (shared, open) = (shared.clone(), open.clone());
                        tokio::task::spawn_local(async move {
                            let svc = service_fn(|req| {
                                let shared = shared.clone();
                                async move { Ok::<_, Infallible>(respond(&shared, &req).await) }
                            });
                            let conn = http1::Builder::new()
                                .timer(TokioTimer::new())
                                .header_read_timeout(HEADER_TIMEOUT)
                                .serve_connection(TokioIo::new(stream), svc);
                            // A client that goes away mid-request ends only its connection.
                            conn.await.ok();
                            open.set(open.get() - 1);
                        });
                    }
                }
            }
        })
        .await;
    // Connections still open (keep-alive scrapers) end with the LocalSet.
    drop(local);
    let mut st = state.borrow_mut();
    // The last, shorter interval too: nothing seen is lost.
    if let Some(r) = &opts.rotate {
        st.rotate(r);
    }
    match &mut st.source {
        Source::Live(live) => {
            live.detach();
            eprintln!(
                "zoneprof: {signal}: probes detached after {:.1} s",
                live.since_attach().as_secs_f64()
            );
        }
        Source::Replay(r) => eprintln!(
            "zoneprof: {signal}: replay stopped after {:.1} s",
            r.since_start().as_secs_f64()
        ),
    }
    Ok(())
}

const TEXT: &str = "text/plain; charset=utf-8";

async fn respond(shared: &Shared, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let method = req.method();
    let get = matches!(*method, Method::GET | Method::HEAD);
    match (get, req.uri().path()) {
        (true, "/metrics") => match shared.state.borrow_mut().scrape() {
            Ok(text) => reply(StatusCode::OK, CONTENT_TYPE, text),
            Err(e) => reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                TEXT,
                format!("zoneprof: scrape failed: {e}\n"),
            ),
        },
        // Not HEAD: it would wait the whole window for no body.
        (true, "/profile") if *method == Method::GET => profile(shared, req.uri().query()).await,
        (true, "/") => reply(
            StatusCode::OK,
            "text/html; charset=utf-8",
            "<!doctype html><title>zoneprof</title><h1>zoneprof</h1>\
             <p><a href=\"/metrics\">/metrics</a>: zone-lock wait, PCP pages and SKB frees \
             as Prometheus metrics.</p>\
             <p><a href=\"/profile?seconds=10\">/profile?seconds=N</a>: the zone-lock waits \
             of the next N seconds as a pprof profile (<code>&amp;view=</code>zone-wait, \
             zone-alloc, zone-free or locks).</p>\n"
                .into(),
        ),
        (_, "/profile") => method_not_allowed("GET"),
        (false, "/metrics" | "/") => method_not_allowed("GET, HEAD"),
        _ => reply(
            StatusCode::NOT_FOUND,
            TEXT,
            "not found; try /metrics or /profile?seconds=N\n".into(),
        ),
    }
}

fn method_not_allowed(allow: &'static str) -> Response<Full<Bytes>> {
    let mut r = reply(
        StatusCode::METHOD_NOT_ALLOWED,
        TEXT,
        format!("only {}\n", allow.replace(", ", " and ")),
    );
    r.headers_mut()
        .insert(header::ALLOW, header::HeaderValue::from_static(allow));
    r
}

/// `GET /profile?seconds=N&view=V`: the lock waits of the next N seconds as a gzip pprof.
async fn profile(shared: &Shared, query: Option<&str>) -> Response<Full<Bytes>> {
    let q = match profile::parse_query(query) {
        Ok(q) => q,
        Err(e) => return reply(StatusCode::BAD_REQUEST, TEXT, format!("zoneprof: {e}\n")),
    };
    let Some(_place) = profile::InFlight::take(&shared.profiles) else {
        let mut r = reply(
            StatusCode::TOO_MANY_REQUESTS,
            TEXT,
            format!(
                "zoneprof: {} /profile requests are already being served; retry when one ends\n",
                profile::MAX_IN_FLIGHT
            ),
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from(q.seconds));
        return r;
    };
    let failed = |e: &dyn std::fmt::Display| {
        reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            TEXT,
            format!("zoneprof: profile failed: {e}\n"),
        )
    };
    // The borrows end with each statement: other requests run while this one waits.
    let first = shared.state.borrow_mut().source.snapshot();
    let first = match first {
        Ok(s) => s,
        Err(e) => return failed(&e),
    };
    tokio::time::sleep(q.window()).await;
    let last = shared.state.borrow_mut().source.snapshot();
    let window = match last.map_err(anyhow::Error::from).and_then(|last| {
        let mut w = delta(&first.rec, &last.rec)?;
        w.end_reason = "profile".into();
        Ok(w)
    }) {
        Ok(w) => w,
        Err(e) => return failed(&format!("{e:#}")),
    };
    drop(first);
    let source = format!("GET /profile?seconds={}&view={}", q.seconds, q.view.name());
    let gz = pprof::build_allow_empty(&window, q.view, None, &source)
        .map_err(anyhow::Error::from)
        .and_then(|p| Ok(pprof::encode_gz(&p)?));
    match gz {
        Ok(bytes) => {
            let mut r = Response::new(Full::new(Bytes::from(bytes)));
            let name = profile::file_name(&q, window.start_unix_ms);
            let h = r.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("application/octet-stream"),
            );
            if let Ok(v) =
                header::HeaderValue::from_str(&format!("attachment; filename=\"{name}\""))
            {
                h.insert(header::CONTENT_DISPOSITION, v);
            }
            r
        }
        Err(e) => failed(&format!("{e:#}")),
    }
}

fn reply(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    r
}
