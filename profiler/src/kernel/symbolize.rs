//! Kernel symbolization from `/proc/kallsyms`.
//!
//! BPF stack maps hold raw kernel addresses; reports and the lock classifier need
//! `symbol+0xoff` names. kallsyms lists start addresses only (no sizes), so an address is
//! attributed to the nearest text symbol at or below it, with bounds so that an address past the
//! end of a text region (after `_etext`, in data, far past a module's last symbol) gets no name
//! rather than a bogus `last_symbol+0x123456`.

use std::collections::HashMap;
use std::path::Path;

/// Where the running kernel publishes its symbols.
const KALLSYMS_PATH: &str = "/proc/kallsyms";

/// How far past the last symbol of a run (the core kernel or one module) an address may still be
/// attributed to that symbol. kallsyms has no sizes; no kernel function comes near 1 MiB, so
/// anything further is in a gap (between modules, after the kernel image).
pub const MAX_TAIL: u64 = 1 << 20;

/// Errors from reading or parsing kallsyms.
#[derive(Debug, thiserror::Error)]
pub enum SymbolizeError {
    /// The file could not be read.
    #[error("cannot read {path}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A line is not `ADDRESS TYPE NAME [\[MODULE\]]`.
    #[error("kallsyms line {line} is malformed: {text:?}")]
    Malformed { line: usize, text: String },
    /// Every address reads as 0: the kernel hides them from this reader.
    #[error(
        "kallsyms addresses are hidden (all 0): run as root or with CAP_SYSLOG, or lower kernel.kptr_restrict to 0 and kernel.perf_event_paranoid to 1 or less"
    )]
    AddressesHidden,
    /// Nothing that can be resolved to.
    #[error("kallsyms lists no text symbols")]
    NoTextSymbols,
}

/// A resolved address: the symbol it falls in and how far into it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resolved<'a> {
    pub name: &'a str,
    pub offset: u64,
    /// The module (`tun`, `bpf`, `__builtin__ftrace`, ...) for symbols outside the core kernel.
    pub module: Option<&'a str>,
}

/// One entry of the address table: a text symbol, or a boundary that ends the text before it.
#[derive(Clone, Debug)]
struct Entry {
    addr: u64,
    /// Exclusive end of the addresses attributed to this entry.
    limit: u64,
    name: Box<str>,
    module: Option<u32>,
    /// False for boundaries: section markers (`_etext`, `__sched_text_end`) and non-text symbols.
    /// An address whose nearest entry is a boundary resolves to nothing.
    resolvable: bool,
}

/// Kernel text symbols sorted by address, plus every name kallsyms lists.
#[derive(Clone, Debug)]
pub struct Kallsyms {
    entries: Vec<Entry>,
    modules: Vec<Box<str>>,
    /// Every name (all symbol types) to its lowest address; static functions repeat names.
    names: HashMap<Box<str>, u64>,
    /// Base name (compiler suffixes stripped) to the suffixed names that share it.
    suffixed: HashMap<Box<str>, Vec<Box<str>>>,
    text_symbols: usize,
}

/// A parsed kallsyms line before alias resolution.
struct Candidate<'t> {
    addr: u64,
    kind: char,
    name: &'t str,
    module: Option<u32>,
}

impl Candidate<'_> {
    /// Sort key among symbols sharing one address: the lowest wins the address. Text beats
    /// boundaries (a marker like `_stext` or `__sched_text_start` often shares the first function's
    /// address), then global T over W over local t/w, then the shortest name, then by bytes so the
    /// choice never depends on line order.
    fn rank(&self) -> (bool, u8, usize, &str) {
        let type_rank = match self.kind {
            'T' => 0,
            'W' => 1,
            't' => 2,
            'w' => 3,
            _ => 4,
        };
        (!self.resolvable(), type_rank, self.name.len(), self.name)
    }

    fn resolvable(&self) -> bool {
        is_text_type(self.kind) && !is_section_marker(self.name)
    }
}

/// kallsyms types that name code.
fn is_text_type(kind: char) -> bool {
    matches!(kind, 't' | 'T' | 'w' | 'W')
}

