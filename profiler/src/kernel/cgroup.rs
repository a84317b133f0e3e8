//! cgroup v2 ids to paths. The kernel's `bpf_get_current_cgroup_id()` is the id of the
//! cgroup's directory in the cgroup2 file system, which on 64-bit kernels is its inode
//! number: a walk of the mount, stat by stat, names each id (`/machine.slice/vm1.scope`).
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

/// Where cgroup2 is mounted, from `/proc/self/mountinfo` text (`man 5 proc`: field 5 is
/// the mount point, the file-system type follows the ` - ` separator).
pub fn cgroup2_mount(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        if right.split_whitespace().next()? != "cgroup2" {
            return None;
        }
        left.split_whitespace()
            .nth(4)
            .map(|m| PathBuf::from(unescape(m)))
    })
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let oct = b
            .get(i + 1..i + 4)
            .filter(|d| b[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match oct {
            Some(d) => {
                let v = d.iter().fold(0u32, |a, c| a * 8 + u32::from(c - b'0'));
                out.push(v as u8);
                i += 4;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Directories a walk visits at most: a host has hundreds of cgroups, a big one thousands;
/// the bound keeps a pathological tree from stalling the read-back.
const MAX_DIRS: usize = 100_000;

/// The path (relative to `root`, with a leading `/`; the root itself is `/`) of each id in
/// `ids` found under `root`. The walk stops once every id is named.
pub fn paths_of(root: &Path, ids: &BTreeSet<u64>) -> BTreeMap<u64, String> {
    let mut found = BTreeMap::new();
    let mut queue = vec![(root.to_path_buf(), "/".to_string())];
    let mut visited = 0;
    while let Some((dir, rel)) = queue.pop() {
        if found.len() == ids.len() || visited >= MAX_DIRS {
            break;
        }
        visited += 1;
        if let Ok(m) = std::fs::metadata(&dir)
            && ids.contains(&m.ino())
        {
            found.insert(m.ino(), rel.clone());
        }
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            // Not following links: cgroup2 has none, and a link could loop.
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                let name = e.file_name().to_string_lossy().into_owned();
                let child = if rel == "/" {
                    format!("/{name}")
                } else {
                    format!("{rel}/{name}")
                };
                queue.push((e.path(), child));
            }
        }
    }
    found
}

/// [`paths_of`] under this host's cgroup2 mount; empty when there is none.
pub fn host_paths(ids: &BTreeSet<u64>) -> BTreeMap<u64, String> {
    if ids.is_empty() {
        return BTreeMap::new();
    }
    match std::fs::read_to_string("/proc/self/mountinfo")
        .ok()
        .as_deref()
        .and_then(cgroup2_mount)
    {
        Some(root) => paths_of(&root, ids),
        None => BTreeMap::new(),
    }
}

/// The paths of the cgroup ids a session has named so far. A cgroup id is never reused (a
/// 64-bit kernfs inode number), so a path, or its absence once the cgroup is gone, holds
/// for the whole session: a live session walks the tree only for ids it has not seen
/// before, and a cgroup keeps its name from one snapshot to the next after it is removed
/// (its Prometheus series keep their label).
#[derive(Debug, Default)]
pub struct PathCache {
    known: BTreeMap<u64, Option<String>>,
}

impl PathCache {
    /// The path of each id in `ids` (None: not found), walking this host's cgroup2 mount
    /// for the new ones.
    pub fn paths(&mut self, ids: &BTreeSet<u64>) -> BTreeMap<u64, Option<String>> {
        self.paths_with(ids, host_paths)
    }

    /// As [`PathCache::paths`], with `walk` naming the ids not seen before.
    pub fn paths_with(
        &mut self,
        ids: &BTreeSet<u64>,
        walk: impl FnOnce(&BTreeSet<u64>) -> BTreeMap<u64, String>,
    ) -> BTreeMap<u64, Option<String>> {
        let new: BTreeSet<u64> = ids
            .iter()
            .copied()
            .filter(|id| !self.known.contains_key(id))
            .collect();
        if !new.is_empty() {
            let mut found = walk(&new);
            for id in new {
                self.known.insert(id, found.remove(&id));
            }
        }
        ids.iter()
            .map(|id| (*id, self.known.get(id).cloned().flatten()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_cgroup2_mount() {
        let text = "\
22 1 0:21 / /proc rw,nosuid - proc proc rw
30 22 0:26 / /sys/fs/cgroup rw,nosuid shared:9 - cgroup2 cgroup2 rw,nsdelegate
31 22 0:27 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu
";
        assert_eq!(cgroup2_mount(text), Some(PathBuf::from("/sys/fs/cgroup")));
        assert_eq!(
            cgroup2_mount("40 1 0:30 / /mnt/my\\040cg rw - cgroup2 none rw\n"),
            Some(PathBuf::from("/mnt/my cg"))
        );
        // cgroup v1 only, or nothing parseable.
        assert_eq!(
            cgroup2_mount("31 22 0:27 / /cg rw - cgroup cgroup rw\n"),
            None
        );
        assert_eq!(cgroup2_mount("garbage\n\n"), None);
    }

    #[test]
    fn names_ids_by_directory_inode() {
        let root = std::env::temp_dir().join(format!("zoneprof-cg-{}", std::process::id()));
        let deep = root.join("machine.slice").join("vm1.scope");
        std::fs::create_dir_all(&deep).unwrap();
        std::fs::create_dir_all(root.join("system.slice")).unwrap();
        let ino = |p: &Path| std::fs::metadata(p).unwrap().ino();
        let (root_id, vm_id) = (ino(&root), ino(&deep));
        let ids: BTreeSet<u64> = [root_id, vm_id, 1].into_iter().collect();
        let got = paths_of(&root, &ids);
        std::fs::remove_dir_all(&root).unwrap();
        assert_eq!(got.len(), 2, "{got:?}: id 1 is nowhere under the root");
        assert_eq!(got.get(&root_id).map(String::as_str), Some("/"));
        assert_eq!(
            got.get(&vm_id).map(String::as_str),
            Some("/machine.slice/vm1.scope")
        );
    }

    #[test]
    fn the_cache_walks_only_for_ids_it_has_not_seen() {
        let mut cache = PathCache::default();
        let ids = |v: &[u64]| v.iter().copied().collect::<BTreeSet<u64>>();
        let mut walked = Vec::new();
        let walk = |asked: &BTreeSet<u64>, walked: &mut Vec<Vec<u64>>| {
            walked.push(asked.iter().copied().collect());
            asked
                .iter()
                .filter(|id| **id != 3) // 3 is gone by the time it is looked up
                .map(|id| (*id, format!("/cg{id}")))
                .collect::<BTreeMap<u64, String>>()
        };
        let first = cache.paths_with(&ids(&[1, 3]), |a| walk(a, &mut walked));
        assert_eq!(first[&1].as_deref(), Some("/cg1"));
        assert_eq!(first[&3], None);
        // 1 and 3 are known (3 as gone): only 2 is walked for.
        let second = cache.paths_with(&ids(&[1, 2, 3]), |a| walk(a, &mut walked));
        assert_eq!(second[&2].as_deref(), Some("/cg2"));
        assert_eq!(second[&3], None);
        // Nothing new: no walk at all.
        let third = cache.paths_with(&ids(&[2]), |a| walk(a, &mut walked));
        assert_eq!(third.len(), 1);
        assert_eq!(walked, vec![vec![1, 3], vec![2]]);
    }
}
