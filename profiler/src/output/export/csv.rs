//! CSV tables of a recording, one file each in a directory: the per-CPU table, the SKB and
//! page alloc-CPU x free-CPU matrices, and the SKB free sites. RFC 4180: a header row,
//! CRLF line ends, and a field quoted (with `""` for a quote) only when it holds a comma,
//! a quote, CR or LF. Raw units (ns, counts, pages), with the column names of the JSON
//! report. A table with no rows (no SKB probes, page tracking off) is a header alone, so
//! scripts always find every file.
//!
//! Written by hand: quoting is a dozen lines, tested below, and needs no crate.
use std::{borrow::Cow, fmt::Write as _, path::Path};

use super::{ExportError, write_file};
use crate::{model::recording::Recording, output::report};

/// One CSV file.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// File name in the output directory.
    pub file: &'static str,
    pub header: &'static [&'static str],
    pub rows: Vec<Vec<String>>,
}

pub const PER_CPU: &str = "per-cpu.csv";
pub const SKB_MATRIX: &str = "skb-matrix.csv";
pub const PAGE_MATRIX: &str = "page-matrix.csv";
pub const SKB_FREE_SITES: &str = "skb-free-sites.csv";

/// One field, quoted when RFC 4180 requires it.
pub fn field(s: &str) -> Cow<'_, str> {
    if s.contains([',', '"', '\r', '\n']) {
        Cow::Owned(format!("\"{}\"", s.replace('"', "\"\"")))
    } else {
        Cow::Borrowed(s)
    }
}

impl Table {
    /// The table as CSV text.
    pub fn to_csv(&self) -> String {
        let mut out = String::new();
        let mut line = |cells: &mut dyn Iterator<Item = &str>| {
            let mut first = true;
            for c in cells {
                if !first {
                    out.push(',');
                }
                first = false;
                out.push_str(&field(c));
            }
            out.push_str("\r\n");
        };
        line(&mut self.header.iter().copied());
        for r in &self.rows {
            line(&mut r.iter().map(String::as_str));
        }
        out
    }
}

fn cells<const N: usize>(values: [&dyn std::fmt::Display; N]) -> Vec<String> {
    values
        .iter()
        .map(|v| {
            let mut s = String::new();
            write!(s, "{v}").ok();
            s
        })
        .collect()
}