/// Linker-script markers that sit in text but name no function (`_stext`, `_etext`,
/// `__lock_text_start`, ...). Real functions can start with `__start_`/`__stop_` (`__start_tty`),
/// so only these exact shapes count.
fn is_section_marker(name: &str) -> bool {
    matches!(
        name,
        "_text" | "_stext" | "_etext" | "_sinittext" | "_einittext" | "__pi__text"
    ) || (name.starts_with("__") && (name.ends_with("_text_start") || name.ends_with("_text_end")))
}

/// Function padding symbols (CONFIG_FUNCTION_PADDING, 6.2+): 16 bytes of NOPs before each
/// function. They never name the code a stack returns into, so they are not in the address table.
fn is_padding(name: &str) -> bool {
    name.starts_with("__pfx_")
}

/// Strips compiler clone suffixes (`.isra.0`, `.constprop.0`, `.part.0`, `.cold`, `.cold.3`,
/// `.lto_priv.0`, `.llvm.123`, chained in any order) so `foo.constprop.0.isra.0` reads as `foo`:
/// the suffix depends on the compiler, the function is the same.
pub fn base_name(name: &str) -> &str {
    let mut rest = name;
    loop {
        let stripped = strip_one_suffix(rest);
        if stripped.len() == rest.len() {
            return rest;
        }
        rest = stripped;
    }
}

/// Removes one trailing `.tag` or `.tag.N` clone suffix, or returns `name` unchanged.
fn strip_one_suffix(name: &str) -> &str {
    const NUMBERED: [&str; 6] = ["isra", "constprop", "part", "cold", "lto_priv", "llvm"];
    let Some(dot) = name.rfind('.') else {
        return name;
    };
    let (head, last) = (&name[..dot], &name[dot + 1..]);
    if head.is_empty() {
        return name;
    }
    if last == "cold" {
        return head;
    }
    if !last.is_empty()
        && last.bytes().all(|b| b.is_ascii_digit())
        && let Some(dot2) = head.rfind('.')
    {
        let (head2, tag) = (&head[..dot2], &head[dot2 + 1..]);
        if !head2.is_empty() && NUMBERED.contains(&tag) {
            return head2;
        }
    }
    name
}

/// Parses one non-empty kallsyms line.
fn parse_line(line: &str, modules: &mut Vec<Box<str>>) -> Option<(u64, char, String, Option<u32>)> {
    let mut fields = line.split_whitespace();
    let addr = u64::from_str_radix(fields.next()?, 16).ok()?;
    let kind_field = fields.next()?;
    let mut kind_chars = kind_field.chars();
    let kind = kind_chars.next()?;
    if kind_chars.next().is_some() {
        return None;
    }
    let name = fields.next()?.to_string();
    let module = match fields.next() {
        None => None,
        Some(tok) => {
            let m = tok.strip_prefix('[')?.strip_suffix(']')?;
            if m.is_empty() {
                return None;
            }
            let idx = match modules.iter().position(|x| &**x == m) {
                Some(i) => i,
                None => {
                    modules.push(m.into());
                    modules.len() - 1
                }
            };
            Some(u32::try_from(idx).ok()?)
        }
    };
    if fields.next().is_some() {
        return None;
    }
    Some((addr, kind, name, module))
}

impl Kallsyms {
    /// Parses kallsyms text: `ffffffff81000000 T _stext`, module lines
    /// `ffffffffc0a01000 t tun_do_read\t[tun]`. Keeps text symbols (t/T/w/W) for resolving and
    /// remembers all names for [`Kallsyms::contains`]. Non-text symbols and section markers only
    /// bound the text before them.
    pub fn parse(text: &str) -> Result<Kallsyms, SymbolizeError> {
        let mut modules: Vec<Box<str>> = Vec::new();
        let mut parsed: Vec<(u64, char, String, Option<u32>)> = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let entry =
                parse_line(line, &mut modules).ok_or_else(|| SymbolizeError::Malformed {
                    line: i + 1,
                    text: line.to_string(),
                })?;
            parsed.push(entry);
        }
        if !parsed.is_empty() && parsed.iter().all(|p| p.0 == 0) {
            return Err(SymbolizeError::AddressesHidden);
        }

