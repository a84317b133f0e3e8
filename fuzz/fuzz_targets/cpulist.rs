//! Kernel CPU lists ("0-3,8"): sysfs files and `--cpus`. What parses formats back to the
//! same CPUs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zoneprof::kernel::cpulist::{MAX_CPUS, format_cpu_list, parse_cpu_list};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(cpus) = parse_cpu_list(text) {
        assert!(!cpus.is_empty() && cpus.len() <= MAX_CPUS);
        assert!(
            cpus.windows(2).all(|w| w[0] < w[1]),
            "sorted and deduplicated"
        );
        let again = parse_cpu_list(&format_cpu_list(&cpus)).expect("a formatted list parses");
        assert_eq!(again, cpus);
    }
});
