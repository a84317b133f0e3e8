//! `tap`: SKBs allocated on one CPU and freed on another in `tun_do_read` → `consume_skb`,
//! the vhost-net pattern, reproduced with tap devices in a network namespace of our own.
//!
//! - `udp` mode: a UDP socket inside the namespace sends datagrams (sender thread pinned to
//!   the sender CPU) to a peer "behind" tap `zpt<i>` (a permanent neighbour entry, so no
//!   ARP). The stack builds each SKB on the sender CPU; the frame leaves through the tap
//!   and is read from the tap fd by a reader thread pinned to the reader CPU, which frees
//!   it in `tun_do_read`.
//! - `forward` mode: the sender writes Ethernet frames into tap `zpa<i>` (as vhost's TX
//!   path does: `tun_get_user` allocates the SKB, with page frags for large frames, on the
//!   writing CPU); the namespace forwards them out of tap `zpb<i>`, where the reader
//!   thread reads them.
//!
//! Large frames (default 32 KiB payload, MTU 65000) make the SKB data come from the page
//! allocator instead of slab, so the pattern shows up as PCP refills on the sender CPU and
//! PCP drains on the reader CPU (see docs/kernel-facts.md).
//!
//! Flow control: a sender keeps at most `window` frames unread in its pair, below the
//! tap's queue (its 1000-frame txqueuelen sizes the ring `tun_net_xmit` fills). Like a
//! vhost virtqueue, this keeps the tap from dropping frames (a drop frees the SKB on the
//! sender CPU, diluting the cross-CPU pattern). Frames lost
//! anyway are counted exactly, without timeouts: sending is synchronous, so when a read
//! finds the queue empty, every frame sent before that read began was either read or
//! dropped; the difference is `frames_lost`, and it no longer counts against the window.
//!
//! Cleanup: the taps are not persistent, so they vanish with their fds (even on SIGKILL);
//! the namespace `zoneprof-tap-<pid>-<seq>` is deleted by a guard on every return and
//! unwind path, SIGINT/SIGTERM stop the loops so that guard runs, and each run first
//! deletes `zoneprof-tap-*` namespaces whose pid is dead.

mod dev;
mod ns;
mod signal;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use thiserror::Error;

use super::{MAX_DURATION, WorkloadError, pin_current_thread};
use crate::kernel::cpulist::{MAX_CPUS, format_cpu_list};
use crate::kernel::host::HostError;

pub use dev::{Flow, HEADERS, TUN_PATH, inet_checksum, udp_frame};
pub use ns::{NETNS_DIR, NS_PREFIX, Netns, cleanup_stale, ns_name, parse_ns_pid, pid_alive};

/// Most tap pairs per run (addresses use one /24 per pair).
pub const MAX_TAPS: usize = 64;
/// MTU of every tap, large enough for the biggest frame so nothing is fragmented.
pub const TAP_MTU: u32 = 65_000;
/// Largest UDP payload that fits one frame at [`TAP_MTU`] (IPv4 20 + UDP 8 bytes).
pub const MAX_FRAME_SIZE: u32 = TAP_MTU - 28;
/// Default UDP payload: above 8 KiB, so SKB data comes from the page allocator.
pub const DEFAULT_FRAME_SIZE: u32 = 32 * 1024;
/// Default unread frames allowed per pair.
pub const DEFAULT_WINDOW: u32 = 256;
/// Largest window: stays below the tap's ring (txqueuelen, 1000 frames by default).
pub const MAX_WINDOW: u32 = 400;
/// Destination UDP port (discard); nothing listens, the frames never reach a socket.
pub const UDP_PORT: u16 = 9;

/// Longest a reader sleeps in poll before rechecking the stop conditions.
const POLL: Duration = Duration::from_millis(10);
/// How long readers may drain after the send phase.
const DRAIN_GRACE: Duration = Duration::from_secs(1);
/// How long threads wait for the start signal.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Readers recheck time and stop flags every this many frames while data keeps coming.
const CHECK_EVERY: u64 = 256;

/// One run at a time per process: the signal handler and the CPUs are shared.
static RUN_LOCK: Mutex<()> = Mutex::new(());

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TapMode {
    /// UDP from the namespace's stack out of a tap, read from the tap fd.
    #[default]
    Udp,
    /// Frames written into tap A, forwarded by the namespace, read from tap B.
    Forward,
}

