//! The kernel's own loss counters of a running zoneprof: its `COUNTERS` map, found among
//! the process's descriptors (/proc/PID/fdinfo), opened by id and held, so it can still be
//! read after `record` has detached, read back and exited (the values are then final:
//! exactly what the recording should say).

use std::io;
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};

use anyhow::{Context as _, Result, bail};
use profiler_common::counter;

use super::checks;
use crate::bench::parse::{BpfFd, fdinfo};

const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;
const BPF_MAP_GET_FD_BY_ID: libc::c_long = 14;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_MAP_TYPE_PERCPU_ARRAY: u32 = 6;
/// The map's name in the eBPF object (the kernel keeps 15 bytes of it).
const NAME: &str = "COUNTERS";

/// `union bpf_attr` for `BPF_MAP_GET_FD_BY_ID`.
#[repr(C)]
struct GetFdById {
    map_id: u32,
    next_id: u32,
    open_flags: u32,
}

/// `union bpf_attr` for `BPF_OBJ_GET_INFO_BY_FD`.
#[repr(C)]
struct GetInfo {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

/// The head of `struct bpf_map_info`, up to the name.
#[repr(C)]
#[derive(Default)]
struct MapInfoHead {
    map_type: u32,
    id: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    name: [u8; 16],
}

/// `union bpf_attr` for `BPF_MAP_LOOKUP_ELEM`.
#[repr(C)]
struct Lookup {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a live, initialised `bpf_attr` variant of the size passed; the
    // kernel reads (and for GET_INFO writes through the pointer inside) nothing beyond.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// A zoneprof process's `COUNTERS` map, held open.
pub struct CountersMap {
    fd: OwnedFd,
    pub id: u32,
    /// Possible CPUs: a per-CPU lookup returns one 8-byte slot for each.
    ncpus: usize,
}

impl CountersMap {
    /// The `COUNTERS` map of process `pid`, once it has loaded it; None before.
    pub fn find(pid: u32) -> Result<Option<CountersMap>> {
        let possible = std::fs::read_to_string("/sys/devices/system/cpu/possible")
            .context("reading /sys/devices/system/cpu/possible")?;
        let ncpus = checks::cpu_count(&possible)
            .with_context(|| format!("bad possible-CPU list {possible:?}"))?;
        let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fdinfo")) else {
            return Ok(None);
        };
        for e in dir.flatten() {
            let Ok(text) = std::fs::read_to_string(e.path()) else {
                continue;
            };
            let Some(BpfFd::Map(m)) = fdinfo(&text) else {
                continue;
            };
            if m.map_type != BPF_MAP_TYPE_PERCPU_ARRAY || m.max_entries != counter::COUNT {
                continue;
            }
            let fd = open(m.id).with_context(|| format!("opening BPF map {}", m.id))?;
            let info = info(&fd).with_context(|| format!("reading BPF map {}'s info", m.id))?;
            let name_len = info.name.iter().position(|&b| b == 0).unwrap_or(16);
            if &info.name[..name_len] == NAME.as_bytes() {
                if info.value_size != 8 || info.key_size != 4 {
                    bail!(
                        "BPF map {} ({NAME}) has another layout than profiler-common's",
                        m.id
                    );
                }
                return Ok(Some(CountersMap {
                    fd,
                    id: m.id,
                    ncpus,
                }));
            }
        }
        Ok(None)
    }

    /// Every counter, summed over CPUs, indexed by `profiler_common::counter`.
    pub fn read(&self) -> Result<Vec<u64>> {
        (0..counter::COUNT)
            .map(|i| {
                let mut per_cpu = vec![0u64; self.ncpus];
                let key = i;
                let mut attr = Lookup {
                    map_fd: self.fd.as_raw_fd() as u32,
                    _pad: 0,
                    key: &key as *const u32 as u64,
                    value: per_cpu.as_mut_ptr() as u64,
                    flags: 0,
                };
                // The kernel writes one u64 per possible CPU into `per_cpu`, sized so.
                bpf(BPF_MAP_LOOKUP_ELEM, &mut attr)
                    .with_context(|| format!("reading counter {i} of BPF map {}", self.id))?;
                Ok(per_cpu.iter().sum())
            })
            .collect()
    }
}

fn open(id: u32) -> io::Result<OwnedFd> {
    let mut attr = GetFdById {
        map_id: id,
        next_id: 0,
        open_flags: 0,
    };
    let fd = bpf(BPF_MAP_GET_FD_BY_ID, &mut attr)?;
    let fd = i32::try_from(fd).map_err(io::Error::other)?;
    // SAFETY: the kernel just returned this descriptor to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn info(fd: &OwnedFd) -> io::Result<MapInfoHead> {
    let mut info = MapInfoHead::default();
    let mut attr = GetInfo {
        bpf_fd: fd.as_raw_fd() as u32,
        info_len: std::mem::size_of::<MapInfoHead>() as u32,
        info: &mut info as *mut MapInfoHead as u64,
    };
    // The kernel writes at most `info_len` bytes into `info`.
    bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr)?;
    Ok(info)
}
