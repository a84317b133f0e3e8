//! Flamegraphs of a recording: folded stacks (root first, `frame;frame;… count`, the format
//! flamegraph.pl, inferno and speedscope read) and SVG rendered by `inferno`.
//!
//! Every view starts from one list of [`WeightedStack`]s, which can be built from a
//! [`Recording`] or from folded fixture lines, so tests check exactly what users get.
//!
//! Views: lock waits weighted in nanoseconds (`zone-wait`, `zone-alloc`, `zone-free`,
//! `locks`), SKB frees by site (`skb-free`), PCP page traffic (`pages`).
use std::{
    borrow::Cow,
    collections::{BTreeMap, HashMap, hash_map::Entry},
    fmt::Write as _,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    sync::Arc,
};

use inferno::flamegraph::{self, color::BasicPalette, color::Palette};

use crate::{
    kernel::cpulist::format_cpu_list,
    model::analysis,
    model::classify::{self, LockClass, Side},
    model::recording::Recording,
    model::units::{SatSum, fmt_count, fmt_ns},
};

#[derive(Debug, thiserror::Error)]
pub enum FlameError {
    /// The view has nothing to draw; the message says what is missing and why.
    #[error("{0}")]
    NoData(String),
    #[error("line {line} of {source_name}: {detail}")]
    BadFolded {
        source_name: String,
        line: usize,
        detail: String,
    },
    #[error("rendering the flamegraph: {0}")]
    Render(std::io::Error),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What a flamegraph shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum View {
    /// Every zone->lock wait (alloc, free and other takers), in ns waited.
    ZoneWait,
    /// zone->lock wait on the allocation side (PCP refill, buddy allocation).
    ZoneAlloc,
    /// zone->lock wait on the free side (PCP drain, buddy free), split by trigger.
    ZoneFree,
    /// Every contended lock, in ns waited.
    Locks,
    /// SKB frees by free function and caller, split local/remote.
    SkbFree,
    /// PCP refill/drain pages per CPU, and sampled page flows when present.
    Pages,
}

impl View {
    pub fn name(self) -> &'static str {
        match self {
            View::ZoneWait => "zone-wait",
            View::ZoneAlloc => "zone-alloc",
            View::ZoneFree => "zone-free",
            View::Locks => "locks",
            View::SkbFree => "skb-free",
            View::Pages => "pages",
        }
    }

    /// Title prefix.
    pub fn describe(self) -> &'static str {
        match self {
            View::ZoneWait => "zone->lock wait",
            View::ZoneAlloc => "zone->lock wait, allocation side",
            View::ZoneFree => "zone->lock wait, free side",
            View::Locks => "contended-lock wait",
            View::SkbFree => "SKB frees by site",
            View::Pages => "PCP page traffic",
        }
    }

    /// What a stack's count measures (inferno's hover text unit).
    pub fn count_name(self) -> &'static str {
        match self {
            View::SkbFree => "frees",
            View::Pages => "pages",
            _ => "ns",
        }
    }

    /// Whether a lock wait of `class` belongs in this view.
    pub fn accepts(self, class: &LockClass) -> bool {
        match self {
            View::ZoneWait => class.is_zone(),
            View::ZoneAlloc => class.side() == Some(Side::Alloc),
            View::ZoneFree => class.side() == Some(Side::Free),
            View::Locks => true,
            View::SkbFree | View::Pages => false,
        }
    }

    /// A human total in this view's unit.
    pub fn fmt_total(self, v: u64) -> String {
        match self {
            View::SkbFree => format!("{} SKB frees", fmt_count(v)),
            View::Pages => format!("{} pages", fmt_count(v)),
            _ => format!("{} waited", fmt_ns(v)),
        }
    }
}

/// One stack with its weight: the common input of every view.
#[derive(Debug, Clone, PartialEq)]
pub struct WeightedStack {
    pub cpu: Option<u32>,
    /// Thread id (recordings made with `--tasks`), for `--per-task` and `--per-cgroup`.
    pub tid: Option<u32>,
    /// Leaf first, as recordings store stacks (for lock waits: the slowpath first). Shared:
    /// a 640-CPU recording repeats one stack on many (CPU, lock) entries, and one frame name
    /// in many stacks.
    pub frames_leaf_first: Arc<[Arc<str>]>,
    /// The lock waited on (lock views); None for SKB and page stacks.
    pub class: Option<LockClass>,
    /// ns waited, SKB frees, or pages.
    pub value: u64,
}

