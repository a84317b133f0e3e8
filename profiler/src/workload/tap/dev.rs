//! Tap devices opened through /dev/net/tun, and the Ethernet/IPv4/UDP frames written into
//! them in forward mode.

use std::fs::{File, OpenOptions};
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::time::Duration;

use super::TapError;

pub const TUN_PATH: &str = "/dev/net/tun";
/// Ethernet (14) + IPv4 (20) + UDP (8) header bytes in front of the payload.
pub const HEADERS: usize = 14 + 20 + 8;

/// `struct ifreq` as TUNSETIFF reads it: the name, then the flags in the union that
/// pads the struct to 40 bytes on 64-bit Linux. Declared here so it can be built without
/// zero-initialising libc's union.
#[repr(C)]
struct IfReqFlags {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

// The kernel reads a whole `struct ifreq`: the stand-in must be exactly as large.
const _: () = assert!(std::mem::size_of::<IfReqFlags>() == std::mem::size_of::<libc::ifreq>());

/// Creates tap `name` (IFF_TAP | IFF_NO_PI: plain Ethernet frames, no packet-info header)
/// in the calling thread's network namespace and returns its queue fd, non-blocking. The
/// device is not persistent: it disappears when the fd is closed, even if the process is
/// killed.
pub fn open_tap(name: &str) -> Result<File, TapError> {
    let err = |source| TapError::Tun {
        name: name.to_string(),
        source,
    };
    if name.is_empty() || name.len() >= libc::IFNAMSIZ {
        return Err(err(io::Error::from(io::ErrorKind::InvalidInput)));
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(TUN_PATH)
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => TapError::TunMissing,
            _ => err(e),
        })?;
    let mut req = IfReqFlags {
        name: [0; libc::IFNAMSIZ],
        flags: (libc::IFF_TAP | libc::IFF_NO_PI) as libc::c_short,
        _pad: [0; 22],
    };
    req.name[..name.len()].copy_from_slice(name.as_bytes());
    // SAFETY: TUNSETIFF reads and writes one `struct ifreq` (40 bytes); `req` is a live,
    // exclusively borrowed repr(C) value of that size and layout, and `file` is open.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &mut req) };
    if rc != 0 {
        return Err(err(io::Error::last_os_error()));
    }
    Ok(file)
}

/// Waits up to `timeout` for `file` to become readable. Ok(false) on timeout or EINTR.
pub fn wait_readable(file: &File, timeout: Duration) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd: file.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
    // SAFETY: one valid pollfd for the duration of the call; nfds = 1 matches it.
    let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::Interrupted {
            Ok(false)
        } else {
            Err(e)
        };
    }
    if pfd.revents & (libc::POLLERR | libc::POLLNVAL) != 0 {
        return Err(io::Error::other(format!(
            "poll reported revents {:#x}",
            pfd.revents
        )));
    }
    Ok(rc > 0)
}

/// The Internet checksum (RFC 1071) of `data`.
pub fn inet_checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)])))
        .fold(0u32, |a, w| a.wrapping_add(w));
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Addresses of one forwarded flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flow {
    pub dst_mac: [u8; 6],
    pub src_mac: [u8; 6],
    pub src_ip: Ipv4Addr,
    pub dst_ip: Ipv4Addr,
    pub src_port: u16,
    pub dst_port: u16,
}

/// An Ethernet frame carrying one IPv4/UDP datagram with `payload` bytes (DF set, TTL 64,
/// valid IP header checksum, UDP checksum 0 = none, which IPv4 allows). `None` when the
/// datagram would not fit the 16-bit IP length.
pub fn udp_frame(flow: &Flow, payload: usize) -> Option<Vec<u8>> {
    let ip_len = u16::try_from(20 + 8 + payload).ok()?;
    let udp_len = ip_len - 20;
    let mut f = Vec::with_capacity(HEADERS + payload);
    f.extend_from_slice(&flow.dst_mac);
    f.extend_from_slice(&flow.src_mac);
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    let ip_start = f.len();
    f.extend_from_slice(&[0x45, 0]);
    f.extend_from_slice(&ip_len.to_be_bytes());
    f.extend_from_slice(&[0, 0, 0x40, 0, 64, libc::IPPROTO_UDP as u8, 0, 0]);
    f.extend_from_slice(&flow.src_ip.octets());
    f.extend_from_slice(&flow.dst_ip.octets());
    let csum = inet_checksum(&f[ip_start..ip_start + 20]);
    f[ip_start + 10..ip_start + 12].copy_from_slice(&csum.to_be_bytes());
    f.extend_from_slice(&flow.src_port.to_be_bytes());
    f.extend_from_slice(&flow.dst_port.to_be_bytes());
    f.extend_from_slice(&udp_len.to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    // Any payload will do; a pattern makes a captured frame recognisable.
    f.extend((0..payload).map(|i| (i % 251) as u8));
    Some(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_matches_rfc1071_example() {
        // RFC 1071 section 3 example words: sum 0xddf2, checksum !0xddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(inet_checksum(&data), !0xddf2u16);
        // Odd length pads with a zero byte.
        assert_eq!(inet_checksum(&[0x12]), !0x1200u16);
    }

    #[test]
    fn udp_frame_layout_and_header_checksum() {
        let flow = Flow {
            dst_mac: [2, 0, 0, 0, 0, 1],
            src_mac: [2, 0, 0, 0, 0, 2],
            src_ip: Ipv4Addr::new(10, 201, 0, 2),
            dst_ip: Ipv4Addr::new(10, 202, 0, 2),
            src_port: 4000,
            dst_port: 9,
        };
        let f = udp_frame(&flow, 1000).expect("fits");
        assert_eq!(f.len(), HEADERS + 1000);
        assert_eq!(&f[0..6], &flow.dst_mac);
        assert_eq!(&f[6..12], &flow.src_mac);
        assert_eq!(&f[12..14], &[0x08, 0x00]);
        let ip = &f[14..34];
        assert_eq!(ip[0], 0x45);
        assert_eq!(u16::from_be_bytes([ip[2], ip[3]]), 1028);
        assert_eq!(ip[9], 17);
        // A header with a correct checksum sums to zero.
        assert_eq!(inet_checksum(ip), 0);
        assert_eq!(&ip[12..16], &[10, 201, 0, 2]);
        assert_eq!(&ip[16..20], &[10, 202, 0, 2]);
        assert_eq!(u16::from_be_bytes([f[38], f[39]]), 1008);
        assert!(udp_frame(&flow, 65_507).is_some());
        assert!(udp_frame(&flow, 65_508).is_none());
    }
}