        let mut names: HashMap<Box<str>, u64> = HashMap::with_capacity(parsed.len());
        let mut suffixed: HashMap<Box<str>, Vec<Box<str>>> = HashMap::new();
        for (addr, _, name, _) in &parsed {
            match names.get_mut(name.as_str()) {
                Some(lowest) => *lowest = (*lowest).min(*addr),
                None => {
                    names.insert(name.as_str().into(), *addr);
                    let base = base_name(name);
                    if base.len() != name.len() {
                        suffixed
                            .entry(base.into())
                            .or_default()
                            .push(name.as_str().into());
                    }
                }
            }
        }
        for list in suffixed.values_mut() {
            list.sort();
        }

        let mut candidates: Vec<Candidate<'_>> = parsed
            .iter()
            .filter(|(_, _, name, _)| !is_padding(name))
            .map(|(addr, kind, name, module)| Candidate {
                addr: *addr,
                kind: *kind,
                name: name.as_str(),
                module: *module,
            })
            .collect();
        let text_symbols = candidates.iter().filter(|c| c.resolvable()).count();
        if text_symbols == 0 {
            return Err(SymbolizeError::NoTextSymbols);
        }
        candidates.sort_by(|a, b| a.addr.cmp(&b.addr).then_with(|| a.rank().cmp(&b.rank())));
        candidates.dedup_by_key(|c| c.addr);

        let mut entries: Vec<Entry> = candidates
            .iter()
            .map(|c| Entry {
                addr: c.addr,
                limit: c.addr,
                name: c.name.into(),
                module: c.module,
                resolvable: c.resolvable(),
            })
            .collect();
        for i in 0..entries.len() {
            let next = entries.get(i + 1).map(|n| (n.addr, n.module));
            let here = &entries[i];
            let tail_end = here.addr.saturating_add(MAX_TAIL);
            entries[i].limit = match next {
                // Same run (core kernel or one module): the next symbol starts where this ends.
                Some((addr, module)) if module == here.module => addr,
                // Last symbol of its run: bounded by the tail and by whatever comes next.
                Some((addr, _)) => addr.min(tail_end),
                None => tail_end,
            };
        }