/// Lock waits of a recording, classified (stack classifier plus the kernel's zone-address
/// proof, as the report does).
pub fn lock_stacks(rec: &Recording) -> Vec<WeightedStack> {
    // One allocation per distinct frame name, not one per (stack, frame): 50,000 stacks of
    // ~18 frames would otherwise copy a million strings per view.
    let names: Vec<Arc<str>> = rec.frames.iter().map(|f| Arc::from(f.as_str())).collect();
    let bad_frame: Arc<str> = Arc::from("[bad frame]");
    // Same frames as `Recording::stack_frames`, shared names.
    let stack_frames = |idx: u32| -> Arc<[Arc<str>]> {
        rec.stacks.get(idx as usize).map_or_else(
            || Arc::from(Vec::new()),
            |s| {
                s.iter()
                    .map(|&f| names.get(f as usize).unwrap_or(&bad_frame).clone())
                    .collect()
            },
        )
    };
    let mut frames: HashMap<Option<u32>, Arc<[Arc<str>]>> = HashMap::new();
    analysis::classify_waits(rec)
        .into_iter()
        .filter(|cw| cw.wait.total_ns > 0)
        .map(|cw| WeightedStack {
            cpu: Some(cw.wait.cpu),
            tid: cw.wait.tid,
            frames_leaf_first: frames
                .entry(cw.wait.stack)
                .or_insert_with(|| match cw.wait.stack {
                    Some(s) => stack_frames(s),
                    None => Arc::from([Arc::from("[stack unavailable]")]),
                })
                .clone(),
            class: Some(cw.class),
            value: cw.wait.total_ns,
        })
        .collect()
}

/// Lock waits from folded lines (`cpuN;root;…;leaf NS`, the contention fixtures' format),
/// classified by stack alone. Blank lines and `#` comments are skipped.
pub fn lock_stacks_from_folded(
    text: &str,
    source_name: &str,
) -> Result<Vec<WeightedStack>, FlameError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let f = classify::parse_folded_line(trimmed).map_err(|e| FlameError::BadFolded {
            source_name: source_name.to_string(),
            line: i + 1,
            detail: e.to_string(),
        })?;
        let leaf_first: Vec<Arc<str>> = f
            .frames_root_first
            .iter()
            .rev()
            .map(|f| Arc::from(f.as_str()))
            .collect();
        let refs: Vec<&str> = leaf_first.iter().map(|f| &**f).collect();
        let class = classify::classify(&refs).class;
        out.push(WeightedStack {
            cpu: f.cpu,
            tid: None,
            frames_leaf_first: leaf_first.into(),
            class: Some(class),
            value: f.value,
        });
    }
    Ok(out)
}

/// Leaf labels splitting a site's frees by where the SKB was allocated.
pub const SKB_LOCAL: &str = "[freed on its alloc CPU]";
pub const SKB_REMOTE: &str = "[freed on another CPU, same node]";
pub const SKB_CROSS_NODE: &str = "[freed on another NUMA node]";

/// SKB frees from `skb_sites`: `caller;function;[local|remote|cross-node]` per CPU.
pub fn skb_free_stacks(rec: &Recording) -> Vec<WeightedStack> {
    let mut out = Vec::new();
    for s in &rec.skb_sites {
        // remote ⊇ cross_node; clamp so a bad table cannot underflow.
        let remote = s.remote.min(s.count);
        let cross = s.cross_node.min(remote);
        for (label, v) in [
            (SKB_LOCAL, s.count - remote),
            (SKB_REMOTE, remote - cross),
            (SKB_CROSS_NODE, cross),
        ] {
            if v > 0 {
                out.push(WeightedStack {
                    cpu: Some(s.cpu),
                    tid: s.tid,
                    frames_leaf_first: Arc::from([
                        Arc::from(label),
                        Arc::from(s.function.as_str()),
                        Arc::from(s.caller.as_str()),
                    ]),
                    class: None,
                    value: v,
                });
            }
        }
    }
    out
}

pub const PCP_REFILL: &str = "[PCP refill: buddy -> PCP list]";
pub const PCP_DRAIN: &str = "[PCP drain: PCP list -> buddy]";
pub const PAGE_FLOWS: &str = "[page flows: alloc CPU -> free CPU, sampled estimate]";

/// PCP refill/drain pages per CPU (`[PCP refill];cpuN`), and page-matrix flows
/// (`[page flows];alloc cpuA;freed on cpuB`) when page tracking ran.
pub fn page_stacks(rec: &Recording) -> Vec<WeightedStack> {
    let mut out = Vec::new();
    for p in &rec.pcp {
        for (label, v) in [(PCP_REFILL, p.refill_pages), (PCP_DRAIN, p.drain_pages)] {
            if v > 0 {
                out.push(WeightedStack {
                    cpu: Some(p.cpu),
                    tid: None,
                    frames_leaf_first: Arc::from([
                        Arc::from(format!("cpu{}", p.cpu)),
                        Arc::from(label),
                    ]),
                    class: None,
                    value: v,
                });
            }
        }
    }
    for c in rec.page_matrix.iter().filter(|c| c.pages > 0) {
        out.push(WeightedStack {
            cpu: Some(c.alloc_cpu),
            tid: None,
            frames_leaf_first: Arc::from([
                Arc::from(format!("freed on cpu{}", c.free_cpu)),
                Arc::from(format!("alloc cpu{}", c.alloc_cpu)),
                Arc::from(PAGE_FLOWS),
            ]),
            class: None,
            value: c.pages,
        });
    }
    out
}

/// The stacks of `view` from a recording.
pub fn stacks_for_view(rec: &Recording, view: View) -> Vec<WeightedStack> {
    match view {
        View::SkbFree => skb_free_stacks(rec),
        View::Pages => page_stacks(rec),
        _ => lock_stacks(rec)
            .into_iter()
            .filter(|s| s.class.as_ref().is_some_and(|c| view.accepts(c)))
            .collect(),
    }
}

