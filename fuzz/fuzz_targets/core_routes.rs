#![no_main]
//! `RoutesFile::parse`: never panics; indexes, lines and names are consistent; route host
//! patterns parse back from their Display; the filters can be evaluated.
use std::collections::HashSet;
use std::path::Path;

use bottle_core::allowlist::HostPattern;
use bottle_core::routes::RoutesFile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(f) = RoutesFile::parse(text, Path::new("fuzz/routes.yaml")) else {
        return;
    };
    // YAML also breaks lines at a lone CR, which `str::lines` does not: count both.
    let nlines = text.split(['\n', '\r']).count();
    let mut last_line = 0;
    for (i, r) in f.routes.iter().enumerate() {
        assert_eq!(r.index, i);
        assert!(
            r.line >= 1 && r.line <= nlines,
            "route line {} of {nlines}",
            r.line
        );
        assert!(r.line >= last_line, "routes out of file order");
        last_line = r.line;
        let shown = r.host.to_string();
        assert_eq!(HostPattern::parse(&shown).as_ref(), Ok(&r.host), "{shown}");
        for path in ["/", "/repos/acme/x", "/a/../b", "/%2e%2e/x", "x", "/a?b=/c"] {
            for m in [http::Method::GET, http::Method::POST] {
                let ok = r.accepts(&m, path);
                if path.contains("..") || path.contains("%2e") || !path.starts_with('/') {
                    assert!(!ok || r.paths.is_none(), "{path} accepted by a path glob");
                }
            }
        }
    }
    let mut names = HashSet::new();
    for g in &f.git {
        assert!(g.line >= 1 && g.line <= nlines);
        assert!(!g.name.is_empty());
        assert!(
            g.name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')),
            "bad repo name {:?}",
            g.name
        );
        assert!(names.insert(g.name.clone()), "duplicate repo {}", g.name);
        assert!(f.git_repo(&g.name).is_some());
        assert!(
            g.upstream.starts_with("https://")
                || g.upstream.starts_with("ssh://")
                || g.upstream.starts_with("file://"),
            "upstream {:?}",
            g.upstream
        );
        for rule in &g.rules {
            let _ = rule.matches("refs/heads/main");
            let _ = rule.matches("refs/heads/agent/x/y");
        }
    }
});
