//! tracefs: finding it, mounting it when nobody has, and parsing trace event `format` files.
//!
//! zoneprof reads tracepoint records (lock:contention_begin, kmem:mm_page_alloc_zone_locked,
//! ...) as raw bytes in eBPF, so it must know each field's offset and size on the running
//! kernel rather than assume one kernel's layout; the `format` files under tracefs say exactly
//! that.

use std::ffi::{CString, OsString};
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

/// Where tracefs lives on current kernels, and where we mount it.
pub const DEFAULT_TRACEFS: &str = "/sys/kernel/tracing";

/// What to tell the user when they have to mount tracefs themselves (a macro so that it can
/// be `concat!`ed into the static hints).
macro_rules! mount_cmd {
    () => {
        "mount -t tracefs nodev /sys/kernel/tracing"
    };
}

/// Everything that can go wrong finding tracefs or reading an event's format.
#[derive(Debug, thiserror::Error)]
pub enum TracefsError {
    #[error("cannot mount tracefs at {}: {source}; {hint}", path.display())]
    Mount {
        path: PathBuf,
        #[source]
        source: io::Error,
        hint: &'static str,
    },
    #[error(
        "tracefs is mounted at {} but this process cannot read it ({source}): reading it needs root or CAP_DAC_READ_SEARCH (its root directory is usually mode 0700)",
        path.display()
    )]
    Unreadable {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "tracefs mounted at {} has no events/ directory; the kernel needs CONFIG_EVENT_TRACING",
        path.display()
    )]
    NoEvents { path: PathBuf },
    #[error(
        "trace event {category}:{name} does not exist on this kernel ({} is missing)",
        path.display()
    )]
    EventNotFound {
        category: String,
        name: String,
        path: PathBuf,
    },
    #[error("invalid trace event name `{category}:{name}`")]
    InvalidEventName { category: String, name: String },
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("malformed event format at line {line}: {reason}")]
    Format { line: usize, reason: String },
    #[error("{}: {source}", path.display())]
    InFile {
        path: PathBuf,
        #[source]
        source: Box<TracefsError>,
    },
}

/// One field of a trace event record, as the kernel lays it out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    /// C type as written in the format file, with any array suffix moved here
    /// (`char comm[16]` gives name `comm`, type `char[16]`; `__data_loc char[] name` gives
    /// type `__data_loc char[]`).
    pub type_name: String,
    /// Byte offset from the start of the record (including the common_* header).
    pub offset: u32,
    pub size: u32,
    pub signed: bool,
}

/// A parsed `events/<category>/<name>/format` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventFormat {
    pub name: String,
    /// The event id (`common_type` of its records; what perf_event_open takes).
    pub id: u32,
    /// All fields in file order, the common_* header fields included.
    pub fields: Vec<Field>,
}

impl EventFormat {
    /// The field called `name`, if this kernel's event has it.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Splits a C declaration such as `void * lock_addr`, `char comm[16]` or
/// `__data_loc char[] name` into (name, type).
fn split_decl(decl: &str) -> Result<(String, String), String> {
    let decl = decl.trim();
    let (base, array) = match decl.strip_suffix(']') {
        Some(_) => {
            let open = decl
                .rfind('[')
                .ok_or_else(|| format!("unbalanced `]` in `{decl}`"))?;
            (decl[..open].trim_end(), &decl[open..])
        }
        None => (decl, ""),
    };
    let type_part = base.trim_end_matches(is_ident_char);
    let name = &base[type_part.len()..];
    let type_part = type_part.trim();
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(format!("no field name in `{decl}`"));
    }
    if type_part.is_empty() {
        return Err(format!("no type in `{decl}`"));
    }
    Ok((name.to_string(), format!("{type_part}{array}")))
}

fn parse_u32(key: &str, value: &str) -> Result<u32, String> {
    value
        .trim()
        .parse()
        .map_err(|_| format!("{key} `{}` is not a number", value.trim()))
}

