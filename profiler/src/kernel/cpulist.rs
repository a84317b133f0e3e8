//! Kernel-style CPU lists ("0-3,8,10-11"), as found in
//! `/sys/devices/system/cpu/online` and `/sys/devices/system/node/node*/cpulist`.

use thiserror::Error;

/// Largest number of CPUs a list may expand to. The kernel's NR_CPUS tops out at 8192
/// today; this bound only guards against absurd input like "0-4000000000".
pub const MAX_CPUS: usize = 65536;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum CpuListError {
    #[error("empty CPU list")]
    Empty,
    #[error("empty element in CPU list {0:?}")]
    EmptyElement(String),
    #[error("invalid CPU number {0:?}")]
    BadNumber(String),
    #[error("reversed CPU range {0}-{1}")]
    Reversed(u32, u32),
    #[error("CPU list expands to more than {MAX_CPUS} CPUs")]
    TooLarge,
}

fn parse_cpu(s: &str) -> Result<u32, CpuListError> {
    // `u32::from_str` accepts a leading '+'; the kernel never writes one, so reject it.
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CpuListError::BadNumber(s.to_string()));
    }
    s.parse::<u32>()
        .map_err(|_| CpuListError::BadNumber(s.to_string()))
}

/// Parses a kernel CPU list. The result is sorted and deduplicated.
///
/// Surrounding whitespace (the trailing newline of sysfs files) is ignored; an empty list
/// is an error, because every caller needs at least one CPU.
pub fn parse_cpu_list(s: &str) -> Result<Vec<u32>, CpuListError> {
    let s = s.trim();
    if s.is_empty() {
        return Err(CpuListError::Empty);
    }
    let mut cpus: Vec<u32> = Vec::new();
    for part in s.split(',') {
        let part = part.trim();
        if part.is_empty() {
            return Err(CpuListError::EmptyElement(s.to_string()));
        }
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (parse_cpu(a.trim())?, parse_cpu(b.trim())?),
            None => {
                let c = parse_cpu(part)?;
                (c, c)
            }
        };
        if lo > hi {
            return Err(CpuListError::Reversed(lo, hi));
        }
        // Check the size before expanding so "0-4294967295" costs nothing.
        let span = (hi - lo) as usize + 1;
        if span > MAX_CPUS || cpus.len() + span > MAX_CPUS * 2 {
            return Err(CpuListError::TooLarge);
        }
        cpus.extend(lo..=hi);
    }
    cpus.sort_unstable();
    cpus.dedup();
    if cpus.len() > MAX_CPUS {
        return Err(CpuListError::TooLarge);
    }
    Ok(cpus)
}

/// Formats CPUs as a kernel-style list, compressing consecutive runs into ranges.
/// Input order and duplicates do not matter; an empty slice gives "".
pub fn format_cpu_list(cpus: &[u32]) -> String {
    let mut sorted = cpus.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out = String::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        let mut end = start;
        while i + 1 < sorted.len() && end.checked_add(1) == Some(sorted[i + 1]) {
            i += 1;
            end = sorted[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}-{end}"));
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kernel_lists() {
        assert_eq!(parse_cpu_list("0").unwrap(), vec![0]);
        assert_eq!(parse_cpu_list("0-1\n").unwrap(), vec![0, 1]);
        assert_eq!(
            parse_cpu_list("0-3,8,10-11").unwrap(),
            vec![0, 1, 2, 3, 8, 10, 11]
        );
        assert_eq!(parse_cpu_list(" 5 , 1-2 ").unwrap(), vec![1, 2, 5]);
    }

    #[test]
    fn sorts_and_dedups() {
        assert_eq!(
            parse_cpu_list("8,0-3,2-5,8").unwrap(),
            vec![0, 1, 2, 3, 4, 5, 8]
        );
    }

    #[test]
    fn rejects_bad_input() {
        assert_eq!(parse_cpu_list(""), Err(CpuListError::Empty));
        assert_eq!(parse_cpu_list("  \n"), Err(CpuListError::Empty));
        assert_eq!(parse_cpu_list("3-1"), Err(CpuListError::Reversed(3, 1)));
        assert!(matches!(
            parse_cpu_list("0,,2"),
            Err(CpuListError::EmptyElement(_))
        ));
        assert!(matches!(
            parse_cpu_list("1,"),
            Err(CpuListError::EmptyElement(_))
        ));
        for junk in [
            "a",
            "1-",
            "-1",
            "1-2-3",
            "+1",
            "0x3",
            "1.5",
            "1 2",
            "99999999999",
        ] {
            assert!(
                matches!(parse_cpu_list(junk), Err(CpuListError::BadNumber(_))),
                "{junk:?} should be rejected"
            );
        }
    }

    #[test]
    fn rejects_absurd_sizes() {
        assert_eq!(parse_cpu_list("0-4294967295"), Err(CpuListError::TooLarge));
        assert_eq!(parse_cpu_list("0-65536"), Err(CpuListError::TooLarge));
        assert_eq!(parse_cpu_list("0-65535").unwrap().len(), 65536);
        assert_eq!(
            parse_cpu_list("0-40000,100000-140000"),
            Err(CpuListError::TooLarge)
        );
    }

    #[test]
    fn formats_ranges() {
        assert_eq!(format_cpu_list(&[]), "");
        assert_eq!(format_cpu_list(&[4]), "4");
        assert_eq!(format_cpu_list(&[0, 1]), "0-1");
        assert_eq!(format_cpu_list(&[11, 0, 1, 2, 3, 8, 10, 3]), "0-3,8,10-11");
        assert_eq!(format_cpu_list(&[1, 3, 5]), "1,3,5");
        assert_eq!(
            format_cpu_list(&[u32::MAX - 1, u32::MAX]),
            "4294967294-4294967295"
        );
    }

    #[test]
    fn round_trips() {
        for s in ["0", "0-1", "0-3,8,10-11", "1,3,5-7,100-163"] {
            assert_eq!(format_cpu_list(&parse_cpu_list(s).unwrap()), s);
        }
    }
}