        Ok(Kallsyms {
            entries,
            modules,
            names,
            suffixed,
            text_symbols,
        })
    }

    /// Reads and parses /proc/kallsyms. Err(AddressesHidden) when the kernel shows every address
    /// as 0 (not root, or kernel.kptr_restrict).
    pub fn load() -> Result<Kallsyms, SymbolizeError> {
        Self::load_path(Path::new(KALLSYMS_PATH))
    }

    fn load_path(path: &Path) -> Result<Kallsyms, SymbolizeError> {
        let text = std::fs::read_to_string(path).map_err(|source| SymbolizeError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text)
    }

    /// The text symbol containing `addr`, or None when `addr` is below the first symbol, past a
    /// section end marker or a data symbol, or more than [`MAX_TAIL`] past the last symbol of
    /// its run.
    pub fn resolve(&self, addr: u64) -> Option<Resolved<'_>> {
        let idx = self
            .entries
            .partition_point(|e| e.addr <= addr)
            .checked_sub(1)?;
        let entry = &self.entries[idx];
        if !entry.resolvable || addr >= entry.limit {
            return None;
        }
        Some(Resolved {
            name: &entry.name,
            offset: addr - entry.addr,
            module: entry
                .module
                .and_then(|m| self.modules.get(m as usize))
                .map(|m| &**m),
        })
    }

    /// `sym+0x1b`, `sym+0x1b [mod]` for module symbols, `0xffffffff...` when unknown: the frame
    /// format of the fixtures and of folded-stack output.
    pub fn format_frame(&self, addr: u64) -> String {
        match self.resolve(addr) {
            Some(Resolved {
                name,
                offset,
                module: Some(module),
            }) => format!("{name}+{offset:#x} [{module}]"),
            Some(Resolved { name, offset, .. }) => format!("{name}+{offset:#x}"),
            None => format!("{addr:#x}"),
        }
    }

    /// How many leading frames of a stack captured in a raw tracepoint program belong to
    /// the probe: the program itself (unnamed unless `bpf_jit_kallsyms` is on, and then
    /// possibly taken for the module before it), then `bpf_trace_run2`, `__bpf_trace_*`.
    /// A classic tracepoint's stack starts at the traced function and needs no trimming;
    /// trimming makes the two forms agree. 0 when the stack does not have that shape.
    pub fn probe_glue_len(&self, ips: &[u64]) -> usize {
        let is_glue = |ip: u64| self.resolve(ip).is_some_and(|r| is_probe_glue(r.name));
        let Some(first) = ips
            .iter()
            .take(MAX_PROG_FRAMES + 1)
            .position(|&ip| is_glue(ip))
        else {
            return 0;
        };
        first + ips[first..].iter().take_while(|&&ip| is_glue(ip)).count()
    }

    /// The lowest address of any symbol (any type) called `name`.
    pub fn address_of(&self, name: &str) -> Option<u64> {
        self.names.get(name).copied()
    }

    /// `[start, end)` of function `name`: from its address to the next symbol's. Used to find
    /// a probed function's caller in a captured stack.
    pub fn symbol_range(&self, name: &str) -> Option<(u64, u64)> {
        let start = self.address_of(name)?;
        let idx = self.entries.partition_point(|e| e.addr <= start);
        let entry = self.entries.get(idx.checked_sub(1)?)?;
        let next = self.entries.get(idx).map_or(entry.limit, |e| e.addr);
        // At least one byte, except for a symbol at the very top of the address space.
        Some((start, next.min(entry.limit).max(start.saturating_add(1))))
    }

    /// Whether kallsyms lists `name` (any type), e.g. to see if a function survived inlining.
    pub fn contains(&self, name: &str) -> bool {
        self.names.contains_key(name)
    }

    /// Names equal to `name` or `name` plus compiler clone suffixes (`name.isra.N`,
    /// `name.constprop.N`, `name.cold`, `name.part.N`, ...): where to attach a probe when the
    /// plain name was cloned. The exact name comes first, the rest sorted.
    pub fn variants_of(&self, name: &str) -> Vec<String> {
        let mut out = Vec::new();
        if self.contains(name) {
            out.push(name.to_string());
        }
        if let Some(list) = self.suffixed.get(name) {
            out.extend(list.iter().map(|s| s.to_string()));
        }
        out
    }

    /// Number of text symbols that addresses can resolve to (aliases at one address included).
    pub fn len(&self) -> usize {
        self.text_symbols
    }

    /// Whether no text symbol was found (never true for a successfully parsed table).
    pub fn is_empty(&self) -> bool {
        self.text_symbols == 0
    }
}

/// Frames of the program (and helpers it called) above the first tracing frame.
const MAX_PROG_FRAMES: usize = 2;

/// Functions of the tracepoint machinery that run a raw tracepoint program.
fn is_probe_glue(name: &str) -> bool {
    const PREFIXES: &[&str] = &["bpf_trace_run", "__bpf_trace_", "__traceiter_"];
    PREFIXES.iter().any(|p| name.starts_with(p))
}

#[cfg(test)]
mod glue_tests {
    use super::*;

    const KSYMS: &str = "\
ffffffff81000000 T _stext
ffffffff81000100 T bpf_trace_run2
ffffffff81000200 t __bpf_trace_contention_begin
ffffffff81000300 T __pv_queued_spin_lock_slowpath
ffffffff81000400 T _raw_spin_lock_irqsave
ffffffff81000500 t free_pcppages_bulk
ffffffff82000000 T _etext
ffffffffc0000000 t bpf_prog_6deef7357e7b4530_raw_contention_begin [bpf]
ffffffffc0000800 t some_module_fn [tun]
";

    #[test]
    fn trims_the_probe_frames_of_a_raw_tracepoint_stack() {
        let k = Kallsyms::parse(KSYMS).expect("parse");
        let jit = 0xffff_ffff_c800_0000; // unnamed JIT code (bpf_jit_kallsyms off)
        let stack = [
            jit,
            0xffffffff81000110,
            0xffffffff81000210,
            0xffffffff81000310,
            0xffffffff81000410,
            0xffffffff81000510,
        ];
        assert_eq!(k.probe_glue_len(&stack), 3);
        // Named program frame (bpf_jit_kallsyms on), or JIT code taken for a module's tail.
        for prog in [0xffffffffc0000010, 0xffffffffc0000900] {
            assert_eq!(
                k.probe_glue_len(&[prog, 0xffffffff81000110, 0xffffffff81000310]),
                2
            );
        }
    }