impl TapMode {
    pub fn name(self) -> &'static str {
        match self {
            TapMode::Udp => "udp",
            TapMode::Forward => "forward",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapOpts {
    pub sender_cpus: Vec<u32>,
    pub reader_cpus: Vec<u32>,
    pub duration: Duration,
    /// UDP payload bytes per frame (the Ethernet frame is [`HEADERS`] bytes longer).
    pub frame_size: u32,
    pub mode: TapMode,
    /// Number of pairs; `None` = the longer of the two CPU lists.
    pub taps: Option<usize>,
    /// Most unread frames per pair.
    pub window: u32,
}

impl TapOpts {
    /// Options with the defaults: 5 s, 32 KiB frames, udp mode, one pair per CPU.
    pub fn new(sender_cpus: Vec<u32>, reader_cpus: Vec<u32>) -> TapOpts {
        TapOpts {
            sender_cpus,
            reader_cpus,
            duration: Duration::from_secs(5),
            frame_size: DEFAULT_FRAME_SIZE,
            mode: TapMode::Udp,
            taps: None,
            window: DEFAULT_WINDOW,
        }
    }
}

/// Pair `index` sends on `sender_cpu` and reads on `reader_cpu`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TapPair {
    pub index: usize,
    pub sender_cpu: u32,
    pub reader_cpu: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TapResult {
    pub mode: TapMode,
    pub taps: usize,
    pub frame_size: u32,
    pub frames_sent: u64,
    pub frames_read: u64,
    /// Ethernet frame bytes read from the taps (headers included).
    pub bytes_read: u64,
    /// From the start signal until the last reader finished draining.
    pub elapsed: Duration,
    /// Frames read per reader CPU, ascending by CPU.
    pub per_reader: Vec<(u32, u64)>,
    /// Sends that failed (e.g. ENOBUFS); the run goes on.
    pub send_errors: u64,
    /// Frames sent but neither read nor in the queue at the end: dropped on the way
    /// (e.g. by a full tap queue). 0 in a healthy run.
    pub frames_lost: u64,
    /// The namespace this run used (already deleted).
    pub namespace: String,
    /// Namespaces of dead earlier runs deleted at start.
    pub stale_removed: Vec<String>,
}

impl TapResult {
    fn secs(&self) -> f64 {
        self.elapsed.as_secs_f64()
    }

    /// Frames read per second; 0 for a zero elapsed time.
    pub fn packets_per_s(&self) -> f64 {
        let s = self.secs();
        if s > 0.0 {
            self.frames_read as f64 / s
        } else {
            0.0
        }
    }

    /// Read-side throughput in Gbit/s (10^9 bits) of Ethernet frame bytes.
    pub fn gbit_per_s(&self) -> f64 {
        let s = self.secs();
        if s > 0.0 {
            self.bytes_read as f64 * 8.0 / s / 1e9
        } else {
            0.0
        }
    }
}

#[derive(Debug, Error)]
pub enum TapError {
    #[error("no {0} CPUs given")]
    NoCpus(&'static str),
    #[error("--taps must be between 1 and {MAX_TAPS}, got {0}")]
    BadTaps(usize),
    #[error("CPU {0} is out of range (at most {max})", max = MAX_CPUS - 1)]
    CpuOutOfRange(u32),
    #[error("CPU {cpu} is not online (online: {online})")]
    CpuOffline { cpu: u32, online: String },
    #[error("duration must be between 1 ms and {max:?}, got {0:?}", max = MAX_DURATION)]
    BadDuration(Duration),
    #[error("frame size must be between 1 and {MAX_FRAME_SIZE} bytes, got {0}")]
    BadFrameSize(u32),
    #[error("window must be between 1 and {MAX_WINDOW} frames, got {0}")]
    BadWindow(u32),
    #[error("needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN)")]
    NotRoot,
    #[error("{TUN_PATH} missing: load the tun module (modprobe tun)")]
    TunMissing,
    #[error("`ip` not found: install iproute2")]
    IpMissing,
    #[error("`ip {cmd}` failed: {detail}")]
    Ip { cmd: String, detail: String },
    #[error("cannot enter network namespace {name}: {source}")]
    Netns { name: String, source: io::Error },
    #[error("cannot create tap {name}: {source}")]
    Tun { name: String, source: io::Error },
    #[error("{what}: {source}")]
    Io { what: String, source: io::Error },
    #[error("pair {pair}: no frame could be sent: {source}")]
    NothingSent { pair: usize, source: io::Error },
    #[error("cannot install the SIGINT/SIGTERM handler: {0}")]
    Signal(io::Error),
    #[error("interrupted by signal {0}; the namespace was removed")]
    Interrupted(i32),
    #[error(transparent)]
    Workload(#[from] WorkloadError),
    #[error("cannot read online CPUs: {0}")]
    Host(#[from] HostError),
}

/// Validates the options and expands them into pairs: `sender_cpus[i % s]` with
/// `reader_cpus[i % r]` for `i < taps` (default `max(s, r)`). Pure: no host access.
pub fn plan_taps(opts: &TapOpts) -> Result<Vec<TapPair>, TapError> {
    if opts.duration < Duration::from_millis(1) || opts.duration > MAX_DURATION {
        return Err(TapError::BadDuration(opts.duration));
    }
    if !(1..=MAX_FRAME_SIZE).contains(&opts.frame_size) {
        return Err(TapError::BadFrameSize(opts.frame_size));
    }
    if !(1..=MAX_WINDOW).contains(&opts.window) {
        return Err(TapError::BadWindow(opts.window));
    }
    let (s, r) = (&opts.sender_cpus, &opts.reader_cpus);
    if s.is_empty() {
        return Err(TapError::NoCpus("sender"));
    }
    if r.is_empty() {
        return Err(TapError::NoCpus("reader"));
    }
    if let Some(&cpu) = s.iter().chain(r).find(|&&c| c as usize >= MAX_CPUS) {
        return Err(TapError::CpuOutOfRange(cpu));
    }
    let n = opts.taps.unwrap_or(s.len().max(r.len()));
    if !(1..=MAX_TAPS).contains(&n) {
        return Err(TapError::BadTaps(n));
    }
    Ok((0..n)
        .map(|i| TapPair {
            index: i,
            sender_cpu: s[i % s.len()],
            reader_cpu: r[i % r.len()],
        })
        .collect())
}

/// Fails with the first CPU of `pairs` that is not in `online`.
pub fn check_online(pairs: &[TapPair], online: &[u32]) -> Result<(), TapError> {
    for cpu in pairs.iter().flat_map(|p| [p.sender_cpu, p.reader_cpu]) {
        if !online.contains(&cpu) {
            return Err(TapError::CpuOffline {
                cpu,
                online: format_cpu_list(online),
            });
        }
    }
    Ok(())
}

const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_ADMIN: u32 = 21;

/// Whether the `CapEff:` line of a /proc/<pid>/status text has every bit in `caps`;
/// `None` when the line is missing or malformed.
pub fn cap_eff_has(status: &str, caps: &[u32]) -> Option<bool> {
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))?
        .trim();
    let eff = u64::from_str_radix(hex, 16).ok()?;
    Some(caps.iter().all(|&c| c < 64 && eff & (1u64 << c) != 0))
}

fn check_privileges() -> Result<(), TapError> {
    // Without a readable status fall back to the euid: root normally has every capability.
    let ok = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| cap_eff_has(&s, &[CAP_NET_ADMIN, CAP_SYS_ADMIN]))
        // SAFETY: geteuid has no preconditions and cannot fail.
        .unwrap_or_else(|| unsafe { libc::geteuid() } == 0);
    if ok { Ok(()) } else { Err(TapError::NotRoot) }
}

/// Interface names of pair `i`: (written or sending tap, read tap). In udp mode both are
/// the same tap.
pub fn tap_names(mode: TapMode, i: usize) -> (String, String) {
    match mode {
        TapMode::Udp => (format!("zpt{i}"), format!("zpt{i}")),
        TapMode::Forward => (format!("zpa{i}"), format!("zpb{i}")),
    }
}

/// Locally administered MAC `02:7a:70:<net>:<i>:<host>`.
fn mac(net: u8, i: usize, host: u8) -> [u8; 6] {
    [0x02, 0x7a, 0x70, net, i as u8, host]
}

fn fmt_mac(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// One tap of the setup: name, its /24 (`10.<net>.<i>.0`, tap at .1) and MAC selector.
/// The peer at .2 "behind" the tap gets a permanent neighbour entry.
struct TapAddr {
    name: String,
    net: u8,
    mac_net: u8,
}

fn tap_addrs(mode: TapMode, i: usize) -> Vec<TapAddr> {
    let (a, b) = tap_names(mode, i);
    match mode {
        TapMode::Udp => vec![TapAddr {
            name: a,
            net: 200,
            mac_net: 0,
        }],
        TapMode::Forward => vec![
            TapAddr {
                name: a,
                net: 201,
                mac_net: 1,
            },
            TapAddr {
                name: b,
                net: 202,
                mac_net: 2,
            },
        ],
    }
}

/// The `ip -batch` commands that configure the taps of `n` pairs (run with `-n NS`).
pub fn setup_commands(mode: TapMode, n: usize) -> String {
    let mut out = String::new();
    for i in 0..n {
        for t in tap_addrs(mode, i) {
            out.push_str(&format!(
                "link set dev {} address {} mtu {TAP_MTU} up\n",
                t.name,
                fmt_mac(mac(t.mac_net, i, 1))
            ));
            out.push_str(&format!(
                "address add 10.{}.{i}.1/24 dev {}\n",
                t.net, t.name
            ));
            out.push_str(&format!(
                "neighbour replace 10.{}.{i}.2 lladdr {} dev {} nud permanent\n",
                t.net,
                fmt_mac(mac(t.mac_net, i, 2)),
                t.name
            ));
        }
    }
    out
}

/// The frame forward mode writes into tap A of pair `i`: from the peer behind tap A to the
/// peer behind tap B, addressed to tap A's MAC so the namespace routes it.
pub fn forward_frame(i: usize, frame_size: u32) -> Option<Vec<u8>> {
    let i8 = i as u8;
    udp_frame(
        &Flow {
            dst_mac: mac(1, i, 1),
            src_mac: mac(1, i, 2),
            src_ip: Ipv4Addr::new(10, 201, i8, 2),
            dst_ip: Ipv4Addr::new(10, 202, i8, 2),
            src_port: 4000,
            dst_port: UDP_PORT,
        },
        frame_size as usize,
    )
}

/// How a sender emits one frame.
enum SendPath {
    Udp { sock: UdpSocket, payload: Vec<u8> },
    Write { tap: File, frame: Vec<u8> },
}

impl SendPath {
    fn send(&mut self) -> io::Result<()> {
        let (n, want) = match self {
            SendPath::Udp { sock, payload } => (sock.send(payload)?, payload.len()),
            SendPath::Write { tap, frame } => (tap.write(frame)?, frame.len()),
        };
        if n == want {
            Ok(())
        } else {
            Err(io::Error::other(format!("short send: {n} of {want} bytes")))
        }
    }
}

/// What the setup thread creates for a sender inside the namespace.
enum Created {
    Udp(UdpSocket),
    Write(File),
}

struct PairIo {
    pair: TapPair,
    send: SendPath,
    read: File,
}

/// Start and stop signals shared by all threads of a run.
struct Ctl {
    go: AtomicBool,
    stop: AtomicBool,
}

impl Ctl {
    fn should_stop(&self) -> bool {
        self.stop.load(Ordering::Relaxed) || signal::caught().is_some()
    }

    /// Waits for the start signal; false when the run was stopped instead.
    fn wait_go(&self) -> bool {
        let t0 = Instant::now();
        while t0.elapsed() < START_TIMEOUT {
            if self.go.load(Ordering::Acquire) {
                return true;
            }
            if self.should_stop() {
                return false;
            }
            thread::sleep(Duration::from_millis(1));
        }
        false
    }
}

/// Per pair: the window's counters and whether the sender finished.
#[derive(Default)]
struct PairCtl {
    sent: AtomicU64,
    read: AtomicU64,
    /// Frames known dropped (see the module docs); only grows.
    lost: AtomicU64,
    sender_done: AtomicBool,
}

/// Sets a flag when dropped, so a sender that fails or panics still releases its reader.
struct SetOnDrop<'a>(&'a AtomicBool);

impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

#[derive(Default)]
struct SenderStats {
    sent: u64,
    errors: u64,
}

struct ReaderStats {
    frames: u64,
    bytes: u64,
    finished: Instant,
}

/// Pins the thread, then waits for the start signal. A pin failure stops the whole run
/// (after which the other threads see `stop` instead of waiting for `go`).
fn pin_and_wait(cpu: u32, ctl: &Ctl) -> Result<bool, TapError> {
    if let Err(e) = pin_current_thread(cpu) {
        ctl.stop.store(true, Ordering::Relaxed);
        return Err(e.into());
    }
    Ok(ctl.wait_go())
}

fn sender(
    mut path: SendPath,
    pair: TapPair,
    pc: &PairCtl,
    ctl: &Ctl,
    duration: Duration,
    window: u64,
) -> Result<SenderStats, TapError> {
    let _done = SetOnDrop(&pc.sender_done);
    let mut st = SenderStats::default();
    if !pin_and_wait(pair.sender_cpu, ctl)? {
        return Ok(st);
    }
    let deadline = Instant::now() + duration;
    let mut spins = 0u32;
    let mut first_err: Option<io::Error> = None;
    loop {
        let now = Instant::now();
        if now >= deadline || ctl.should_stop() {
            break;
        }
        let done = pc.read.load(Ordering::Acquire) + pc.lost.load(Ordering::Acquire);
        if st.sent.saturating_sub(done) >= window {
            if spins < 64 {
                // Yield first: with sender and reader on one CPU this lets the reader run.
                spins += 1;
                thread::yield_now();
            } else {
                thread::sleep(Duration::from_micros(20));
            }
            continue;
        }
        spins = 0;
        match path.send() {
            Ok(()) => {
                st.sent += 1;
                // Release: the frame is queued (or dropped) before a reader sees the count.
                pc.sent.store(st.sent, Ordering::Release);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                st.errors += 1;
                first_err.get_or_insert(e);
                // Transient (ENOBUFS, a full queue): back off briefly instead of spinning.
                thread::sleep(Duration::from_micros(100));
            }
        }
    }
    match first_err {
        Some(source) if st.sent == 0 => Err(TapError::NothingSent {
            pair: pair.index,
            source,
        }),
        _ => Ok(st),
    }
}

fn reader(
    tap: File,
    pair: TapPair,
    pc: &PairCtl,
    ctl: &Ctl,
    duration: Duration,
    buf_len: usize,
) -> Result<ReaderStats, TapError> {
    let mut st = ReaderStats {
        frames: 0,
        bytes: 0,
        finished: Instant::now(),
    };
    if !pin_and_wait(pair.reader_cpu, ctl)? {
        st.finished = Instant::now();
        return Ok(st);
    }
    let hard_stop = Instant::now() + duration + DRAIN_GRACE;
    let mut buf = vec![0u8; buf_len];
    let io_err = |source| TapError::Io {
        what: format!("reading tap of pair {}", pair.index),
        source,
    };
    loop {
        // Frames sent before this read began are queued or dropped by now.
        let sent_before = pc.sent.load(Ordering::Acquire);
        match (&tap).read(&mut buf) {
            Ok(n) => {
                st.frames += 1;
                st.bytes += n as u64;
                pc.read.fetch_add(1, Ordering::Release);
                if st.frames.is_multiple_of(CHECK_EVERY)
                    && (ctl.should_stop() || Instant::now() >= hard_stop)
                {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                // Empty queue: whatever of `sent_before` was not read was dropped.
                pc.lost
                    .fetch_max(sent_before.saturating_sub(st.frames), Ordering::Release);
                // Once the sender is done every frame it sent has been queued or dropped
                // (transmission is synchronous), so the pair is drained.
                if pc.sender_done.load(Ordering::Acquire)
                    || ctl.should_stop()
                    || Instant::now() >= hard_stop
                {
                    break;
                }
                dev::wait_readable(&tap, POLL).map_err(io_err)?;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_err(e)),
        }
    }
    st.finished = Instant::now();
    Ok(st)
}

/// Creates the taps (and sockets) inside the namespace, configures addresses, neighbours
/// and forwarding.
fn setup(netns: &Netns, pairs: &[TapPair], opts: &TapOpts) -> Result<Vec<PairIo>, TapError> {
    let mode = opts.mode;
    let frame_size = opts.frame_size;
    // Taps and sockets must be created by a thread inside the namespace.
    let created = netns.run_inside(|| {
        // No IPv6 on the new taps: no router solicitations or MLD reports in the reads.
        ns::write_sysctl("/proc/sys/net/ipv6/conf/default/disable_ipv6", "1", true)?;
        ns::write_sysctl("/proc/sys/net/ipv6/conf/all/disable_ipv6", "1", true)?;
        if mode == TapMode::Forward {
            ns::write_sysctl("/proc/sys/net/ipv4/ip_forward", "1", false)?;
        }
        let mut out = Vec::with_capacity(pairs.len());
        for p in pairs {
            let (send_name, read_name) = tap_names(mode, p.index);
            let created = match mode {
                TapMode::Udp => {
                    let read = dev::open_tap(&read_name)?;
                    let sock = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0))
                        .map_err(|e| TapError::Io {
                            what: "creating the UDP socket".into(),
                            source: e,
                        })?;
                    (*p, Created::Udp(sock), read)
                }
                TapMode::Forward => {
                    let send = dev::open_tap(&send_name)?;
                    (*p, Created::Write(send), dev::open_tap(&read_name)?)
                }
            };
            out.push(created);
        }
        Ok(out)
    })?;
    netns.ip_batch(&setup_commands(mode, pairs.len()))?;
    let mut ios = Vec::with_capacity(created.len());
    for (pair, how, read) in created {
        let send = match how {
            Created::Udp(sock) => {
                // Connect only now: the route to the peer exists once the tap is configured.
                let peer = SocketAddrV4::new(Ipv4Addr::new(10, 200, pair.index as u8, 2), UDP_PORT);
                sock.connect(peer).map_err(|e| TapError::Io {
                    what: format!("connecting the UDP socket to {peer}"),
                    source: e,
                })?;
                SendPath::Udp {
                    sock,
                    payload: vec![0x5a; frame_size as usize],
                }
            }
            Created::Write(tap) => SendPath::Write {
                tap,
                frame: forward_frame(pair.index, frame_size)
                    .ok_or(TapError::BadFrameSize(frame_size))?,
            },
        };
        ios.push(PairIo { pair, send, read });
    }
    Ok(ios)
}

/// Runs the pairs' threads and sums their counts. The taps' fds move into the threads and
/// close when they end.
fn run_pairs(ios: Vec<PairIo>, opts: &TapOpts) -> Result<TapResult, TapError> {
    let ctl = Ctl {
        go: AtomicBool::new(false),
        stop: AtomicBool::new(false),
    };
    let pcs: Vec<PairCtl> = ios.iter().map(|_| PairCtl::default()).collect();
    let n = ios.len();
    // Read buffer: the largest frame a tap at TAP_MTU can return, plus slack.
    let buf_len = TAP_MTU as usize + 64;
    let window = u64::from(opts.window);
    let duration = opts.duration;
    let (start, senders, readers) = thread::scope(|s| {
        let ctl = &ctl;
        let mut senders = Vec::with_capacity(n);
        let mut readers = Vec::with_capacity(n);
        let mut spawn_err = None;
        for (io, pc) in ios.into_iter().zip(&pcs) {
            let PairIo { pair, send, read } = io;
            // Named as vhost names its workers (`vhost-<owner pid>`), so a per-task view
            // of the reproducer reads like one of a VM host.
            let r = thread::Builder::new()
                .name(format!("vhost-{}", std::process::id()))
                .spawn_scoped(s, move || reader(read, pair, pc, ctl, duration, buf_len));
            match r {
                Ok(h) => readers.push((pair.reader_cpu, h)),
                Err(e) => {
                    spawn_err = Some(TapError::from(WorkloadError::Thread {
                        role: "reader",
                        source: e,
                    }));
                    break;
                }
            }
            let w = thread::Builder::new()
                .name(format!("tap-send-{}", pair.index))
                .spawn_scoped(s, move || sender(send, pair, pc, ctl, duration, window));
            match w {
                Ok(h) => senders.push(h),
                Err(e) => {
                    spawn_err = Some(TapError::from(WorkloadError::Thread {
                        role: "sender",
                        source: e,
                    }));
                    break;
                }
            }
        }
        let start = Instant::now();
        match spawn_err {
            Some(_) => ctl.stop.store(true, Ordering::Relaxed),
            None => ctl.go.store(true, Ordering::Release),
        }
        let senders: Vec<_> = senders
            .into_iter()
            .map(|h| {
                h.join()
                    .map_err(|_| TapError::from(WorkloadError::ThreadPanicked("sender")))
            })
            .collect();
        let readers: Vec<_> = readers
            .into_iter()
            .map(|(cpu, h)| {
                let r = h
                    .join()
                    .map_err(|_| TapError::from(WorkloadError::ThreadPanicked("reader")));
                (cpu, r)
            })
            .collect();
        match spawn_err {
            Some(e) => Err(e),
            None => Ok((start, senders, readers)),
        }
    })?;
    let mut res = TapResult {
        mode: opts.mode,
        taps: n,
        frame_size: opts.frame_size,
        frames_sent: 0,
        frames_read: 0,
        bytes_read: 0,
        elapsed: Duration::ZERO,
        per_reader: Vec::new(),
        send_errors: 0,
        frames_lost: 0,
        namespace: String::new(),
        stale_removed: Vec::new(),
    };
    // Report the first real failure; a pin failure in one thread stops the others cleanly.
    for s in senders {
        let s = s??;
        res.frames_sent += s.sent;
        res.send_errors += s.errors;
    }
    let mut per_cpu: BTreeMap<u32, u64> = BTreeMap::new();
    let mut end = start;
    for (cpu, r) in readers {
        let r = r??;
        res.frames_read += r.frames;
        res.bytes_read += r.bytes;
        end = end.max(r.finished);
        *per_cpu.entry(cpu).or_default() += r.frames;
    }
    res.frames_lost = pcs.iter().map(|p| p.lost.load(Ordering::Acquire)).sum();
    res.elapsed = end.duration_since(start);
    res.per_reader = per_cpu.into_iter().collect();
    Ok(res)
}

/// Runs the tap reproducer: validate, check privileges, remove stale namespaces, create
/// the namespace and taps, send and read for `opts.duration`, delete everything.
pub fn run_tap(opts: &TapOpts) -> Result<TapResult, TapError> {
    let pairs = plan_taps(opts)?;
    check_privileges()?;
    if !Path::new(TUN_PATH).exists() {
        return Err(TapError::TunMissing);
    }
    check_online(&pairs, &crate::kernel::host::online_cpus()?)?;
    // A poisoned lock only means an earlier run panicked; its guards still cleaned up.
    let _lock = RUN_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let _signals = signal::SignalGuard::install().map_err(TapError::Signal)?;
    let stale_removed = cleanup_stale()?;
    let netns = Netns::create()?;
    let namespace = netns.name().to_string();
    let outcome = setup(&netns, &pairs, opts).and_then(|ios| match signal::caught() {
        // A signal during setup: skip the run; the cleanup below still happens.
        Some(sig) => Err(TapError::Interrupted(sig)),
        None => run_pairs(ios, opts),
    });
    // All tap fds are closed by now (dropped with the threads or the setup error), so
    // deleting the namespace releases the last of it.
    let deleted = netns.delete();
    if let Some(sig) = signal::caught() {
        return Err(TapError::Interrupted(sig));
    }
    let mut res = outcome?;
    deleted?;
    res.namespace = namespace;
    res.stale_removed = stale_removed;
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// Root tests create namespaces and delete stale ones: run them one at a time.
    static ROOT_TESTS: Mutex<()> = Mutex::new(());

    fn opts(s: &[u32], r: &[u32]) -> TapOpts {
        TapOpts::new(s.to_vec(), r.to_vec())
    }

    #[test]
    fn plan_pairs_cycles_the_shorter_list() {
        let p = plan_taps(&opts(&[0, 1], &[2, 3, 4])).expect("valid");
        let cpus: Vec<_> = p.iter().map(|p| (p.sender_cpu, p.reader_cpu)).collect();
        assert_eq!(cpus, vec![(0, 2), (1, 3), (0, 4)]);
        assert_eq!(p[2].index, 2);
        let mut o = opts(&[0], &[1]);
        o.taps = Some(3);
        let cpus: Vec<_> = plan_taps(&o)
            .expect("valid")
            .iter()
            .map(|p| (p.sender_cpu, p.reader_cpu))
            .collect();
        assert_eq!(cpus, vec![(0, 1), (0, 1), (0, 1)]);
    }

    #[test]
    fn plan_rejects_bad_options() {
        let bad = |f: &dyn Fn(&mut TapOpts)| {
            let mut o = opts(&[0], &[1]);
            f(&mut o);
            plan_taps(&o).expect_err("must be rejected").to_string()
        };
        assert_eq!(bad(&|o| o.sender_cpus.clear()), "no sender CPUs given");
        assert_eq!(bad(&|o| o.reader_cpus.clear()), "no reader CPUs given");
        assert!(bad(&|o| o.taps = Some(0)).starts_with("--taps must be between 1 and 64"));
        assert!(bad(&|o| o.taps = Some(65)).contains("got 65"));
        assert!(bad(&|o| o.frame_size = 0).starts_with("frame size"));
        assert!(bad(&|o| o.frame_size = MAX_FRAME_SIZE + 1).contains("64972"));
        assert!(bad(&|o| o.window = 0).starts_with("window"));
        assert!(bad(&|o| o.window = MAX_WINDOW + 1).starts_with("window"));
        assert!(bad(&|o| o.duration = Duration::ZERO).starts_with("duration"));
        assert!(bad(&|o| o.duration = MAX_DURATION * 2).starts_with("duration"));
        assert!(bad(&|o| o.reader_cpus = vec![MAX_CPUS as u32]).contains("out of range"));
        let mut o = opts(&[0], &[1]);
        o.frame_size = MAX_FRAME_SIZE;
        o.window = MAX_WINDOW;
        o.taps = Some(MAX_TAPS);
        assert_eq!(plan_taps(&o).expect("valid").len(), MAX_TAPS);
    }

    #[test]
    fn offline_cpus_are_named() {
        let p = plan_taps(&opts(&[0], &[3])).expect("valid");
        assert!(check_online(&p, &[0, 1, 3]).is_ok());
        let e = check_online(&p, &[0, 1]).expect_err("3 is offline");
        assert_eq!(e.to_string(), "CPU 3 is not online (online: 0-1)");
    }

    #[test]
    fn capabilities_from_status() {
        let status = "Name:\tx\nCapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\n";
        assert_eq!(cap_eff_has(status, &[12, 21]), Some(true));
        // CAP_NET_ADMIN (bit 12) only.
        assert_eq!(
            cap_eff_has("CapEff:\t0000000000001000\n", &[12]),
            Some(true)
        );
        assert_eq!(
            cap_eff_has("CapEff:\t0000000000001000\n", &[12, 21]),
            Some(false)
        );
        assert_eq!(cap_eff_has("CapEff:\tzz\n", &[12]), None);
        assert_eq!(cap_eff_has("Name:\tx\n", &[12]), None);
    }

    #[test]
    fn namespace_names_round_trip() {
        assert_eq!(ns_name(1234, 7), "zoneprof-tap-1234-7");
        assert_eq!(parse_ns_pid("zoneprof-tap-1234-7"), Some(1234));
        assert_eq!(parse_ns_pid("zoneprof-tap-1234"), Some(1234));
        for other in [
            "zoneprof-tap-",
            "zoneprof-tap-0-1",
            "zoneprof-tap-12x-1",
            "zoneprof-tap-12-",
            "zoneprof-tap-12-1-2",
            "zoneprof-tap-99999999999-1",
            "other-1234",
            "zoneprof-tapx-1",
        ] {
            assert_eq!(parse_ns_pid(other), None, "{other}");
        }
        assert!(pid_alive(std::process::id()));
    }

    #[test]
    fn setup_commands_per_mode() {
        let udp = setup_commands(TapMode::Udp, 2);
        assert_eq!(
            udp.lines().collect::<Vec<_>>(),
            vec![
                "link set dev zpt0 address 02:7a:70:00:00:01 mtu 65000 up",
                "address add 10.200.0.1/24 dev zpt0",
                "neighbour replace 10.200.0.2 lladdr 02:7a:70:00:00:02 dev zpt0 nud permanent",
                "link set dev zpt1 address 02:7a:70:00:01:01 mtu 65000 up",
                "address add 10.200.1.1/24 dev zpt1",
                "neighbour replace 10.200.1.2 lladdr 02:7a:70:00:01:02 dev zpt1 nud permanent",
            ]
        );
        let fwd = setup_commands(TapMode::Forward, 1);
        assert!(fwd.contains("link set dev zpa0 address 02:7a:70:01:00:01 mtu 65000 up\n"));
        assert!(fwd.contains("address add 10.202.0.1/24 dev zpb0\n"));
        assert!(fwd.contains(
            "neighbour replace 10.202.0.2 lladdr 02:7a:70:02:00:02 dev zpb0 nud permanent\n"
        ));
        // The written frame is addressed to tap A's MAC and the peer behind tap B.
        let f = forward_frame(0, 100).expect("fits");
        assert_eq!(&f[0..6], &[0x02, 0x7a, 0x70, 1, 0, 1]);
        assert_eq!(&f[30..34], &[10, 202, 0, 2]);
        assert_eq!(f.len(), HEADERS + 100);
    }

    #[test]
    fn rates() {
        let mut r = TapResult {
            mode: TapMode::Udp,
            taps: 1,
            frame_size: 1000,
            frames_sent: 10,
            frames_read: 10,
            bytes_read: 1_250_000_000,
            elapsed: Duration::from_secs(2),
            per_reader: vec![(1, 10)],
            send_errors: 0,
            frames_lost: 0,
            namespace: String::new(),
            stale_removed: Vec::new(),
        };
        assert_eq!(r.packets_per_s(), 5.0);
        assert_eq!(r.gbit_per_s(), 5.0);
        r.elapsed = Duration::ZERO;
        assert_eq!(r.packets_per_s(), 0.0);
        assert_eq!(r.gbit_per_s(), 0.0);
    }

    /// Why a root test cannot run here, if it cannot.
    fn root_skip_reason() -> Option<String> {
        if check_privileges().is_err() {
            return Some("not root (needs CAP_NET_ADMIN and CAP_SYS_ADMIN)".into());
        }
        if !Path::new(TUN_PATH).exists() {
            return Some(format!("{TUN_PATH} missing"));
        }
        if Command::new("ip").arg("-V").output().is_err() {
            return Some("`ip` not found".into());
        }
        None
    }

    fn netns_exists(name: &str) -> bool {
        Path::new(NETNS_DIR).join(name).exists()
    }

    #[test]
    fn root_udp_cross_cpu_run() {
        if let Some(why) = root_skip_reason() {
            eprintln!("skipping root_udp_cross_cpu_run: {why}");
            return;
        }
        let online = crate::kernel::host::online_cpus().unwrap_or_default();
        if !(online.contains(&0) && online.contains(&1)) {
            eprintln!("skipping root_udp_cross_cpu_run: CPUs 0 and 1 are not both online");
            return;
        }
        let _g = ROOT_TESTS.lock().unwrap_or_else(|p| p.into_inner());
        let mut o = opts(&[0], &[1]);
        o.duration = Duration::from_secs(1);
        let r = run_tap(&o).expect("udp run");
        assert!(r.frames_read > 1000, "only {} frames read", r.frames_read);
        assert!(r.frames_sent >= r.frames_read);
        assert_eq!(r.per_reader.len(), 1);
        assert_eq!(r.per_reader[0], (1, r.frames_read));
        // Every frame read is a full 32 KiB datagram plus Ethernet/IP/UDP headers.
        assert_eq!(
            r.bytes_read,
            r.frames_read * (u64::from(DEFAULT_FRAME_SIZE) + HEADERS as u64)
        );
        assert!(r.namespace.starts_with(NS_PREFIX));
        assert!(!netns_exists(&r.namespace), "{} left behind", r.namespace);
    }

    #[test]
    fn root_forward_run() {
        if let Some(why) = root_skip_reason() {
            eprintln!("skipping root_forward_run: {why}");
            return;
        }
        let _g = ROOT_TESTS.lock().unwrap_or_else(|p| p.into_inner());
        let mut o = opts(&[0], &[0]);
        o.mode = TapMode::Forward;
        o.duration = Duration::from_millis(300);
        o.frame_size = 9000;
        let r = run_tap(&o).expect("forward run");
        assert!(r.frames_read > 100, "only {} frames read", r.frames_read);
        assert_eq!(r.bytes_read, r.frames_read * (9000 + HEADERS as u64));
        assert!(!netns_exists(&r.namespace));
    }

    #[test]
    fn root_stale_namespace_of_dead_pid_is_removed() {
        if let Some(why) = root_skip_reason() {
            eprintln!("skipping root_stale_namespace_of_dead_pid_is_removed: {why}");
            return;
        }
        let _g = ROOT_TESTS.lock().unwrap_or_else(|p| p.into_inner());
        // A pid that certainly belonged to a process that is gone now.
        let mut child = Command::new("true").spawn().expect("spawn true");
        let dead = child.id();
        child.wait().expect("wait for true");
        assert!(!pid_alive(dead));
        let stale = ns_name(dead, 4242);
        // pid 1 is alive: its namespace must survive the cleanup.
        let live = ns_name(1, 4242);
        ns::ip(&["netns", "add", &stale], None).expect("add stale namespace");
        ns::ip(&["netns", "add", &live], None).expect("add live namespace");
        let removed = cleanup_stale();
        let live_kept = netns_exists(&live);
        ns::ip(&["netns", "delete", &live], None).ok();
        let removed = removed.expect("cleanup");
        assert!(removed.contains(&stale), "removed {removed:?}");
        assert!(!netns_exists(&stale));
        assert!(live_kept, "namespace of a live pid was deleted");
        assert!(!removed.contains(&live));
    }
}