/// How to fold stacks.
#[derive(Debug, Clone, Default)]
pub struct FoldOptions {
    /// Put `cpuN` as the root frame.
    pub per_cpu: bool,
    /// Keep only these CPUs (stacks without a CPU are dropped when set).
    pub cpus: Option<Vec<u32>>,
    /// A root frame per thread or per cgroup (`--per-task`, `--per-cgroup`), above
    /// `cpuN` when both are asked for.
    pub roots: Option<TaskRoots>,
}

/// Root frames naming each stack's thread (`comm-tid`) or its cgroup, by thread id.
#[derive(Debug, Clone)]
pub struct TaskRoots {
    labels: HashMap<u32, Arc<str>>,
    /// Stacks without a thread id.
    none: Arc<str>,
    /// `thread` or `cgroup`, for the subtitle.
    what: &'static str,
}

impl TaskRoots {
    /// `comm-tid` of every thread of `rec`'s lock waits and SKB sites.
    pub fn per_task(rec: &Recording) -> TaskRoots {
        let names = crate::model::tasks::Names::of(rec);
        TaskRoots::build(rec, "thread", |tid| names.label(tid).frame())
    }

    /// The cgroup path of every such thread (one frame per cgroup).
    pub fn per_cgroup(rec: &Recording) -> TaskRoots {
        let names = crate::model::tasks::Names::of(rec);
        TaskRoots::build(rec, "cgroup", |tid| names.label(tid).cgroup_name())
    }

    fn build(rec: &Recording, what: &'static str, name: impl Fn(u32) -> String) -> TaskRoots {
        let tids = rec
            .lock_waits
            .iter()
            .filter_map(|w| w.tid)
            .chain(rec.skb_sites.iter().filter_map(|s| s.tid));
        // One allocation per distinct name: fold groups lines by it.
        let mut shared: HashMap<String, Arc<str>> = HashMap::new();
        let mut labels = HashMap::new();
        for tid in tids {
            labels.entry(tid).or_insert_with(|| {
                let n = display_frame(&name(tid));
                shared
                    .entry(n.clone())
                    .or_insert_with(|| Arc::from(n))
                    .clone()
            });
        }
        TaskRoots {
            labels,
            none: Arc::from("[no thread]"),
            what,
        }
    }

    fn label(&self, tid: Option<u32>) -> &Arc<str> {
        tid.and_then(|t| self.labels.get(&t)).unwrap_or(&self.none)
    }
}

/// Folded stacks, root first, merged and sorted (deterministic output for diffs and goldens).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Folded {
    pub stacks: BTreeMap<String, u64>,
}

impl Folded {
    pub fn total(&self) -> u64 {
        self.stacks.values().copied().sat_sum()
    }

    pub fn is_empty(&self) -> bool {
        self.total() == 0
    }

    /// `frame;frame;… count` lines.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        for (k, v) in self.stacks.iter().filter(|(_, v)| **v > 0) {
            let _ = writeln!(s, "{k} {v}");
        }
        s
    }

    /// The same stacks with every count multiplied by `factor` and rounded (per-second
    /// normalisation for comparisons). Stacks that round to 0 are dropped.
    pub fn scaled(&self, factor: f64) -> Folded {
        self.clone().into_scaled(factor)
    }

    /// [`Folded::scaled`] in place, without copying every stack's text.
    pub fn into_scaled(mut self, factor: f64) -> Folded {
        self.stacks.retain(|_, v| {
            *v = (*v as f64 * factor).round() as u64;
            *v > 0
        });
        self
    }
}

/// A frame as shown in flamegraphs: the symbol without its `+0xoff` (so one function is one
/// box, as perf's folded output does), module kept; `;` and control characters replaced so
/// they cannot break the folded format.
pub fn display_frame(frame: &str) -> String {
    let frame = frame.trim();
    let (sym, module) = match frame.find(" [") {
        Some(i) => (&frame[..i], Some(frame[i..].trim())),
        None => (frame, None),
    };
    let sym = match sym.find("+0x") {
        Some(i) if i > 0 => &sym[..i],
        _ => sym,
    };
    let mut out: String = sym
        .chars()
        .map(|c| match c {
            ';' => ':',
            c if c.is_control() => ' ',
            c => c,
        })
        .collect();
    if let Some(m) = module {
        out.push(' ');
        out.extend(
            m.chars()
                .map(|c| if c == ';' || c.is_control() { ' ' } else { c }),
        );
    }
    if out.trim().is_empty() {
        "[unknown]".to_string()
    } else {
        out
    }
}

/// The root frame naming the lock, e.g. `[zone->lock alloc]`, so a flamegraph splits by lock
/// (and by alloc/free side and free trigger) at its base.
pub fn class_frame(class: &LockClass) -> String {
    display_frame(&format!("[{}]", class.label()))
}

