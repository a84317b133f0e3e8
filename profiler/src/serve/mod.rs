//! `zoneprof serve`: a live session whose aggregates are scraped as Prometheus metrics
//! (`GET /metrics`), until SIGINT, SIGTERM or SIGHUP detaches the probes; with `--rotate`,
//! also rolling recordings of each interval (`rotate`).
//!
//! One thread: connections are tasks of a `LocalSet`, each scrape reads the maps and
//! renders in the handler (no await while the session is borrowed). At most
//! [`MAX_CONNECTIONS`] connections are served at once and a request's headers must arrive
//! within [`HEADER_TIMEOUT`], so clients cannot make memory grow.
pub mod rotate;

use std::{
    cell::{Cell, RefCell},
    convert::Infallible,
    net::SocketAddr,
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
    capture::live::{Live, LiveOpts, Snapshot},
    kernel::attach,
    output::prometheus::{CONTENT_TYPE, Exposition, MetricsOpts},
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

/// What the handlers share.
struct State {
    live: Live,
    exposition: Exposition,
    /// Where the current rotation interval started (with `--rotate`).
    rotated: Option<Snapshot>,
}

impl State {
    /// Writes the interval since the last rotation; a failure is said and serving goes on.
    fn rotate(&mut self, r: &rotate::Rotate) {
        let written = self
            .live
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
    fn scrape(&mut self) -> Result<String, crate::capture::readback::AggregateError> {
        let t = Instant::now();
        let snap = self.live.snapshot()?;
        let mut text = self.exposition.render(&snap.rec);
        crate::output::prometheus::scrape_duration(&mut text, t.elapsed());
        Ok(text)
    }
}

/// Serves until a signal; then detaches. Privileges and the address are checked before any
/// probe is loaded.
pub async fn serve(opts: ServeOpts) -> Result<()> {
    attach::check_privileges()?;
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

    let live = Live::attach(&opts.live)?;
    let attached = live.probes().iter().filter(|p| p.attached).count();
    eprintln!(
        "zoneprof: serving http://{bound}/metrics ({attached}/{} probes attached); SIGINT or SIGTERM detaches and exits",
        live.probes().len()
    );
    let state = Rc::new(RefCell::new(State {
        live,
        exposition: Exposition::new(opts.metrics),
        rotated: None,
    }));
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
                        let (state, open) = (state.clone(), open.clone());
                        tokio::task::spawn_local(async move {
                            let svc = service_fn(|req| {
                                let r = respond(&state, &req);
                                async move { Ok::<_, Infallible>(r) }
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
    st.live.detach();
    eprintln!(
        "zoneprof: {signal}: probes detached after {:.1} s",
        st.live.since_attach().as_secs_f64()
    );
    Ok(())
}

fn respond(state: &RefCell<State>, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let get = matches!(*req.method(), Method::GET | Method::HEAD);
    match (get, req.uri().path()) {
        (true, "/metrics") => match state.borrow_mut().scrape() {
            Ok(text) => reply(StatusCode::OK, CONTENT_TYPE, text),
            Err(e) => reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain; charset=utf-8",
                format!("zoneprof: scrape failed: {e}\n"),
            ),
        },
        (true, "/") => reply(
            StatusCode::OK,
            "text/html; charset=utf-8",
            "<!doctype html><title>zoneprof</title><h1>zoneprof</h1>\
             <p><a href=\"/metrics\">/metrics</a>: zone-lock wait, PCP pages and SKB frees \
             as Prometheus metrics.</p>\n"
                .into(),
        ),
        (false, "/metrics" | "/") => {
            let mut r = reply(
                StatusCode::METHOD_NOT_ALLOWED,
                "text/plain; charset=utf-8",
                "only GET and HEAD\n".into(),
            );
            r.headers_mut()
                .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
            r
        }
        _ => reply(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found; try /metrics\n".into(),
        ),
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