/// Parses one `field:TYPE NAME;\toffset:N;\tsize:N;\tsigned:N;` line (already trimmed).
fn parse_field(line: &str) -> Result<Field, String> {
    let mut parts = line.split(';').map(str::trim).filter(|p| !p.is_empty());
    let decl = parts
        .next()
        .and_then(|p| p.strip_prefix("field:"))
        .ok_or_else(|| format!("expected `field:` in `{line}`"))?;
    let (name, type_name) = split_decl(decl)?;
    let (mut offset, mut size, mut signed) = (None, None, false);
    for part in parts {
        let (key, value) = part
            .split_once(':')
            .ok_or_else(|| format!("expected `key:value`, found `{part}`"))?;
        match key.trim() {
            "offset" => offset = Some(parse_u32("offset", value)?),
            "size" => size = Some(parse_u32("size", value)?),
            // Kernels before 2.6.32 had no signed: attribute; it then defaults to unsigned.
            "signed" => signed = parse_u32("signed", value)? != 0,
            // Tolerate attributes added by future kernels.
            _ => {}
        }
    }
    Ok(Field {
        offset: offset.ok_or_else(|| format!("field `{name}` has no offset"))?,
        size: size.ok_or_else(|| format!("field `{name}` has no size"))?,
        name,
        type_name,
        signed,
    })
}

/// Parses the text of an event `format` file.
///
/// Everything after `print fmt:` is ignored (it is C-ish and may span lines). `name:` and `ID:`
/// are required; unknown `key:` header lines are tolerated so that a newer kernel's additions
/// do not break us, but any other unexpected line is an error.
pub fn parse_format(text: &str) -> Result<EventFormat, TracefsError> {
    let mut name: Option<String> = None;
    let mut id: Option<u32> = None;
    let mut fields: Vec<Field> = Vec::new();
    let err = |line: usize, reason: String| TracefsError::Format { line, reason };
    let mut last_line = 0;
    for (idx, raw) in text.lines().enumerate() {
        let line_no = idx + 1;
        last_line = line_no;
        let line = raw.trim();
        if line.is_empty() || line == "format:" {
            continue;
        }
        if line.starts_with("print fmt:") {
            break;
        }
        if line.starts_with("field:") {
            let field = parse_field(line).map_err(|r| err(line_no, r))?;
            if fields.iter().any(|f| f.name == field.name) {
                return Err(err(line_no, format!("duplicate field `{}`", field.name)));
            }
            fields.push(field);
        } else if let Some(rest) = line.strip_prefix("name:") {
            let rest = rest.trim();
            if name.is_some() || rest.is_empty() {
                return Err(err(line_no, format!("bad or repeated name line `{line}`")));
            }
            name = Some(rest.to_string());
        } else if let Some(rest) = line.strip_prefix("ID:") {
            if id.is_some() {
                return Err(err(line_no, "repeated ID line".to_string()));
            }
            id = Some(parse_u32("ID", rest).map_err(|r| err(line_no, r))?);
        } else if line
            .split_once(':')
            .is_some_and(|(k, _)| !k.is_empty() && k.chars().all(|c| is_ident_char(c) || c == ' '))
        {
            // An unknown header key from a newer kernel.
        } else {
            return Err(err(line_no, format!("unexpected line `{line}`")));
        }
    }
    let name = name.ok_or_else(|| err(last_line, "no `name:` line".to_string()))?;
    let id = id.ok_or_else(|| err(last_line, "no `ID:` line".to_string()))?;
    if fields.is_empty() {
        return Err(err(last_line, format!("event `{name}` has no fields")));
    }
    Ok(EventFormat { name, id, fields })
}

