//! A recording session and reading the in-kernel aggregates back: `session` attaches, runs
//! until the duration ends, a signal arrives or the command exits, then collects; `readback`
//! turns the eBPF maps into recording rows; `calibrate` times what the kernel adds around each
//! program run (the observer cost beyond the programs' own time); `live` keeps the probes
//! attached and reads the aggregates back on demand (`serve`, `top`).
pub mod calibrate;
pub mod live;
pub mod readback;
pub mod session;