/// Folds `stacks` root first: `[cpuN;][lock class;]root;…;leaf count`.
pub fn fold(stacks: &[WeightedStack], opts: &FoldOptions) -> Folded {
    // A line depends only on its root CPU (per_cpu), lock class and frame list, so weights
    // are summed per distinct (root, class, frames) first and each line is built once: a
    // 640-CPU recording repeats one stack on many (CPU, lock) entries. Frame lists are told
    // apart by allocation (lock_stacks shares one per stack); equal lists in separate
    // allocations still fold into one line below. Groups keep their order of first
    // appearance (the order lock_stacks allocated the frame lists in), so building the lines
    // reads memory mostly in order: in hash order, a cache miss per stack took half the time.
    let mut groups: Vec<(LineKey<'_>, &WeightedStack, u64)> = Vec::new();
    let mut index: HashMap<LineKey<'_>, usize, BuildAddrHasher> = HashMap::default();
    for s in stacks {
        let wanted = match &opts.cpus {
            Some(cpus) => s.cpu.is_some_and(|c| cpus.contains(&c)),
            None => true,
        };
        if !wanted || s.value == 0 {
            continue;
        }
        let key = LineKey {
            task: opts
                .roots
                .as_ref()
                .map(|r| Arc::as_ptr(r.label(s.tid)) as *const u8 as usize),
            root: opts.per_cpu.then_some(s.cpu),
            frames: (
                s.frames_leaf_first.as_ptr() as usize,
                s.frames_leaf_first.len(),
            ),
            class: s.class.as_ref(),
        };
        match index.entry(key) {
            Entry::Occupied(e) => {
                if let Some(g) = groups.get_mut(*e.get()) {
                    g.2 = g.2.saturating_add(s.value);
                }
            }
            Entry::Vacant(e) => {
                e.insert(groups.len());
                groups.push((key, s, s.value));
            }
        }
    }

    let mut lines: Vec<(String, u64)> = Vec::with_capacity(groups.len());
    // Display names computed once per distinct frame (by allocation) and class.
    let mut shown: HashMap<usize, String, BuildAddrHasher> = HashMap::default();
    let mut classes: HashMap<&LockClass, String> = HashMap::new();
    // One scratch buffer; each line is then copied out at its exact size.
    let mut line = Line::default();
    for (LineKey { root, class, .. }, s, value) in groups {
        line.clear();
        if let Some(r) = &opts.roots {
            line.push(r.label(s.tid));
        }
        let cpu_frame = root.flatten().map(|c| format!("cpu{c}"));
        if root.is_some() {
            line.push(cpu_frame.as_deref().unwrap_or("cpu?"));
        }
        if let Some(class) = class {
            let f = classes.entry(class).or_insert_with(|| class_frame(class));
            line.push(f);
        }
        for f in s.frames_leaf_first.iter().rev() {
            let d = shown
                .entry(Arc::as_ptr(f) as *const u8 as usize)
                .or_insert_with(|| display_frame(f));
            line.push(d);
        }
        // Page stacks carry their CPU as the leaf; under a `cpuN` root it would repeat.
        if root.is_some() && line.parts > 1 && cpu_frame.as_deref() == Some(line.last()) {
            line.pop();
        }
        lines.push((line.text.as_str().to_owned(), value));
    }
    // Sorted, then merged: fewer comparisons of these long, prefix-sharing strings than
    // inserting them one by one, and the map is then built from sorted input in one pass.
    lines.sort_unstable_by(|x, y| x.0.cmp(&y.0));
    lines.dedup_by(|next, kept| {
        let same = next.0 == kept.0;
        if same {
            kept.1 = kept.1.saturating_add(next.1);
        }
        same
    });
    Folded {
        stacks: lines.into_iter().collect(),
    }
}

/// What decides a folded line: its root CPU (per_cpu), frame list (by allocation) and lock
/// class. Hashed without the class: a stack nearly always has one class, and hashing the
/// class's text for every entry was a tenth of the fold.
#[derive(Clone, Copy, PartialEq, Eq)]
struct LineKey<'a> {
    /// The thread or cgroup root frame, by allocation (`TaskRoots` shares one per name).
    task: Option<usize>,
    root: Option<Option<u32>>,
    frames: (usize, usize),
    class: Option<&'a LockClass>,
}

impl std::hash::Hash for LineKey<'_> {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.task.hash(h);
        self.root.hash(h);
        self.frames.hash(h);
    }
}

/// A folded line being built: `;`-joined parts, and where the last one starts.
#[derive(Default)]
struct Line {
    text: String,
    parts: usize,
    last_start: usize,
}

impl Line {
    fn clear(&mut self) {
        self.text.clear();
        self.parts = 0;
        self.last_start = 0;
    }

    fn push(&mut self, part: &str) {
        if self.parts > 0 {
            self.text.push(';');
        }
        self.last_start = self.text.len();
        self.text.push_str(part);
        self.parts += 1;
    }

    fn last(&self) -> &str {
        &self.text[self.last_start..]
    }

    /// Drops the last part (only called with two or more parts).
    fn pop(&mut self) {
        self.text.truncate(self.last_start.saturating_sub(1));
        self.parts -= 1;
    }
}

/// Hashes address and number keys one multiply per word (FxHash's scheme): SipHash's
/// flooding resistance buys nothing for our own pointers and CPU numbers, and a
/// 50,000-stack fold looks up about a million of them.
#[derive(Default)]
struct AddrHasher(u64);

impl AddrHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0xf135_7aea_2e62_a9c5);
    }
}