    #[test]
    fn leaves_stacks_without_probe_frames_alone() {
        let k = Kallsyms::parse(KSYMS).expect("parse");
        // Classic tracepoint: starts at the traced function.
        assert_eq!(
            k.probe_glue_len(&[0xffffffff81000310, 0xffffffff81000410]),
            0
        );
        // An unknown address not followed by glue is not trimmed.
        assert_eq!(
            k.probe_glue_len(&[0xffff_ffff_c800_0000, 0xffffffff81000310]),
            0
        );
        // Tracing frames deeper down (a lock taken inside another probe) are traced path.
        let mut deep = vec![0xffffffff81000310; MAX_PROG_FRAMES + 1];
        deep.push(0xffffffff81000110);
        assert_eq!(k.probe_glue_len(&deep), 0);
        assert_eq!(k.probe_glue_len(&[]), 0);
    }
}

#[cfg(test)]
mod range_tests {
    use super::*;

    #[test]
    fn symbol_range_ends_at_the_next_symbol() {
        let k = Kallsyms::parse(
            "ffffffff81000000 T a\nffffffff81000040 t b\nffffffff81000100 T c\nffffffff81000200 T _etext\n",
        )
        .expect("parse");
        assert_eq!(
            k.symbol_range("b"),
            Some((0xffffffff81000040, 0xffffffff81000100))
        );
        assert_eq!(
            k.symbol_range("c"),
            Some((0xffffffff81000100, 0xffffffff81000200))
        );
        assert_eq!(k.symbol_range("nope"), None);
    }