/// The four tables of `rec`, numbers as the report computes them.
pub fn tables(rec: &Recording) -> Vec<Table> {
    let r = report::build(rec, 0);
    let node = |cpu: u32| rec.host.node_of(cpu);
    let per_cpu = Table {
        file: PER_CPU,
        header: &[
            "cpu",
            "node",
            "zone_lock_wait_alloc_ns",
            "zone_lock_wait_free_ns",
            "zone_lock_wait_other_ns",
            "zone_lock_wait_alloc_pct",
            "zone_lock_wait_free_pct",
            "other_lock_wait_ns",
            "contentions",
            "pcp_refill_pages",
            "pcp_drain_pages",
            "pcp_refill_events",
            "pcp_drain_events",
            "rmqueue_calls",
            "rmqueue_ns",
            "pcp_bulk_free_calls",
            "pcp_bulk_free_pages",
            "pcp_refill_batch_pages",
        ],
        rows: r
            .per_cpu
            .iter()
            .map(|c| {
                cells([
                    &c.cpu,
                    &c.node,
                    &c.zone_lock_wait_ns.alloc,
                    &c.zone_lock_wait_ns.free,
                    &c.zone_lock_wait_ns.other,
                    &c.zone_lock_wait_pct.alloc,
                    &c.zone_lock_wait_pct.free,
                    &c.other_lock_wait_ns,
                    &c.contentions,
                    &c.pcp_refill_pages,
                    &c.pcp_drain_pages,
                    &c.pcp_refill_events,
                    &c.pcp_drain_events,
                    &c.rmqueue_calls,
                    &c.rmqueue_ns,
                    &c.pcp_bulk_free_calls,
                    &c.pcp_bulk_free_pages,
                    &c.pcp_refill_batch_pages,
                ])
            })
            .collect(),
    };
    let mut skb: Vec<_> = r
        .skb_matrix
        .iter()
        .map(|c| (c.alloc_cpu, c.free_cpu, c.count))
        .collect();
    skb.sort_unstable();
    let skb_matrix = Table {
        file: SKB_MATRIX,
        header: &["alloc_cpu", "alloc_node", "free_cpu", "free_node", "count"],
        rows: skb
            .iter()
            .map(|(a, f, n)| cells([a, &node(*a), f, &node(*f), n]))
            .collect(),
    };
    let mut pages: Vec<_> = r
        .page_matrix
        .iter()
        .map(|c| (c.alloc_cpu, c.free_cpu, c.pages))
        .collect();
    pages.sort_unstable();
    let page_matrix = Table {
        file: PAGE_MATRIX,
        header: &["alloc_cpu", "alloc_node", "free_cpu", "free_node", "pages"],
        rows: pages
            .iter()
            .map(|(a, f, n)| cells([a, &node(*a), f, &node(*f), n]))
            .collect(),
    };
    // One row per site and CPU, as recorded (the report merges CPUs; a spreadsheet can).
    let mut sites: Vec<_> = rec.skb_sites.iter().collect();
    sites.sort_by(|a, b| {
        (b.count, &a.function, &a.caller, a.cpu).cmp(&(a.count, &b.function, &b.caller, b.cpu))
    });
    let skb_free_sites = Table {
        file: SKB_FREE_SITES,
        header: &[
            "function",
            "caller",
            "cpu",
            "node",
            "count",
            "remote",
            "cross_node",
        ],
        rows: sites
            .iter()
            .map(|s| {
                cells([
                    &s.function,
                    &s.caller,
                    &s.cpu,
                    &node(s.cpu),
                    &s.count,
                    &s.remote,
                    &s.cross_node,
                ])
            })
            .collect(),
    };
    vec![per_cpu, skb_matrix, page_matrix, skb_free_sites]
}