impl std::hash::Hasher for AddrHasher {
    fn finish(&self) -> u64 {
        // The table indexes by the low bits, which a multiply leaves zero for aligned
        // pointers: bring the well-mixed high bits down.
        self.0.rotate_left(26)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.add(u64::from(b));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }

    fn write_u32(&mut self, n: u32) {
        self.add(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    fn write_isize(&mut self, n: isize) {
        self.add(n as u64);
    }
}

type BuildAddrHasher = std::hash::BuildHasherDefault<AddrHasher>;

/// Where a flamegraph's data came from, for its title.
#[derive(Debug, Clone, Default)]
pub struct Meta {
    pub host: Option<String>,
    pub kernel: Option<String>,
    pub duration_s: Option<f64>,
    /// Used when host is unknown (a fixture file name).
    pub source: String,
}

impl Meta {
    pub fn of(rec: &Recording, source: &str) -> Meta {
        Meta {
            host: Some(rec.host.hostname.clone()),
            kernel: Some(rec.host.kernel_release.clone()),
            duration_s: Some(rec.duration_s()),
            source: source.to_string(),
        }
    }

    /// "host (Linux 6.18.44), 2.03 s"
    pub fn describe(&self) -> String {
        let mut s = match (&self.host, &self.kernel) {
            (Some(h), Some(k)) => format!("{h} (Linux {k})"),
            (Some(h), None) => h.clone(),
            (None, Some(k)) => format!("{} (Linux {k})", self.source),
            (None, None) => self.source.clone(),
        };
        if let Some(d) = self.duration_s {
            let _ = write!(s, ", {d:.2} s");
        }
        s
    }
}

/// Flamegraph title: view, host, kernel, duration and total with units.
pub fn title(view: View, meta: &Meta, total: u64) -> String {
    format!(
        "{}: {}, {}",
        view.describe(),
        meta.describe(),
        view.fmt_total(total)
    )
}

/// Subtitle: what the widths mean, and the filters applied.
pub fn subtitle(view: View, opts: &FoldOptions) -> String {
    let mut s = match view {
        View::SkbFree => {
            "width = SKB frees; leaf splits by where the SKB was allocated".to_string()
        }
        View::Pages => "width = base pages (4 KiB units)".to_string(),
        _ => "width = nanoseconds waited; root frame names the lock".to_string(),
    };
    if let Some(r) = &opts.roots {
        let _ = write!(s, "; one root per {}", r.what);
    }
    if opts.per_cpu {
        s.push_str("; one root per CPU");
    }
    if let Some(c) = &opts.cpus {
        let _ = write!(s, "; CPUs {}", format_cpu_list(c));
    }
    s
}

/// A folded view of a recording with its title, or why there is nothing to draw.
pub struct Flame {
    pub view: View,
    pub folded: Folded,
    pub title: String,
    pub subtitle: String,
}

/// Folds `view` of `rec`; [`FlameError::NoData`] when there is nothing to draw.
pub fn build(
    rec: &Recording,
    view: View,
    opts: &FoldOptions,
    source: &str,
) -> Result<Flame, FlameError> {
    if opts.roots.is_some() && view == View::Pages {
        return Err(FlameError::NoData(
            "the pages view has no threads: --per-task and --per-cgroup apply to the lock and SKB views"
                .into(),
        ));
    }
    let folded = fold(&stacks_for_view(rec, view), opts);
    if folded.is_empty() {
        return Err(FlameError::NoData(no_data_reason(rec, view, opts)));
    }
    let meta = Meta::of(rec, source);
    Ok(Flame {
        view,
        title: title(view, &meta, folded.total()),
        subtitle: subtitle(view, opts),
        folded,
    })
}

/// One line saying why `view` is empty for this recording.
pub fn no_data_reason(rec: &Recording, view: View, opts: &FoldOptions) -> String {
    use crate::kernel::probes::name;
    let mut s = match view {
        View::SkbFree => "no SKB frees in this recording: its skb_sites table is empty (the SKB \
                          free probes did not run on this kernel or saw no frees)"
            .to_string(),
        View::Pages => {
            let mut s = "no PCP refill/drain pages and no page flows in this recording".to_string();
            let m = crate::model::recording::PcpMethod::of(&rec.probes);
            if m.refill == crate::model::recording::PcpCount::Off
                && m.drain == crate::model::recording::PcpCount::Off
            {
                s.push_str(" (no PCP probe attached: per page or per batch)");
            }
            s
        }
        _ => {
            let what = match view {
                View::ZoneAlloc => "no zone->lock wait on the allocation side",
                View::ZoneFree => "no zone->lock wait on the free side",
                View::ZoneWait => "no zone->lock wait",
                _ => "no lock contention",
            };
            let mut s = format!("{what} in this recording");
            if !rec.attached(name::CONTENTION_END) {
                s.push_str(" (the lock-contention probes did not attach)");
            }
            s
        }
    };
    if let Some(c) = &opts.cpus {
        let _ = write!(s, " on CPUs {}", format_cpu_list(c));
    }
    s
}

fn svg_options(view: View, title: &str, subtitle: &str) -> flamegraph::Options<'static> {
    let mut o = flamegraph::Options::default();
    o.title = title.to_string();
    o.subtitle = Some(subtitle.to_string());
    o.count_name = view.count_name().to_string();
    o.name_type = "Frame:".to_string();
    // Same colour for the same frame in every picture, and byte-identical output for a
    // given input (no random colours).
    o.hash = true;
    o.deterministic = true;
    o.colors = match view {
        View::Pages => Palette::Basic(BasicPalette::Mem),
        View::SkbFree => Palette::Basic(BasicPalette::Io),
        _ => Palette::Basic(BasicPalette::Hot),
    };
    o
}

/// The largest total inferno is given: it adds a picture's counts in a u64, and colours a
/// differential line by 150 × its change in an isize. Real recordings stay far below (2^55
/// ns is 417 days of waiting); one with counts near u64::MAX is drawn scaled down to it.
const INFERNO_MAX_TOTAL: u64 = 1 << 55;

/// The factor that brings pictures of these totals within [`INFERNO_MAX_TOTAL`]: 1 unless
/// one is over it.
fn inferno_scale(pictures: &[&Folded]) -> f64 {
    let most = pictures
        .iter()
        .map(|f| f.stacks.values().map(|&v| u128::from(v)).sum::<u128>())
        .max()
        .unwrap_or(0);
    if most <= u128::from(INFERNO_MAX_TOTAL) {
        1.0
    } else {
        INFERNO_MAX_TOTAL as f64 / most as f64
    }
}

/// Renders folded stacks as an interactive SVG flamegraph.
pub fn render_svg(
    folded: &Folded,
    view: View,
    title: &str,
    subtitle: &str,
) -> Result<Vec<u8>, FlameError> {
    if folded.is_empty() {
        return Err(FlameError::NoData(format!("{title}: nothing to draw")));
    }
    let mut o = svg_options(view, title, subtitle);
    let scale = inferno_scale(&[folded]);
    let text = if scale < 1.0 {
        // Hover texts show the counts scaled back up.
        o.factor = 1.0 / scale;
        folded.scaled(scale).to_text()
    } else {
        folded.to_text()
    };
    let mut out = Vec::new();
    flamegraph::from_lines(&mut o, text.lines(), &mut out).map_err(FlameError::Render)?;
    Ok(out)
}

/// Renders a differential flamegraph (inferno-diff-folded, then flamegraph): widths from
/// `after`, red where a stack grew from `before`, blue where it shrank. With `negate`, the
/// roles swap (widths from `before`, colours still read "after vs before"), so stacks that
/// vanished are visible: FlameGraph's `difffolded.pl after before | flamegraph.pl --negate`.
pub fn render_diff_svg(
    before: &Folded,
    after: &Folded,
    negate: bool,
    view: View,
    title: &str,
    subtitle: &str,
) -> Result<Vec<u8>, FlameError> {
    let (first, second) = if negate {
        (after, before)
    } else {
        (before, after)
    };
    // Both sides by one factor, so the colours still compare like with like.
    let scale = inferno_scale(&[first, second]);
    let (first, second) = if scale < 1.0 {
        (
            Cow::Owned(first.scaled(scale)),
            Cow::Owned(second.scaled(scale)),
        )
    } else {
        (Cow::Borrowed(first), Cow::Borrowed(second))
    };
    if second.is_empty() {
        return Err(FlameError::NoData(format!(
            "{title}: the {} recording has no stacks to size the picture by",
            if negate { "before" } else { "after" }
        )));
    }
    let mut diff = Vec::new();
    inferno::differential::from_readers(
        inferno::differential::Options::default(),
        BufReader::new(first.to_text().as_bytes()),
        BufReader::new(second.to_text().as_bytes()),
        &mut diff,
    )
    .map_err(FlameError::Render)?;
    let mut o = svg_options(view, title, subtitle);
    o.negate_differentials = negate;
    o.factor = 1.0 / scale;
    let mut out = Vec::new();
    let lines: Vec<String> = BufReader::new(diff.as_slice())
        .lines()
        .collect::<Result<_, _>>()
        .map_err(FlameError::Render)?;
    flamegraph::from_lines(&mut o, lines.iter().map(String::as_str), &mut out)
        .map_err(FlameError::Render)?;
    Ok(out)
}

/// Default output path: `<recording stem>.<view>.svg` beside the recording.
pub fn default_output(recording: &Path, view: View) -> PathBuf {
    let stem = recording
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "zoneprof".to_string());
    recording.with_file_name(format!("{stem}.{}.svg", view.name()))
}