    /// A symbol at u64::MAX made `start + 1` overflow (a panic with overflow checks on);
    /// seen while writing the `kallsyms` fuzz target, reproduced with it.
    #[test]
    fn symbol_at_the_top_of_the_address_space() {
        let k = Kallsyms::parse("ffffffffffffffff T x\n").expect("parse");
        assert_eq!(k.symbol_range("x"), Some((u64::MAX, u64::MAX)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CORE: &str = "\
ffffffff81000000 T srso_alias_untrain_ret
ffffffff81000000 T _stext
ffffffff81000000 T _text
ffffffff81000010 T __entry_text_start
ffffffff81000010 T entry_SYSCALL_64
ffffffff81001000 T __entry_text_end
ffffffff81100000 t __pfx_thermal_genl_event_tz
ffffffff81100000 T __pfx_thermal_genl_event_tz_enable
ffffffff81100010 t thermal_genl_event_tz
ffffffff81100010 T thermal_genl_event_tz_enable
ffffffff81100010 T thermal_genl_event_tz_delete
ffffffff81100100 T memset
ffffffff81100100 T __memset
ffffffff81100100 T __pi_memset
ffffffff81100200 t __pfx_free_pcppages_bulk
ffffffff81100210 t free_pcppages_bulk
ffffffff81100600 t __rmqueue_pcplist
ffffffff81100900 t get_page_from_freelist.isra.0
ffffffff81101000 t get_page_from_freelist.cold
ffffffff81101100 t drain_pages_zone.constprop.0.isra.0
ffffffff81101200 T __start_tty
ffffffff81101300 W arch_cpu_idle
ffffffff82000000 T _etext
ffffffff82400000 D __start_rodata
ffffffff82500000 D node_states
ffffffff83780000 T _sinittext
ffffffff83780000 B __init_begin
ffffffff83780b10 T start_kernel
ffffffff837f67d0 T _einittext
";

    const MODULES: &str = "\
ffffffffc0a01000 t tun_do_read\t[tun]
ffffffffc0a01400 t tun_chr_read_iter\t[tun]
ffffffffc0a01400 t __pfx_tun_get\t[tun]
ffffffffc0a01410 T tun_get\t[tun]
ffffffffc0a01410 t tun_get_alias\t[tun]
ffffffffc0c00000 t vhost_net_rx\t[vhost_net]
ffffffffc0c00800 t handle_rx\t[vhost_net]
ffffffffc0c00400 t bpf_prog_6deef7357e7b4530_sd_fw_ingress\t[bpf]
";

    fn table() -> Kallsyms {
        let text = format!("{CORE}{MODULES}");
        match Kallsyms::parse(&text) {
            Ok(k) => k,
            Err(e) => panic!("parse failed: {e}"),
        }
    }

    #[test]
    fn resolves_inside_and_at_function_start() {
        let k = table();
        let r = k
            .resolve(0xffffffff81100210 + 0x1b)
            .expect("inside free_pcppages_bulk");
        assert_eq!(r.name, "free_pcppages_bulk");
        assert_eq!(r.offset, 0x1b);
        assert_eq!(r.module, None);
        assert_eq!(k.format_frame(0xffffffff81100600), "__rmqueue_pcplist+0x0");
        assert_eq!(k.format_frame(0xffffffff81100644), "__rmqueue_pcplist+0x44");
        assert_eq!(k.format_frame(0xffffffff81101301), "arch_cpu_idle+0x1");
    }

    #[test]
    fn module_symbols_carry_their_module() {
        let k = table();
        assert_eq!(k.format_frame(0xffffffffc0a01023), "tun_do_read+0x23 [tun]");
        let r = k.resolve(0xffffffffc0c00804).expect("inside handle_rx");
        assert_eq!(
            (r.name, r.offset, r.module),
            ("handle_rx", 4, Some("vhost_net"))
        );
        // A BPF program between two symbols of another module splits that module's run.
        assert_eq!(
            k.format_frame(0xffffffffc0c00410),
            "bpf_prog_6deef7357e7b4530_sd_fw_ingress+0x10 [bpf]"
        );
        assert_eq!(
            k.format_frame(0xffffffffc0c00010),
            "vhost_net_rx+0x10 [vhost_net]"
        );
    }

    #[test]
    fn aliases_pick_one_deterministic_name() {
        let k = table();
        // Real function beats the _stext/_text markers even though they are shorter.
        assert_eq!(
            k.resolve(0xffffffff81000000).map(|r| r.name),
            Some("srso_alias_untrain_ret")
        );
        assert_eq!(
            k.resolve(0xffffffff81000020).map(|r| r.name),
            Some("entry_SYSCALL_64")
        );
        // Global T beats local t; among T the shortest, ties by bytes.
        assert_eq!(
            k.resolve(0xffffffff81100010).map(|r| r.name),
            Some("thermal_genl_event_tz_delete")
        );
        assert_eq!(
            k.resolve(0xffffffff81100100).map(|r| r.name),
            Some("memset")
        );
        assert_eq!(
            k.resolve(0xffffffffc0a01410).map(|r| r.name),
            Some("tun_get")
        );
        // Same answer whatever the line order.
        let reversed: String = format!("{CORE}{MODULES}")
            .lines()
            .rev()
            .map(|l| format!("{l}\n"))
            .collect();
        let k2 = Kallsyms::parse(&reversed).expect("parse reversed");
        for addr in [
            0xffffffff81000000,
            0xffffffff81100010,
            0xffffffff81100100,
            0xffffffffc0a01410,
        ] {
            assert_eq!(k.format_frame(addr), k2.format_frame(addr));
        }
    }

    #[test]
    fn padding_symbols_never_win() {
        let k = table();
        for addr in [
            0xffffffff81100000u64,
            0xffffffff81100008,
            0xffffffff81100200,
            0xffffffffc0a01400,
        ] {
            let name = k.resolve(addr).map(|r| r.name).unwrap_or("");
            assert!(!name.starts_with("__pfx_"), "{addr:#x} resolved to {name}");
        }
        // The padding before free_pcppages_bulk belongs to the function before it.
        assert_eq!(k.format_frame(0xffffffff81100204), "memset+0x104");
        // Even a __pfx_ symbol alone at a shared address with a real one loses.
        let k =
            Kallsyms::parse("ffffffff81000000 T __pfx_a\nffffffff81000000 t zzzzzzzz_long_name\n")
                .expect("parse");
        assert_eq!(
            k.resolve(0xffffffff81000000).map(|r| r.name),
            Some("zzzzzzzz_long_name")
        );
    }

    #[test]
    fn out_of_range_addresses_resolve_to_nothing() {
        let k = table();
        // Below the first symbol.
        assert_eq!(k.resolve(0xffffffff80ffffff), None);
        assert_eq!(k.format_frame(0xffffffff80ffffff), "0xffffffff80ffffff");
        // Past _etext, in rodata/data, between the end of init text and the modules.
        assert_eq!(k.resolve(0xffffffff82000000), None);
        assert_eq!(k.resolve(0xffffffff82000010), None);
        assert_eq!(k.resolve(0xffffffff82500100), None);
        assert_eq!(k.resolve(0xffffffff837f67d0), None);
        assert_eq!(k.resolve(0xffffffff90000000), None);
        // Between __entry_text_end and the next function.
        assert_eq!(k.resolve(0xffffffff81001004), None);
        // In the gap between the tun module's last symbol and vhost_net (over MAX_TAIL away).
        assert!(k.resolve(0xffffffffc0a01410 + MAX_TAIL - 1).is_some());
        assert_eq!(k.resolve(0xffffffffc0a01410 + MAX_TAIL), None);
        // Past the last symbol of all.
        assert!(k.resolve(0xffffffffc0c00800 + 0x100).is_some());
        assert_eq!(k.resolve(0xffffffffc0c00800 + MAX_TAIL), None);
        assert_eq!(k.resolve(u64::MAX), None);
        // Init text resolves normally.
        assert_eq!(k.format_frame(0xffffffff83781254), "start_kernel+0x744");
    }

    #[test]
    fn last_core_symbol_without_end_marker_is_bounded() {
        let k = Kallsyms::parse("ffffffff81000000 T a\nffffffff81000100 T b\n").expect("parse");
        assert_eq!(
            k.format_frame(0xffffffff81000100 + MAX_TAIL - 1),
            "b+0xfffff"
        );
        assert_eq!(k.resolve(0xffffffff81000100 + MAX_TAIL), None);
    }

    #[test]
    fn names_lookup_and_variants() {
        let k = table();
        assert!(k.contains("free_pcppages_bulk"));
        assert!(k.contains("node_states"), "non-text names are remembered");
        assert!(k.contains("__pfx_free_pcppages_bulk"));
        assert!(!k.contains("rmqueue_bulk"));
        assert_eq!(k.address_of("start_kernel"), Some(0xffffffff83780b10));
        assert_eq!(k.address_of("tun_do_read"), Some(0xffffffffc0a01000));
        assert_eq!(k.address_of("rmqueue_bulk"), None);
        assert_eq!(
            k.variants_of("get_page_from_freelist"),
            vec![
                "get_page_from_freelist.cold",
                "get_page_from_freelist.isra.0"
            ]
        );
        assert_eq!(
            k.variants_of("drain_pages_zone"),
            vec!["drain_pages_zone.constprop.0.isra.0"]
        );
        assert_eq!(
            k.variants_of("free_pcppages_bulk"),
            vec!["free_pcppages_bulk"]
        );
        assert!(k.variants_of("free_pcppages").is_empty());
        assert!(k.variants_of("rmqueue_bulk").is_empty());
    }

    #[test]
    fn duplicate_static_names_give_the_lowest_address() {
        let k = Kallsyms::parse(
            "ffffffff81000200 t cleanup\nffffffff81000100 t cleanup\nffffffff81000300 t other\n",
        )
        .expect("parse");
        assert_eq!(k.address_of("cleanup"), Some(0xffffffff81000100));
        assert_eq!(k.len(), 3);
    }

    #[test]
    fn len_counts_text_symbols_only() {
        let k = Kallsyms::parse(
            "ffffffff81000000 T _stext\nffffffff81000000 T a\nffffffff81000000 t b\nffffffff81000010 t __pfx_c\nffffffff81000020 t c\nffffffff82000000 D d\n",
        )
        .expect("parse");
        assert_eq!(k.len(), 3);
        assert!(!k.is_empty());
    }

    #[test]
    fn hidden_addresses_are_reported() {
        let text = "\
0000000000000000 T _stext
0000000000000000 t free_pcppages_bulk
0000000000000000 t tun_do_read\t[tun]
";
        match Kallsyms::parse(text) {
            Err(SymbolizeError::AddressesHidden) => {}
            other => panic!("expected AddressesHidden, got {other:?}"),
        }
        let msg = SymbolizeError::AddressesHidden.to_string();
        assert!(
            msg.contains("kptr_restrict") && msg.contains("root"),
            "{msg}"
        );
    }

    #[test]
    fn per_cpu_zero_addresses_alone_are_not_hidden() {
        let k = Kallsyms::parse("0000000000000000 A fixed_percpu_data\nffffffff81000000 T a\n")
            .expect("parse");
        assert_eq!(k.resolve(0x10), None);
        assert_eq!(k.format_frame(0xffffffff81000001), "a+0x1");
    }

    #[test]
    fn malformed_and_empty_inputs_are_errors() {
        for (text, line) in [
            ("ffffffff81000000 T a\nzzzz T b\n", 2),
            ("ffffffff81000000 TT a\n", 1),
            ("ffffffff81000000 T\n", 1),
            ("ffffffff81000000 t a tun\n", 1),
            ("ffffffff81000000 t a [tun] extra\n", 1),
            ("ffffffff81000000 t a []\n", 1),
        ] {
            match Kallsyms::parse(text) {
                Err(SymbolizeError::Malformed { line: l, .. }) => assert_eq!(l, line, "{text:?}"),
                other => panic!("{text:?}: expected Malformed, got {other:?}"),
            }
        }
        assert!(matches!(
            Kallsyms::parse(""),
            Err(SymbolizeError::NoTextSymbols)
        ));
        assert!(matches!(
            Kallsyms::parse("ffffffff82000000 D data_only\n"),
            Err(SymbolizeError::NoTextSymbols)
        ));
    }

    #[test]
    fn base_name_strips_clone_suffixes() {
        for (name, base) in [
            ("foo", "foo"),
            ("foo.isra.0", "foo"),
            ("foo.constprop.12", "foo"),
            ("foo.part.3", "foo"),
            ("foo.cold", "foo"),
            ("foo.cold.7", "foo"),
            ("foo.constprop.0.isra.0.cold", "foo"),
            ("foo.part.0.constprop.0", "foo"),
            ("foo.llvm.1234567", "foo"),
            ("foo.isra", "foo.isra"),
            ("foo.bar.0", "foo.bar.0"),
            (".cold", ".cold"),
            ("0xffffffff81000000", "0xffffffff81000000"),
        ] {
            assert_eq!(base_name(name), base, "{name}");
        }
    }

    #[test]
    fn missing_file_is_an_io_error() {
        match Kallsyms::load_path(Path::new("/nonexistent/kallsyms")) {
            Err(SymbolizeError::Io { path, .. }) => assert_eq!(path, "/nonexistent/kallsyms"),
            other => panic!("expected Io, got {other:?}"),
        }
    }

    /// Reads the running kernel's table; skipped where it is unreadable or hidden.
    #[test]
    fn live_kallsyms_round_trips() {
        let k = match Kallsyms::load() {
            Ok(k) => k,
            Err(e) => {
                println!("skipping live kallsyms test: {e}");
                return;
            }
        };
        assert!(k.len() > 1000, "only {} text symbols", k.len());
        let text = std::fs::read_to_string(KALLSYMS_PATH).expect("read again");
        let mut checked = 0;
        for line in text.lines().step_by(97) {
            let mut f = line.split_whitespace();
            let (Some(addr), Some(kind), Some(name)) = (f.next(), f.next(), f.next()) else {
                continue;
            };
            let Ok(addr) = u64::from_str_radix(addr, 16) else {
                continue;
            };
            let kind = kind.chars().next().unwrap_or('?');
            if !is_text_type(kind) || is_padding(name) || is_section_marker(name) {
                continue;
            }
            let r = k
                .resolve(addr + 1)
                .unwrap_or_else(|| panic!("{name} at {addr:#x} unresolved"));
            assert_eq!(
                r.offset, 1,
                "{name}: resolved to {}+{:#x}",
                r.name, r.offset
            );
            assert!(!r.name.starts_with("__pfx_"));
            assert!(k.contains(name));
            checked += 1;
        }
        println!(
            "live kallsyms: {} text symbols, {checked} round-tripped",
            k.len()
        );
        assert!(checked > 10);
    }
}
