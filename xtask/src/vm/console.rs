//! The protocol between the guest's `/init` and the host: marker lines on the serial
//! console and on the file channel (second serial port), and their parsing.
//!
//! Every marker is `@@ZPVM:<nonce>:<KIND>[:<arg>…]`, where the nonce is random per boot,
//! so nothing else printed on the console (kernel messages, a payload echoing a script)
//! can be mistaken for one. A marker may follow other text on the same line (a kernel
//! message without a newline), so it is searched for anywhere in the line.

use std::collections::BTreeMap;

/// Marker kinds, as written by the init script (see `initramfs::init_script`).
pub const BOOTED: &str = "BOOTED";
pub const STEP_BEGIN: &str = "STEP-BEGIN";
pub const STEP_END: &str = "STEP-END";
pub const STEP_SKIP: &str = "STEP-SKIP";
pub const EXIT: &str = "EXIT";
pub const FILE_BEGIN: &str = "FILE-BEGIN";
pub const FILE_END: &str = "FILE-END";
pub const FILE_MISSING: &str = "FILE-MISSING";

/// The marker prefix for one boot.
pub fn prefix(nonce: &str) -> String {
    format!("@@ZPVM:{nonce}:")
}

/// Splits a line holding a marker into its kind and arguments.
fn marker<'a>(line: &'a str, prefix: &str) -> Option<(&'a str, Vec<&'a str>)> {
    let at = line.find(prefix)?;
    let rest = line[at + prefix.len()..].trim_end_matches(['\r', '\n', ' ']);
    let mut parts = rest.split(':');
    let kind = parts.next()?;
    Some((kind, parts.collect()))
}

/// How a step of the payload ended.
#[derive(Debug, Clone, PartialEq)]
pub enum StepEnd {
    /// Ran to the end with this exit status, taking this many seconds (guest clock).
    Exited { status: i32, secs: Option<f64> },
    /// Not run: its requirement was not met inside the guest.
    Skipped(String),
    /// Began but never ended (the guest crashed, hung or was killed).
    Unfinished,
}

/// One step: its name, everything printed between its begin and end markers, and the end.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub name: String,
    pub output: String,
    pub end: StepEnd,
}

/// What the console says about a boot.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Transcript {
    /// Guest uptime (s) when `/init` reported itself booted.
    pub booted_uptime: Option<f64>,
    pub steps: Vec<Step>,
    /// Exit status of the whole payload (the last marker before power-off).
    pub exit: Option<i32>,
}

impl Transcript {
    pub fn step(&self, name: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.name == name)
    }
}

/// Parses the console log of one boot.
pub fn parse_console(text: &str, nonce: &str) -> Transcript {
    let prefix = prefix(nonce);
    let mut t = Transcript::default();
    let mut open: Option<Step> = None;
    for line in text.lines() {
        let Some((kind, args)) = marker(line, &prefix) else {
            if let Some(step) = open.as_mut() {
                step.output.push_str(line.trim_end_matches('\r'));
                step.output.push('\n');
            }
            continue;
        };
        match (kind, args.as_slice()) {
            (BOOTED, [uptime, ..]) => t.booted_uptime = uptime.parse().ok(),
            (STEP_BEGIN, [name, ..]) => {
                if let Some(prev) = open.take() {
                    t.steps.push(prev);
                }
                open = Some(Step {
                    name: (*name).to_owned(),
                    output: String::new(),
                    end: StepEnd::Unfinished,
                });
            }
            (STEP_END, [name, status, rest @ ..]) => {
                let mut step = match open.take() {
                    Some(s) if s.name == *name => s,
                    other => {
                        if let Some(prev) = other {
                            t.steps.push(prev);
                        }
                        Step {
                            name: (*name).to_owned(),
                            output: String::new(),
                            end: StepEnd::Unfinished,
                        }
                    }
                };
                step.end = match status.parse() {
                    Ok(status) => StepEnd::Exited {
                        status,
                        secs: rest.first().and_then(|s| s.parse().ok()),
                    },
                    Err(_) => StepEnd::Unfinished,
                };
                t.steps.push(step);
            }
            (STEP_SKIP, [name, reason @ ..]) => {
                if let Some(prev) = open.take() {
                    t.steps.push(prev);
                }
                t.steps.push(Step {
                    name: (*name).to_owned(),
                    output: String::new(),
                    end: StepEnd::Skipped(reason.join(":")),
                });
            }
            (EXIT, [status, ..]) => t.exit = status.parse().ok(),
            _ => {}
        }
    }
    if let Some(step) = open {
        t.steps.push(step);
    }
    t
}

/// Files sent back by the guest, and what went wrong receiving others.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Received {
    pub files: BTreeMap<String, Vec<u8>>,
    /// Names the guest reported missing (the path did not exist there).
    pub missing: Vec<String>,
    /// One line per file that arrived damaged (truncated, bad base64, wrong size).
    pub damaged: Vec<String>,
}

