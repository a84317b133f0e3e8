//! `zoneprof top`: a live session redrawn every interval, full screen (ratatui over
//! crossterm, fits 80x24), or one plain-text snapshot after one interval (`--once`, or
//! stdout not a terminal). Each refresh is the delta of two snapshots of the in-kernel
//! aggregates; nothing is streamed per event.
pub mod text;
mod tui;
pub mod view;

use std::{io::IsTerminal, time::Duration};

use anyhow::{Context, Result};
use tokio::signal::unix::{SignalKind, signal};

use crate::{
    capture::live::{Live, LiveOpts},
    model::delta::delta,
};

pub struct TopOpts {
    /// Time between refreshes (and the window of `--once`).
    pub interval: Duration,
    /// One plain-text snapshot, then exit.
    pub once: bool,
    pub live: LiveOpts,
}

/// Runs `top` until `q`, SIGINT, SIGTERM or SIGHUP (or one interval, plain); detaches.
pub async fn top(opts: TopOpts) -> Result<()> {
    let plain = opts.once || !std::io::stdout().is_terminal();
    let mut live = Live::attach(&opts.live)?;
    let result = if plain {
        once(&mut live, opts.interval).await
    } else {
        tui::run(&mut live, opts.interval).await
    };
    live.detach();
    result
}

/// One interval, printed as text. A signal ends the interval early: the snapshot covers
/// what was seen until then.
async fn once(live: &mut Live, interval: Duration) -> Result<()> {
    let mut sigint = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    let mut sigterm = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let first = live.snapshot()?;
    tokio::select! {
        _ = tokio::time::sleep(interval) => {}
        _ = sigint.recv() => {}
        _ = sigterm.recv() => {}
    }
    let second = live.snapshot()?;
    let d = delta(&first.rec, &second.rec)?;
    print!(
        "{}",
        text::snapshot(&view::TopView::of(&d), view::Sort::default())
    );
    Ok(())
}
