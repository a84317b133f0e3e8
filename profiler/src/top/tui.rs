//! The full-screen view: the lines of `text`, styled, with as many CPU rows as fit.
//! Keys come from a thread blocked on the terminal; the interval, the keys and the signals
//! are awaited together.
use std::time::Duration;

use anyhow::{Context, Result};
use ratatui::{
    Frame,
    crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers},
    style::{Color, Modifier, Style},
    text::{Line, Span},
    widgets::Paragraph,
};
use tokio::signal::unix::{SignalKind, signal};

use crate::{
    capture::live::Live,
    model::delta::delta,
    top::{
        text,
        view::{Sort, TopView},
    },
};

enum Input {
    Quit,
    Sort,
    Pause,
    Redraw,
}

/// What is on screen.
struct Screen {
    view: Option<TopView>,
    sort: Sort,
    paused: bool,
    /// Seconds since attach, shown so every refresh is visible.
    up_s: u64,
}

pub async fn run(live: &mut Live, interval: Duration) -> Result<()> {
    let mut terminal = ratatui::try_init().context("setting up the terminal")?;
    let result = run_in(live, interval, &mut terminal).await;
    ratatui::restore();
    result
}

async fn run_in(
    live: &mut Live,
    interval: Duration,
    terminal: &mut ratatui::DefaultTerminal,
) -> Result<()> {
    let mut sigint = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    let mut sigterm = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut sighup = signal(SignalKind::hangup()).context("installing SIGHUP handler")?;
    let (tx, mut keys) = tokio::sync::mpsc::unbounded_channel();
    // Blocks on the terminal; ends when the receiver is gone (and with the process).
    std::thread::spawn(move || {
        while let Ok(ev) = event::read() {
            let input = match ev {
                Event::Key(k) if k.kind == KeyEventKind::Press => match k.code {
                    KeyCode::Char('q') | KeyCode::Esc => Input::Quit,
                    KeyCode::Char('c') if k.modifiers.contains(KeyModifiers::CONTROL) => {
                        Input::Quit
                    }
                    KeyCode::Char('s') => Input::Sort,
                    KeyCode::Char('p') | KeyCode::Char(' ') => Input::Pause,
                    _ => continue,
                },
                Event::Resize(..) => Input::Redraw,
                _ => continue,
            };
            if tx.send(input).is_err() {
                break;
            }
        }
    });

    let mut screen = Screen {
        view: None,
        sort: Sort::default(),
        paused: false,
        up_s: 0,
    };
    let mut prev = live.snapshot()?;
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        terminal
            .draw(|f| draw(f, &screen))
            .context("drawing the screen")?;
        tokio::select! {
            _ = tick.tick() => {
                let cur = live.snapshot()?;
                screen.up_s = live.since_attach().as_secs();
                if !screen.paused {
                    screen.view = Some(TopView::of(&delta(&prev.rec, &cur.rec)?));
                }
                prev = cur;
            }
            key = keys.recv() => match key {
                Some(Input::Quit) | None => break,
                Some(Input::Sort) => screen.sort = screen.sort.next(),
                Some(Input::Pause) => screen.paused = !screen.paused,
                Some(Input::Redraw) => {}
            },
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
            _ = sighup.recv() => break,
        }
    }
    Ok(())
}

/// Lines under and over the CPU rows.
const FIXED_LINES: usize = 13;
/// Stack and SKB rows shown.
const SECTION_ROWS: usize = 3;

fn draw(f: &mut Frame<'_>, s: &Screen) {
    let area = f.area();
    let Some(v) = &s.view else {
        let wait = format!(
            "zoneprof top: attached; first refresh after one interval (up {} s)",
            s.up_s
        );
        f.render_widget(Paragraph::new(wait), area);
        return;
    };
    let bold = Style::default().add_modifier(Modifier::BOLD);
    let header = text::fit(&format!(
        "{} up {} s",
        text::header(v, s.sort, s.paused),
        s.up_s
    ));
    let mut lines = vec![
        Line::styled(
            format!("{header:<width$}", width = text::WIDTH),
            Style::default().add_modifier(Modifier::REVERSED),
        ),
        Line::raw(text::totals(v)),
    ];
    let scale = text::bar_scale(v);
    lines.push(Line::styled(text::cpu_header(scale), bold));
    let rows = v.sorted_cpus(s.sort);
    let threads = text::thread_lines(v);
    // The thread section (--tasks) takes its title and rows from the CPU rows' room.
    let thread_lines = threads
        .as_ref()
        .map_or(0, |t| 1 + t.len().min(SECTION_ROWS));
    let room = (area.height as usize)
        .saturating_sub(FIXED_LINES + thread_lines)
        .max(1);
    let shown = if rows.len() > room {
        room - 1
    } else {
        rows.len()
    };
    for r in rows.iter().take(shown) {
        let l = text::cpu_line(r, scale);
        let [a, fr, o] = l.bar;
        let pad = text::BAR - a - fr - o;
        lines.push(Line::from(vec![
            Span::raw(l.before),
            Span::styled("█".repeat(a), Style::default().fg(Color::Red)),
            Span::styled("█".repeat(fr), Style::default().fg(Color::Blue)),
            Span::styled("█".repeat(o), Style::default().fg(Color::DarkGray)),
            Span::raw(" ".repeat(pad)),
            Span::raw(l.after),
        ]));
    }
    if shown < rows.len() {
        lines.push(Line::raw(format!(
            "  … {} more CPUs ([s] sorts: {})",
            rows.len() - shown,
            s.sort.name()
        )));
    }
    lines.push(Line::styled(text::stacks_title(), bold));
    lines.extend(
        text::stack_lines(v)
            .into_iter()
            .take(SECTION_ROWS)
            .map(Line::raw),
    );
    lines.push(Line::styled(text::skb_title(), bold));
    lines.extend(
        text::skb_lines(v)
            .into_iter()
            .take(SECTION_ROWS)
            .map(Line::raw),
    );
    if let Some(t) = threads {
        lines.push(Line::styled(text::threads_title(), bold));
        lines.extend(t.into_iter().take(SECTION_ROWS).map(Line::raw));
    }
    let losses = text::losses_line(v);
    let loss_style = if v.losses.is_empty() {
        Style::default()
    } else {
        Style::default().fg(Color::Yellow)
    };
    lines.push(Line::styled(losses, loss_style));
    lines.push(Line::raw(text::probes_line(v)));
    f.render_widget(Paragraph::new(lines), area);
}