/// Parses the file channel: `FILE-BEGIN:<name>:<size>`, base64 lines, `FILE-END:<name>`.
pub fn parse_files(text: &str, nonce: &str) -> Received {
    let prefix = prefix(nonce);
    let mut r = Received::default();
    // (name, declared size, base64 text so far)
    let mut open: Option<(String, usize, String)> = None;
    for line in text.lines() {
        match marker(line, &prefix) {
            None => {
                if let Some((_, _, b64)) = open.as_mut() {
                    b64.push_str(line.trim());
                }
            }
            Some((FILE_BEGIN, args)) => {
                if let Some((name, ..)) = open.take() {
                    r.damaged.push(format!("{name}: no end marker"));
                }
                match args.as_slice() {
                    [name, size] => match size.parse() {
                        Ok(size) => open = Some(((*name).to_owned(), size, String::new())),
                        Err(_) => r.damaged.push(format!("{name}: bad size {size:?}")),
                    },
                    _ => r.damaged.push(format!("malformed file marker {line:?}")),
                }
            }
            Some((FILE_END, args)) => match open.take() {
                Some((name, size, b64)) if args.first() == Some(&name.as_str()) => {
                    match decode_base64(&b64) {
                        Some(data) if data.len() == size => {
                            r.files.insert(name, data);
                        }
                        Some(data) => r.damaged.push(format!(
                            "{name}: {} bytes arrived, {size} were sent",
                            data.len()
                        )),
                        None => r.damaged.push(format!("{name}: invalid base64")),
                    }
                }
                Some((name, ..)) => r.damaged.push(format!("{name}: no end marker")),
                None => {}
            },
            Some((FILE_MISSING, args)) => {
                if let Some(name) = args.first() {
                    r.missing.push((*name).to_owned());
                }
            }
            Some(_) => {}
        }
    }
    if let Some((name, ..)) = open {
        r.damaged.push(format!("{name}: truncated (no end marker)"));
    }
    r
}

/// Decodes standard base64 (RFC 4648, `=` padding), ignoring ASCII whitespace.
pub fn decode_base64(text: &str) -> Option<Vec<u8>> {
    fn value(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let clean: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if !clean.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(clean.len() / 4 * 3);
    let chunks = clean.chunks(4);
    let last = chunks.len().saturating_sub(1);
    for (i, chunk) in chunks.enumerate() {
        let pad = chunk.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && i != last) {
            return None;
        }
        let mut n = 0u32;
        for &c in &chunk[..4 - pad] {
            n = (n << 6) | value(c)?;
        }
        n <<= 6 * pad as u32;
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const N: &str = "n0nce";

    #[test]
    fn base64_round_trips_known_vectors() {
        for (plain, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(
                decode_base64(enc).as_deref(),
                Some(plain.as_bytes()),
                "{enc}"
            );
        }
        assert_eq!(
            decode_base64("AAEC\r\n/f7/\n").as_deref(),
            Some(&[0u8, 1, 2, 0xfd, 0xfe, 0xff][..])
        );
        assert_eq!(decode_base64("Zg="), None);
        assert_eq!(decode_base64("Zg==Zg=="), None);
        assert_eq!(decode_base64("Z!=="), None);
    }

    #[test]
    fn console_steps_and_exit() {
        let log = "\
[    0.000000] Linux version 6.12
@@ZPVM:n0nce:BOOTED:4.52\r
@@ZPVM:other:STEP-BEGIN:fake
@@ZPVM:n0nce:STEP-BEGIN:version\r
zoneprof 0.1.0\r
@@ZPVM:n0nce:STEP-END:version:0:0.25\r
@@ZPVM:n0nce:STEP-SKIP:kprobe:no kprobe PMU: /sys/bus/x
@@ZPVM:n0nce:STEP-BEGIN:record
+ zoneprof record
[   12.1] some kernel line@@ZPVM:n0nce:STEP-END:record:1:3.5
@@ZPVM:n0nce:STEP-BEGIN:hang
still going
@@ZPVM:n0nce:EXIT:1
";
        let t = parse_console(log, N);
        assert_eq!(t.booted_uptime, Some(4.52));
        assert_eq!(t.exit, Some(1));
        let names: Vec<_> = t.steps.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["version", "kprobe", "record", "hang"]);
        let v = t.step("version").unwrap();
        assert_eq!(v.output, "zoneprof 0.1.0\n");
        assert_eq!(
            v.end,
            StepEnd::Exited {
                status: 0,
                secs: Some(0.25)
            }
        );
        assert_eq!(
            t.step("kprobe").unwrap().end,
            StepEnd::Skipped("no kprobe PMU: /sys/bus/x".into())
        );
        let r = t.step("record").unwrap();
        assert_eq!(r.output, "+ zoneprof record\n");
        assert!(matches!(r.end, StepEnd::Exited { status: 1, .. }));
        assert_eq!(t.step("hang").unwrap().end, StepEnd::Unfinished);
        assert_eq!(t.step("hang").unwrap().output, "still going\n");
    }

    #[test]
    fn console_without_markers_is_empty() {
        let t = parse_console("Kernel panic - not syncing\n", N);
        assert_eq!(t, Transcript::default());
    }

    #[test]
    fn files_ok_missing_and_damaged() {
        let chan = "\
@@ZPVM:n0nce:FILE-BEGIN:record/report.json:6\r
Zm9v\r
YmFy\r
@@ZPVM:n0nce:FILE-END:record/report.json\r
@@ZPVM:n0nce:FILE-MISSING:record/r.zprof
@@ZPVM:n0nce:FILE-BEGIN:short:6
Zm9v
@@ZPVM:n0nce:FILE-END:short
@@ZPVM:n0nce:FILE-BEGIN:cut:3
Zm9v
";
        let r = parse_files(chan, N);
        assert_eq!(r.files.len(), 1);
        assert_eq!(r.files["record/report.json"], b"foobar");
        assert_eq!(r.missing, ["record/r.zprof"]);
        assert_eq!(
            r.damaged,
            [
                "short: 3 bytes arrived, 6 were sent",
                "cut: truncated (no end marker)"
            ]
        );
    }
}