/// Decodes the octal escapes (`\040` for space etc.) that /proc/mounts uses in paths.
fn unescape_mount_path(s: &str) -> PathBuf {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && let Some(oct) = bytes.get(i + 1..i + 4)
            && oct.iter().all(|b| (b'0'..=b'7').contains(b))
        {
            let v = oct
                .iter()
                .fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
            if let Ok(byte) = u8::try_from(v) {
                out.push(byte);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    PathBuf::from(OsString::from_vec(out))
}

/// The tracefs directory given the text of /proc/mounts: a tracefs mount (the standard
/// location first), else `tracing/` under a debugfs mount. `usable` says whether a candidate
/// really has trace events (injected so this can be tested without a kernel).
fn pick_tracefs(mounts: &str, usable: impl Fn(&Path) -> bool) -> Option<PathBuf> {
    let mut tracefs = Vec::new();
    let mut debugfs = Vec::new();
    for line in mounts.lines() {
        let mut cols = line.split_whitespace();
        let (Some(_dev), Some(mount_point), Some(fstype)) = (cols.next(), cols.next(), cols.next())
        else {
            continue;
        };
        match fstype {
            "tracefs" => tracefs.push(unescape_mount_path(mount_point)),
            "debugfs" => debugfs.push(unescape_mount_path(mount_point).join("tracing")),
            _ => {}
        }
    }
    // Stable sort: the standard location first, the rest in mount order.
    tracefs.sort_by_key(|p| p.as_path() != Path::new(DEFAULT_TRACEFS));
    tracefs
        .into_iter()
        .chain(debugfs)
        .find(|p| usable(p.as_path()))
}

/// A tracefs directory we can read events from.
fn has_events(dir: &Path) -> bool {
    dir.join("events").is_dir()
}

/// Where tracefs is: a mounted tracefs from /proc/mounts (prefer /sys/kernel/tracing), or
/// /sys/kernel/debug/tracing when debugfs exposes it. None when not mounted.
pub fn find_tracefs() -> Option<PathBuf> {
    match std::fs::read_to_string("/proc/mounts") {
        Ok(mounts) => pick_tracefs(&mounts, has_events),
        // No procfs (odd chroot): probe the usual places directly.
        Err(_) => [DEFAULT_TRACEFS, "/sys/kernel/debug/tracing"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| has_events(p)),
    }
}

/// What to do about a failed tracefs mount, by errno.
fn mount_hint(err: &io::Error) -> &'static str {
    match err.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => concat!(
            "mounting needs root (CAP_SYS_ADMIN); run as root or mount it first: ",
            mount_cmd!()
        ),
        Some(libc::ENODEV) => {
            "this kernel has no tracefs filesystem; it must be built with CONFIG_TRACING (CONFIG_FTRACE)"
        }
        Some(libc::ENOENT) | Some(libc::ENOTDIR) => {
            "the mount point is missing: is /sys mounted? (a kernel without CONFIG_TRACING has no /sys/kernel/tracing)"
        }
        Some(libc::EROFS) => "the mount point is on a read-only filesystem",
        _ => concat!("try mounting it by hand: ", mount_cmd!()),
    }
}