/// Writes `bytes` atomically (see `crate::atomic`), so no reader sees half a picture.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), FlameError> {
    crate::output::atomic::write(path, bytes).map_err(|source| FlameError::Write {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tasks::tests::sample_with_tasks;

    #[test]
    fn per_task_and_per_cgroup_roots_split_the_same_total() {
        let rec = sample_with_tasks();
        let plain = fold(&lock_stacks(&rec), &FoldOptions::default());
        let tasks = fold(
            &lock_stacks(&rec),
            &FoldOptions {
                roots: Some(TaskRoots::per_task(&rec)),
                ..Default::default()
            },
        );
        assert_eq!(tasks.total(), plain.total());
        let roots: std::collections::BTreeSet<&str> = tasks
            .stacks
            .keys()
            .map(|k| k.split(';').next().unwrap_or(""))
            .collect();
        assert_eq!(
            roots,
            [
                "[unnamed]-4242",
                "kworker/1:0-77",
                "tap-send-0-1001",
                "vhost-1000-1002"
            ]
            .into_iter()
            .collect()
        );
        assert!(
            tasks
                .stacks
                .keys()
                .any(|k| k.starts_with("vhost-1000-1002;[zone->lock free")),
            "{tasks:?}"
        );
        let cg = fold(
            &lock_stacks(&rec),
            &FoldOptions {
                roots: Some(TaskRoots::per_cgroup(&rec)),
                per_cpu: true,
                ..Default::default()
            },
        );
        assert_eq!(cg.total(), plain.total());
        assert!(
            cg.stacks
                .keys()
                .any(|k| k.starts_with("/machine.slice/vm1.scope;cpu1;[zone->lock free")),
            "{cg:?}"
        );
        // SKB frees split by thread too; the pages view has no threads.
        let skb = fold(
            &skb_free_stacks(&rec),
            &FoldOptions {
                roots: Some(TaskRoots::per_task(&rec)),
                ..Default::default()
            },
        );
        assert_eq!(
            skb.stacks
                .get("vhost-1000-1002;tun_do_read;consume_skb;[freed on another CPU, same node]"),
            Some(&900)
        );
        let opts = FoldOptions {
            roots: Some(TaskRoots::per_task(&rec)),
            ..Default::default()
        };
        assert!(matches!(
            build(&rec, View::Pages, &opts, "t"),
            Err(FlameError::NoData(m)) if m.contains("--per-task")
        ));
    }

    fn ws(cpu: u32, leaf_first: &[&str], class: Option<LockClass>, value: u64) -> WeightedStack {
        WeightedStack {
            cpu: Some(cpu),
            tid: None,
            frames_leaf_first: leaf_first.iter().map(|s| Arc::from(*s)).collect(),
            class,
            value,
        }
    }

    #[test]
    fn display_frame_strips_offsets_keeps_modules_and_escapes_separators() {
        assert_eq!(
            display_frame("free_pcppages_bulk+0x39"),
            "free_pcppages_bulk"
        );
        assert_eq!(display_frame("tun_do_read+0x23 [tun]"), "tun_do_read [tun]");
        assert_eq!(display_frame("a;b+0x1"), "a:b");
        assert_eq!(display_frame("0xffffffff81234567"), "0xffffffff81234567");
        assert_eq!(display_frame("  "), "[unknown]");
        assert_eq!(display_frame("x\ny"), "x y");
    }

    #[test]
    fn fold_reverses_to_root_first_merges_and_prefixes_class_and_cpu() {
        let stacks = vec![
            ws(
                0,
                &["slow+0x1", "__rmqueue_pcplist+0x10", "root+0x2"],
                Some(LockClass::ZoneAlloc),
                5,
            ),
            ws(
                1,
                &["slow+0x9", "__rmqueue_pcplist+0x11", "root+0x3"],
                Some(LockClass::ZoneAlloc),
                7,
            ),
        ];
        let f = fold(&stacks, &FoldOptions::default());
        assert_eq!(
            f.to_text(),
            "[zone->lock alloc];root;__rmqueue_pcplist;slow 12\n"
        );
        let f = fold(
            &stacks,
            &FoldOptions {
                per_cpu: true,
                cpus: Some(vec![1]),
                roots: None,
            },
        );
        assert_eq!(
            f.to_text(),
            "cpu1;[zone->lock alloc];root;__rmqueue_pcplist;slow 7\n"
        );
        assert_eq!(f.total(), 7);
    }

    #[test]
    fn fold_sums_a_shared_frame_list_per_root_and_class() {
        let frames: Arc<[Arc<str>]> = ["slow+0x1", "taker+0x2"]
            .iter()
            .map(|s| Arc::from(*s))
            .collect();
        let st = |cpu: u32, class: LockClass, value: u64| WeightedStack {
            cpu: Some(cpu),
            tid: None,
            frames_leaf_first: frames.clone(),
            class: Some(class),
            value,
        };
        let rq = || LockClass::Other("rq lock".to_string());
        let stacks = vec![
            st(0, LockClass::ZoneAlloc, 1),
            st(1, LockClass::ZoneAlloc, 2),
            st(0, rq(), 4),
            st(0, LockClass::ZoneAlloc, 8),
            // The same frames in another allocation still make the same line.
            ws(1, &["slow+0x1", "taker+0x2"], Some(rq()), 16),
        ];
        let plain = fold(&stacks, &FoldOptions::default());
        assert_eq!(
            plain.to_text(),
            "[rq lock];taker;slow 20\n[zone->lock alloc];taker;slow 11\n"
        );
        let per_cpu = fold(
            &stacks,
            &FoldOptions {
                per_cpu: true,
                cpus: None,
                roots: None,
            },
        );
        assert_eq!(
            per_cpu.to_text(),
            "cpu0;[rq lock];taker;slow 4\n\
             cpu0;[zone->lock alloc];taker;slow 9\n\
             cpu1;[rq lock];taker;slow 16\n\
             cpu1;[zone->lock alloc];taker;slow 2\n"
        );
    }

    #[test]
    fn page_stacks_do_not_repeat_the_cpu_under_a_cpu_root() {
        let stacks = vec![ws(3, &["cpu3", PCP_REFILL], None, 10)];
        let plain = fold(&stacks, &FoldOptions::default());
        assert_eq!(plain.to_text(), format!("{PCP_REFILL};cpu3 10\n"));
        let per_cpu = fold(
            &stacks,
            &FoldOptions {
                per_cpu: true,
                cpus: None,
                roots: None,
            },
        );
        assert_eq!(per_cpu.to_text(), format!("cpu3;{PCP_REFILL} 10\n"));
    }

    #[test]
    fn folded_fixture_lines_are_classified() {
        let text = "cpu0;root+0x1;__rmqueue_pcplist+0x5;_raw_spin_lock_irqsave+0x55;\
                    __pv_queued_spin_lock_slowpath+0x15f 100\n\
                    # comment\n\n\
                    cpu1;root+0x1;free_frozen_page_commit+0x2;free_pcppages_bulk+0x3;\
                    _raw_spin_lock+0x1;native_queued_spin_lock_slowpath+0x1 50\n";
        let s = lock_stacks_from_folded(text, "t").expect("parses");
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].class, Some(LockClass::ZoneAlloc));
        assert_eq!(
            &*s[0].frames_leaf_first[0],
            "__pv_queued_spin_lock_slowpath+0x15f"
        );
        assert!(View::ZoneFree.accepts(s[1].class.as_ref().expect("class")));
        let err = lock_stacks_from_folded("cpu0;a;b notanumber\n", "t.folded").unwrap_err();
        assert!(err.to_string().starts_with("line 1 of t.folded"), "{err}");
    }

    #[test]
    fn scaled_rounds_and_drops_zeroes() {
        let mut f = Folded::default();
        f.stacks.insert("a;b".into(), 10);
        f.stacks.insert("a;c".into(), 1);
        let s = f.scaled(0.25);
        assert_eq!(s.stacks.get("a;b"), Some(&3));
        assert_eq!(s.stacks.get("a;c"), None);
    }

    #[test]
    fn empty_folded_renders_no_picture() {
        let e = render_svg(&Folded::default(), View::ZoneWait, "t", "s").unwrap_err();
        assert!(matches!(e, FlameError::NoData(_)));
    }

    #[test]
    fn svg_has_title_and_diff_svg_renders_both_ways() {
        let mut before = Folded::default();
        before.stacks.insert("[zone->lock alloc];a;b".into(), 900);
        before.stacks.insert("[zone->lock free];a;c".into(), 100);
        let mut after = Folded::default();
        after.stacks.insert("[zone->lock free];a;c".into(), 300);
        let svg = render_svg(&before, View::ZoneWait, "my <title>", "sub").expect("svg");
        let svg = String::from_utf8(svg).expect("utf8");
        assert!(svg.contains("my &lt;title&gt;"), "title escaped in SVG");
        let fwd = render_diff_svg(&before, &after, false, View::ZoneWait, "d", "s").expect("diff");
        let fwd = String::from_utf8(fwd).expect("utf8");
        // The vanished alloc stack has no width in the forward diff ...
        assert!(!fwd.contains("zone-&gt;lock alloc"));
        // ... but shows (blue: shrank) in the negated one.
        let neg = render_diff_svg(&before, &after, true, View::ZoneWait, "d", "s").expect("diff");
        let neg = String::from_utf8(neg).expect("utf8");
        assert!(neg.contains("zone-&gt;lock alloc"));
        let e = render_diff_svg(&before, &Folded::default(), false, View::ZoneWait, "d", "s");
        assert!(matches!(e, Err(FlameError::NoData(_))));
    }

    #[test]
    fn counts_near_u64_max_are_drawn_scaled_to_what_inferno_adds_up() {
        let mut normal = Folded::default();
        normal.stacks.insert("a;b".into(), 900);
        assert_eq!(inferno_scale(&[&normal]), 1.0);
        let mut huge = Folded::default();
        huge.stacks.insert("a;b".into(), u64::MAX);
        huge.stacks.insert("a;c".into(), u64::MAX);
        huge.stacks.insert("a;d".into(), 1);
        let scale = inferno_scale(&[&normal, &huge]);
        let scaled = huge.scaled(scale);
        let total: u64 = scaled.stacks.values().sum();
        assert!(total <= INFERNO_MAX_TOTAL + 2, "{total}");
        // Widths keep their proportions; the hover text shows the counts scaled back.
        assert_eq!(scaled.stacks["a;b"], scaled.stacks["a;c"]);
        let svg = render_svg(&huge, View::ZoneWait, "t", "s").expect("svg");
        let svg = String::from_utf8(svg).expect("utf8");
        assert!(
            svg.contains("b (18,446,744,073,709,551,615 ns, 50.00%)"),
            "{svg}"
        );
        for negate in [false, true] {
            render_diff_svg(&normal, &huge, negate, View::ZoneWait, "d", "s").expect("diff");
        }
    }
}