/// Writes every table into directory `dir` (created when missing); returns the paths.
pub fn write_dir(rec: &Recording, dir: &Path) -> Result<Vec<std::path::PathBuf>, ExportError> {
    if dir.exists() && !dir.is_dir() {
        return Err(ExportError::Write {
            path: dir.to_path_buf(),
            source: std::io::Error::other("exists and is not a directory (csv writes a directory)"),
        });
    }
    std::fs::create_dir_all(dir).map_err(|source| ExportError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut written = Vec::new();
    for t in tables(rec) {
        let p = dir.join(t.file);
        write_file(&p, t.to_csv().as_bytes())?;
        written.push(p);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::recording::{PageCell, SkbSite, sample};

    /// A strict RFC 4180 reader for the tests: CRLF records, quoted fields with `""`.
    fn parse(text: &str) -> Vec<Vec<String>> {
        let mut rows = Vec::new();
        let mut row = Vec::new();
        let mut cur = String::new();
        let mut chars = text.chars().peekable();
        let mut quoted = false;
        while let Some(c) = chars.next() {
            match (quoted, c) {
                (true, '"') if chars.peek() == Some(&'"') => {
                    chars.next();
                    cur.push('"');
                }
                (true, '"') => quoted = false,
                (true, c) => cur.push(c),
                (false, '"') if cur.is_empty() => quoted = true,
                (false, ',') => row.push(std::mem::take(&mut cur)),
                (false, '\r') => {
                    assert_eq!(chars.next(), Some('\n'), "CR without LF");
                    row.push(std::mem::take(&mut cur));
                    rows.push(std::mem::take(&mut row));
                }
                (false, c) => {
                    assert!(c != '\n' && c != '"', "bare {c:?} outside quotes");
                    cur.push(c);
                }
            }
        }
        assert!(
            !quoted && cur.is_empty() && row.is_empty(),
            "unterminated record"
        );
        rows
    }

    #[test]
    fn fields_are_quoted_only_when_needed() {
        assert_eq!(field("plain_sym"), "plain_sym");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("two\nlines"), "\"two\nlines\"");
        assert_eq!(field("cr\r"), "\"cr\r\"");
        let t = Table {
            file: "x.csv",
            header: &["a", "b"],
            rows: vec![vec!["1".into(), "x,\"y\"\nz".into()]],
        };
        let text = t.to_csv();
        assert_eq!(text, "a,b\r\n1,\"x,\"\"y\"\"\nz\"\r\n");
        assert_eq!(parse(&text), vec![vec!["a", "b"], vec!["1", "x,\"y\"\nz"]]);
    }

    #[test]
    fn per_cpu_rows_match_the_report() {
        let rec = sample();
        let t = &tables(&rec)[0];
        assert_eq!(t.file, PER_CPU);
        let rows = parse(&t.to_csv());
        assert_eq!(rows[0], t.header);
        let col = |name: &str| t.header.iter().position(|h| *h == name).expect(name);
        let r = report::build(&rec, 0);
        assert_eq!(rows.len(), 1 + r.per_cpu.len());
        for (row, c) in rows[1..].iter().zip(&r.per_cpu) {
            assert_eq!(row.len(), t.header.len());
            assert_eq!(row[col("cpu")], c.cpu.to_string());
            assert_eq!(
                row[col("zone_lock_wait_alloc_ns")],
                c.zone_lock_wait_ns.alloc.to_string()
            );
            assert_eq!(
                row[col("zone_lock_wait_free_ns")],
                c.zone_lock_wait_ns.free.to_string()
            );
            let pct: f64 = row[col("zone_lock_wait_free_pct")].parse().expect("float");
            assert!((pct - c.zone_lock_wait_pct.free).abs() < 1e-12);
            assert_eq!(row[col("pcp_refill_pages")], c.pcp_refill_pages.to_string());
        }
        // CPU 1: 12 ms free side, 1 ms rq lock (sample recording).
        assert_eq!(rows[2][col("zone_lock_wait_free_ns")], "12000000");
        assert_eq!(rows[2][col("other_lock_wait_ns")], "1000000");
    }

    #[test]
    fn matrices_and_sites_with_nodes_and_quoting() {
        let mut rec = sample();
        rec.host.cpu_node = vec![(0, 0), (1, 1)];
        rec.page_matrix = vec![PageCell {
            alloc_cpu: 1,
            free_cpu: 0,
            pages: 640,
        }];
        rec.skb_sites = vec![
            SkbSite {
                function: "consume_skb".into(),
                caller: "tun_do_read".into(),
                cpu: 1,
                count: 100,
                remote: 98,
                cross_node: 98,
                tid: None,
            },
            SkbSite {
                function: "kfree_skb".into(),
                caller: "odd,caller".into(),
                cpu: 0,
                count: 3,
                remote: 0,
                cross_node: 0,
                tid: None,
            },
        ];
        let t = tables(&rec);
        let files: Vec<&str> = t.iter().map(|t| t.file).collect();
        assert_eq!(files, [PER_CPU, SKB_MATRIX, PAGE_MATRIX, SKB_FREE_SITES]);
        assert_eq!(
            t[1].to_csv(),
            "alloc_cpu,alloc_node,free_cpu,free_node,count\r\n0,0,1,1,5\r\n"
        );
        assert_eq!(
            t[2].to_csv(),
            "alloc_cpu,alloc_node,free_cpu,free_node,pages\r\n1,1,0,0,640\r\n"
        );
        let sites = parse(&t[3].to_csv());
        assert_eq!(
            sites[1],
            ["consume_skb", "tun_do_read", "1", "1", "100", "98", "98"]
        );
        assert_eq!(sites[2][1], "odd,caller");
    }

    #[test]
    fn empty_tables_are_a_header_alone_and_the_directory_is_made() {
        let mut rec = sample();
        rec.skb_matrix.clear();
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("csv");
        let written = write_dir(&rec, &out).expect("write");
        assert_eq!(written.len(), 4);
        let skb = std::fs::read_to_string(out.join(SKB_MATRIX)).expect("read");
        assert_eq!(skb, "alloc_cpu,alloc_node,free_cpu,free_node,count\r\n");
        // A file where the directory should be: an error, nothing written.
        let file = dir.path().join("afile");
        std::fs::write(&file, "x").expect("write");
        let err = write_dir(&rec, &file).unwrap_err();
        assert!(err.to_string().contains("not a directory"), "{err}");
    }
}