/// mount(2)s tracefs at `target`.
fn mount_tracefs(target: &Path) -> Result<(), TracefsError> {
    let mount_err = |source: io::Error| TracefsError::Mount {
        path: target.to_path_buf(),
        hint: mount_hint(&source),
        source,
    };
    let c_target = CString::new(target.as_os_str().as_bytes())
        .map_err(|e| mount_err(io::Error::new(io::ErrorKind::InvalidInput, e)))?;
    // SAFETY: the three strings are valid NUL-terminated C strings that outlive the call, and a
    // null `data` pointer is allowed (tracefs needs no mount options).
    let rc = unsafe {
        libc::mount(
            c"nodev".as_ptr(),
            c_target.as_ptr(),
            c"tracefs".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(mount_err(io::Error::last_os_error()));
    }
    Ok(())
}

/// find_tracefs(), or mount tracefs at /sys/kernel/tracing (libc::mount) and return
/// (path, true) so callers can say they mounted it. Errors say what to do (e.g. need root / CAP_SYS_ADMIN, CONFIG_TRACING off).
pub fn ensure_tracefs() -> Result<(PathBuf, bool), TracefsError> {
    if let Some(path) = find_tracefs() {
        return Ok((path, false));
    }
    // Mounted, but closed to us (a non-root user with CAP_BPF + CAP_PERFMON): say so,
    // rather than try a mount that cannot help.
    if let Ok(mounts) = std::fs::read_to_string("/proc/mounts")
        && let Some(path) = pick_tracefs(&mounts, |_| true)
        && let Err(source) = std::fs::metadata(path.join("events"))
        && source.kind() == io::ErrorKind::PermissionDenied
    {
        return Err(TracefsError::Unreadable { path, source });
    }
    let target = PathBuf::from(DEFAULT_TRACEFS);
    if let Err(e) = mount_tracefs(&target) {
        // Someone else may have mounted it between our look and our mount.
        return find_tracefs().map(|p| (p, false)).ok_or(e);
    }
    if !has_events(&target) {
        return Err(TracefsError::NoEvents { path: target });
    }
    Ok((target, true))
}

/// Event names come from our own catalog, but keep them from walking out of events/.
fn valid_component(s: &str) -> bool {
    !s.is_empty() && s != "." && s != ".." && !s.contains(['/', '\0'])
}

fn format_path(root: &Path, category: &str, name: &str) -> PathBuf {
    root.join("events").join(category).join(name).join("format")
}

/// Whether tracepoint `category:name` exists under tracefs `root`.
pub fn event_exists(root: &Path, category: &str, name: &str) -> bool {
    valid_component(category)
        && valid_component(name)
        && format_path(root, category, name).is_file()
}

/// Reads and parses `events/<category>/<name>/format` under tracefs `root`.
pub fn read_format(root: &Path, category: &str, name: &str) -> Result<EventFormat, TracefsError> {
    if !valid_component(category) || !valid_component(name) {
        return Err(TracefsError::InvalidEventName {
            category: category.to_string(),
            name: name.to_string(),
        });
    }
    let path = format_path(root, category, name);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(TracefsError::EventNotFound {
                category: category.to_string(),
                name: name.to_string(),
                path,
            });
        }
        Err(source) => return Err(TracefsError::Io { path, source }),
    };
    parse_format(&text).map_err(|e| TracefsError::InFile {
        path,
        source: Box::new(e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONTENTION_BEGIN: &str = "name: contention_begin
ID: 408
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:void * lock_addr;\toffset:8;\tsize:8;\tsigned:0;
\tfield:unsigned int flags;\toffset:16;\tsize:4;\tsigned:0;

print fmt: \"%p (flags=%s)\", REC->lock_addr, __print_flags(REC->flags, \"|\", { (1U << 0), \"SPIN\" }, { (1U << 1), \"READ\" })
";

    const ZONE_LOCKED: &str = "name: mm_page_alloc_zone_locked
ID: 652
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:unsigned long pfn;\toffset:8;\tsize:8;\tsigned:0;
\tfield:unsigned int order;\toffset:16;\tsize:4;\tsigned:0;
\tfield:int migratetype;\toffset:20;\tsize:4;\tsigned:1;
\tfield:int percpu_refill;\toffset:24;\tsize:4;\tsigned:1;

print fmt: \"page=%p pfn=0x%lx order=%u migratetype=%d percpu_refill=%d\", REC->pfn != -1UL ? (((struct page *)vmemmap_base) + (REC->pfn)) : ((void *)0), REC->pfn != -1UL ? REC->pfn : 0, REC->order, REC->migratetype, REC->percpu_refill
";

    /// Before percpu_refill was added (kernels before 5.19).
    const ZONE_LOCKED_OLD: &str = "name: mm_page_alloc_zone_locked
ID: 371
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:unsigned long pfn;\toffset:8;\tsize:8;\tsigned:0;
\tfield:unsigned int order;\toffset:16;\tsize:4;\tsigned:0;
\tfield:int migratetype;\toffset:20;\tsize:4;\tsigned:1;

print fmt: \"page=%p pfn=0x%lx order=%u migratetype=%d percpu_refill=%d\", REC->pfn != -1UL ? (((struct page *)vmemmap_base) + (REC->pfn)) : ((void *)0), REC->pfn != -1UL ? REC->pfn : 0, REC->order, REC->migratetype, REC->order == 0
";

    const SCHED_SWITCH: &str = "name: sched_switch
ID: 372
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:char prev_comm[16];\toffset:8;\tsize:16;\tsigned:0;
\tfield:pid_t prev_pid;\toffset:24;\tsize:4;\tsigned:1;
\tfield:int prev_prio;\toffset:28;\tsize:4;\tsigned:1;
\tfield:long prev_state;\toffset:32;\tsize:8;\tsigned:1;
\tfield:char next_comm[16];\toffset:40;\tsize:16;\tsigned:0;
\tfield:pid_t next_pid;\toffset:56;\tsize:4;\tsigned:1;
\tfield:int next_prio;\toffset:60;\tsize:4;\tsigned:1;

print fmt: \"prev_comm=%s prev_pid=%d ==> next_comm=%s next_pid=%d\", REC->prev_comm, REC->prev_pid, REC->next_comm, REC->next_pid
";

    const IRQ_HANDLER_ENTRY: &str = "name: irq_handler_entry
ID: 225
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:int irq;\toffset:8;\tsize:4;\tsigned:1;
\tfield:__data_loc char[] name;\toffset:12;\tsize:4;\tsigned:0;

print fmt: \"irq=%d name=%s\", REC->irq, __get_str(name)
";

    fn field(name: &str, type_name: &str, offset: u32, size: u32, signed: bool) -> Field {
        Field {
            name: name.to_string(),
            type_name: type_name.to_string(),
            offset,
            size,
            signed,
        }
    }

    #[test]
    fn contention_begin() {
        let ev = parse_format(CONTENTION_BEGIN).unwrap();
        assert_eq!(ev.name, "contention_begin");
        assert_eq!(ev.id, 408);
        assert_eq!(ev.fields.len(), 6);
        assert_eq!(
            ev.field("common_pid"),
            Some(&field("common_pid", "int", 4, 4, true))
        );
        assert_eq!(
            ev.field("lock_addr"),
            Some(&field("lock_addr", "void *", 8, 8, false))
        );
        assert_eq!(
            ev.field("flags"),
            Some(&field("flags", "unsigned int", 16, 4, false))
        );
        assert_eq!(ev.field("nope"), None);
    }

    #[test]
    fn mm_page_alloc_zone_locked_new_and_old() {
        let ev = parse_format(ZONE_LOCKED).unwrap();
        assert_eq!(
            (ev.name.as_str(), ev.id),
            ("mm_page_alloc_zone_locked", 652)
        );
        assert_eq!(
            ev.field("pfn"),
            Some(&field("pfn", "unsigned long", 8, 8, false))
        );
        assert_eq!(
            ev.field("order"),
            Some(&field("order", "unsigned int", 16, 4, false))
        );
        assert_eq!(
            ev.field("migratetype"),
            Some(&field("migratetype", "int", 20, 4, true))
        );
        assert_eq!(
            ev.field("percpu_refill"),
            Some(&field("percpu_refill", "int", 24, 4, true))
        );

        let old = parse_format(ZONE_LOCKED_OLD).unwrap();
        assert_eq!(old.id, 371);
        assert_eq!(old.fields.len(), 7);
        assert_eq!(old.field("migratetype"), ev.field("migratetype"));
        assert_eq!(old.field("percpu_refill"), None);
    }

    #[test]
    fn array_fields() {
        let ev = parse_format(SCHED_SWITCH).unwrap();
        assert_eq!(
            ev.field("prev_comm"),
            Some(&field("prev_comm", "char[16]", 8, 16, false))
        );
        assert_eq!(
            ev.field("next_comm"),
            Some(&field("next_comm", "char[16]", 40, 16, false))
        );
        assert_eq!(
            ev.field("prev_pid"),
            Some(&field("prev_pid", "pid_t", 24, 4, true))
        );
    }

    #[test]
    fn data_loc_fields() {
        let ev = parse_format(IRQ_HANDLER_ENTRY).unwrap();
        assert_eq!(
            ev.field("name"),
            Some(&field("name", "__data_loc char[]", 12, 4, false))
        );
        assert_eq!(ev.field("irq"), Some(&field("irq", "int", 8, 4, true)));
    }

    #[test]
    fn declarations() {
        let d = |s| split_decl(s).unwrap();
        assert_eq!(d("void *lock_addr"), ("lock_addr".into(), "void *".into()));
        assert_eq!(
            d("const char * name"),
            ("name".into(), "const char *".into())
        );
        assert_eq!(d("u32 buf[]"), ("buf".into(), "u32[]".into()));
        assert_eq!(d("__u8 saddr [4]"), ("saddr".into(), "__u8[4]".into()));
        assert_eq!(
            d("__data_loc u64[] addrs"),
            ("addrs".into(), "__data_loc u64[]".into())
        );
        assert_eq!(
            d("struct page * page"),
            ("page".into(), "struct page *".into())
        );
        for bad in ["", "int", "lock_addr", "int ]", "int 123", "char [16]"] {
            assert!(split_decl(bad).is_err(), "`{bad}` accepted");
        }
    }

    #[test]
    fn print_fmt_and_what_follows_are_ignored() {
        // print fmt strings may contain newlines, so nothing after it is parsed.
        let text = format!("{CONTENTION_BEGIN}garbage continuation of print fmt\n\tfield:junk");
        assert_eq!(parse_format(&text).unwrap().fields.len(), 6);
    }

    #[test]
    fn unknown_header_keys_and_attributes_are_tolerated() {
        let text = CONTENTION_BEGIN
            .replace("format:\n", "format:\nflags: 0x1\n")
            .replace("signed:0;\n", "signed:0;\tcolor:blue;\n");
        let ev = parse_format(&text).unwrap();
        assert_eq!(ev.field("flags").map(|f| f.offset), Some(16));
        // Very old kernels had no signed: attribute.
        let old = "name: x\nID: 1\nformat:\n\tfield:int a;\toffset:8;\tsize:4;\n";
        assert_eq!(
            parse_format(old).unwrap().fields,
            vec![field("a", "int", 8, 4, false)]
        );
    }

    #[test]
    fn malformed_formats_are_errors() {
        let cases = [
            ("empty", String::new()),
            ("no ID", CONTENTION_BEGIN.replace("ID: 408\n", "")),
            (
                "no name",
                CONTENTION_BEGIN.replace("name: contention_begin\n", ""),
            ),
            (
                "ID not a number",
                CONTENTION_BEGIN.replace("ID: 408", "ID: four"),
            ),
            (
                "repeated ID",
                CONTENTION_BEGIN.replace("ID: 408", "ID: 408\nID: 409"),
            ),
            ("no offset", CONTENTION_BEGIN.replace("\toffset:8;", "")),
            ("no size", CONTENTION_BEGIN.replace("\tsize:8;", "")),
            (
                "bad offset",
                CONTENTION_BEGIN.replace("offset:8;", "offset:eight;"),
            ),
            (
                "bad signed",
                CONTENTION_BEGIN.replace("signed:1;", "signed:yes;"),
            ),
            (
                "negative size",
                CONTENTION_BEGIN.replace("size:8;", "size:-8;"),
            ),
            (
                "no field name",
                CONTENTION_BEGIN.replace("void * lock_addr", "void *"),
            ),
            (
                "not key:value",
                CONTENTION_BEGIN.replace("\tsize:8;", "\tsize 8;"),
            ),
            (
                "duplicate field",
                CONTENTION_BEGIN.replace("unsigned int flags", "unsigned int lock_addr"),
            ),
            (
                "garbage line",
                CONTENTION_BEGIN.replace("format:\n", "format:\n{ this is not a format }\n"),
            ),
            ("no fields", "name: x\nID: 3\nformat:\n".to_string()),
            ("not a format file", "0\n".to_string()),
        ];
        for (what, text) in cases {
            match parse_format(&text) {
                Err(TracefsError::Format { line, reason }) => {
                    assert!(!reason.is_empty(), "{what}");
                    assert!(line <= text.lines().count().max(1), "{what}: line {line}");
                }
                other => panic!("{what}: expected a format error, got {other:?}"),
            }
        }
        // The error names the offending line.
        let e = parse_format(&CONTENTION_BEGIN.replace("offset:8;", "offset:eight;")).unwrap_err();
        assert!(e.to_string().contains("line 9"), "{e}");
        assert!(e.to_string().contains("eight"), "{e}");
    }

    #[test]
    fn picks_tracefs_from_mounts() {
        let all = |_: &Path| true;
        let mounts = "sysfs /sys sysfs rw 0 0\n\
                      nodev /mnt/other\\040trace tracefs rw 0 0\n\
                      debugfs /sys/kernel/debug debugfs rw 0 0\n\
                      nodev /sys/kernel/tracing tracefs rw,relatime 0 0\n";
        assert_eq!(
            pick_tracefs(mounts, all),
            Some(PathBuf::from("/sys/kernel/tracing")),
            "standard location preferred over earlier mounts"
        );
        // Without the standard one: the other tracefs, with its escaped space decoded.
        let only_other: String = mounts
            .lines()
            .filter(|l| !l.contains("/sys/kernel/tracing"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(
            pick_tracefs(&only_other, all),
            Some(PathBuf::from("/mnt/other trace"))
        );
        // A tracefs mount without events is skipped in favour of debugfs's tracing/.
        assert_eq!(
            pick_tracefs(&only_other, |p| p.starts_with("/sys/kernel/debug")),
            Some(PathBuf::from("/sys/kernel/debug/tracing"))
        );
        assert_eq!(pick_tracefs("sysfs /sys sysfs rw 0 0\n", all), None);
        assert_eq!(pick_tracefs(mounts, |_| false), None);
        assert_eq!(pick_tracefs("garbage\n\n", all), None);
    }

    #[test]
    fn mount_path_unescaping() {
        assert_eq!(
            unescape_mount_path(r"/a\040b\011c"),
            PathBuf::from("/a b\tc")
        );
        assert_eq!(
            unescape_mount_path(r"/back\134slash"),
            PathBuf::from(r"/back\slash")
        );
        // Not an escape: kept as is.
        assert_eq!(unescape_mount_path(r"/x\9y\04"), PathBuf::from(r"/x\9y\04"));
    }

    #[test]
    fn mount_hints_say_what_to_do() {
        let hint = |errno| mount_hint(&io::Error::from_raw_os_error(errno));
        assert!(hint(libc::EPERM).contains("CAP_SYS_ADMIN"));
        assert!(hint(libc::ENODEV).contains("CONFIG_TRACING"));
        assert!(hint(libc::ENOENT).contains("/sys"));
        let e = TracefsError::Mount {
            path: PathBuf::from(DEFAULT_TRACEFS),
            source: io::Error::from_raw_os_error(libc::EPERM),
            hint: hint(libc::EPERM),
        };
        let msg = e.to_string();
        assert!(
            msg.contains(DEFAULT_TRACEFS) && msg.contains(mount_cmd!()),
            "{msg}"
        );
        assert!(!msg.contains('\n'), "{msg}");
    }

    /// A fake tracefs tree with one event.
    fn fake_tracefs(format: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let ev = dir.path().join("events/lock/contention_begin");
        std::fs::create_dir_all(&ev).unwrap();
        std::fs::write(ev.join("format"), format).unwrap();
        dir
    }

    #[test]
    fn event_exists_and_read_format_on_a_tree() {
        let dir = fake_tracefs(CONTENTION_BEGIN);
        let root = dir.path();
        assert!(event_exists(root, "lock", "contention_begin"));
        assert!(!event_exists(root, "lock", "contention_end"));
        assert!(!event_exists(root, "kmem", "contention_begin"));
        assert!(!event_exists(root, "lock/contention_begin", ".."));
        assert!(!event_exists(root, "..", "lock"));

        let ev = read_format(root, "lock", "contention_begin").unwrap();
        assert_eq!(ev, parse_format(CONTENTION_BEGIN).unwrap());

        match read_format(root, "lock", "contention_end") {
            Err(e @ TracefsError::EventNotFound { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains("lock:contention_end"), "{msg}");
                assert!(msg.contains(&root.display().to_string()), "{msg}");
            }
            other => panic!("expected EventNotFound, got {other:?}"),
        }
        assert!(matches!(
            read_format(root, "..", "x"),
            Err(TracefsError::InvalidEventName { .. })
        ));
    }

    #[test]
    fn malformed_format_file_error_names_the_file() {
        let dir = fake_tracefs("name: contention_begin\nformat:\n");
        let e = read_format(dir.path(), "lock", "contention_begin").unwrap_err();
        assert!(matches!(e, TracefsError::InFile { .. }));
        let msg = e.to_string();
        assert!(msg.contains("events/lock/contention_begin/format"), "{msg}");
        assert!(msg.contains("ID:"), "{msg}");
    }

    /// The running host's tracefs, or None with the reason printed.
    fn live_tracefs() -> Option<PathBuf> {
        let root = find_tracefs();
        if root.is_none() {
            println!("skipping: tracefs is not mounted on this host");
        }
        root
    }

    #[test]
    fn live_formats() {
        let Some(root) = live_tracefs() else { return };
        if !event_exists(&root, "lock", "contention_begin") {
            println!(
                "skipping: lock:contention_begin not present (or not readable) under {root:?}"
            );
            return;
        }
        let ev = read_format(&root, "lock", "contention_begin").unwrap();
        assert_eq!(ev.name, "contention_begin");
        let lock_addr = ev.field("lock_addr").expect("lock_addr");
        assert_eq!((lock_addr.offset, lock_addr.size), (8, 8));
        assert!(ev.field("flags").is_some());

        if event_exists(&root, "kmem", "mm_page_alloc_zone_locked") {
            let ev = read_format(&root, "kmem", "mm_page_alloc_zone_locked").unwrap();
            let order = ev.field("order").expect("order");
            assert_eq!(order.size, 4);
            assert!(ev.field("migratetype").expect("migratetype").signed);
        } else {
            println!("kmem:mm_page_alloc_zone_locked not present under {root:?}");
        }
    }

    #[test]
    fn live_every_event_format_parses() {
        let Some(root) = live_tracefs() else { return };
        let Ok(categories) = std::fs::read_dir(root.join("events")) else {
            println!("skipping: cannot list {root:?}/events");
            return;
        };
        let (mut parsed, mut denied) = (0, 0);
        for cat in categories.flatten() {
            let Ok(events) = std::fs::read_dir(cat.path()) else {
                continue;
            };
            for ev in events.flatten() {
                if !ev.path().join("format").is_file() {
                    continue; // enable, filter, ... at the category level
                }
                let (c, n) = (cat.file_name(), ev.file_name());
                let (c, n) = (c.to_string_lossy(), n.to_string_lossy());
                match read_format(&root, &c, &n) {
                    Ok(f) => {
                        assert_eq!(f.name, n, "{c}:{n}");
                        parsed += 1;
                    }
                    Err(TracefsError::Io { source, .. })
                        if source.kind() == io::ErrorKind::PermissionDenied =>
                    {
                        denied += 1
                    }
                    Err(e) => panic!("{c}:{n}: {e}"),
                }
            }
        }
        println!("parsed {parsed} live event formats under {root:?} ({denied} unreadable)");
        assert!(
            parsed > 0 || denied > 0,
            "no event formats found under {root:?}"
        );
    }

    #[test]
    fn ensure_tracefs_reuses_an_existing_mount() {
        let Some(root) = live_tracefs() else { return };
        assert_eq!(ensure_tracefs().unwrap(), (root, false));
    }

    #[test]
    fn mount_tracefs_at_a_temporary_directory() {
        if live_tracefs().is_none() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        match mount_tracefs(dir.path()) {
            Ok(()) => {}
            Err(TracefsError::Mount { source, .. })
                if matches!(source.raw_os_error(), Some(libc::EPERM | libc::EACCES)) =>
            {
                println!("skipping: not allowed to mount tracefs here: {source}");
                return;
            }
            Err(e) => panic!("{e}"),
        }
        let mounted = has_events(dir.path());
        let c_path = CString::new(dir.path().as_os_str().as_bytes()).unwrap();
        // SAFETY: c_path is a valid NUL-terminated path that outlives the call.
        let rc = unsafe { libc::umount2(c_path.as_ptr(), libc::MNT_DETACH) };
        assert_eq!(
            rc,
            0,
            "umount {:?}: {}",
            dir.path(),
            io::Error::last_os_error()
        );
        assert!(mounted, "no events/ in freshly mounted tracefs");
        assert!(!has_events(dir.path()), "still mounted after umount");
    }
}
