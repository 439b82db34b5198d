//! The layering README.md ("Architecture") promises: the pure modules never reach for the I/O
//! modules, so they stay testable without sockets.

use std::path::Path;

/// Pure modules and the I/O modules they must not use.
const PURE: &[&str] = &[
    "src/wire",
    "src/time.rs",
    "src/addr.rs",
    "src/crypto",
    "src/control",
    "src/stats.rs",
    "src/report.rs",
    "src/light.rs",
    "src/light/sender.rs",
    "src/plot",
    "src/metrics.rs",
    "src/output/text.rs",
    "src/output/json.rs",
    "src/output/csv.rs",
    "src/output/packets.rs",
    "src/output/twping.rs",
];
const IO: &[&str] = &["net", "channel", "client", "server", "app", "daemon"];

fn files(p: &Path, out: &mut Vec<std::path::PathBuf>) {
    if p.is_dir() {
        for e in std::fs::read_dir(p).expect("read_dir") {
            files(&e.expect("dir entry").path(), out);
        }
    } else if p.extension().is_some_and(|e| e == "rs") {
        out.push(p.to_path_buf());
    }
}

/// The first path segment of every `crate::` path in `code`, braces expanded
/// (`crate::{addr, net::Meta}` gives `addr` and `net`).
fn crate_paths(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        let mut items = Vec::new();
        if let Some(inner) = rest.strip_prefix('{') {
            // Top-level items of the group: commas at depth 0, up to the matching brace.
            let (mut depth, mut start) = (0usize, 0usize);
            for (j, c) in inner.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        items.push(&inner[start..j]);
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        items.push(&inner[start..j]);
                        start = j + 1;
                    }
                    _ => {}
                }
            }
        } else {
            items.push(rest);
        }
        for item in items {
            let word: String = item
                .trim()
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !word.is_empty() {
                out.push(word);
            }
        }
    }
    out
}

#[test]
fn crate_paths_are_found_in_groups() {
    assert_eq!(
        crate_paths("use crate::{\n    addr, net::{self, Meta},\n};\nlet x = crate::time::now();"),
        vec!["addr", "net", "time"]
    );
}

#[test]
fn pure_modules_do_not_use_io_modules() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut bad = Vec::new();
    for m in PURE {
        let mut fs = Vec::new();
        files(&root.join(m), &mut fs);
        assert!(!fs.is_empty(), "{m} has no source files");
        for f in fs {
            let text = std::fs::read_to_string(&f).expect("read source");
            // Comments may name anything; only code counts.
            let code: String = text
                .lines()
                .map(|l| l.split("//").next().unwrap_or(""))
                .collect::<Vec<_>>()
                .join("\n");
            for p in crate_paths(&code) {
                if IO.contains(&p.as_str()) {
                    bad.push(format!("{} uses crate::{p}", f.display()));
                }
            }
            for t in ["UdpSocket", "TcpStream", "TcpListener"] {
                if code.contains(t) {
                    bad.push(format!("{} uses {t}", f.display()));
                }
            }
        }
    }
    assert!(
        bad.is_empty(),
        "pure modules using I/O:\n{}",
        bad.join("\n")
    );
}
