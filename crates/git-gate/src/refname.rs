//! Ref-name validation: the rules of `git check-ref-format` (without `--normalize`, without
//! `--allow-onelevel`, without `--refspec-pattern`), plus git-gate hardening: the name must
//! start with `refs/`, be printable ASCII (no Unicode lookalikes), not be absurdly long, and
//! not use `HEAD` as a branch name. Names are rejected, never normalised.

/// Longest ref name accepted (git has no hard limit; hosting services use ~255 per component).
pub const MAX_REF_LEN: usize = 1024;

/// Checks a full ref name; the error is a short reason suitable for an `ng` line.
pub fn validate(name: &[u8]) -> Result<(), &'static str> {
    check_ref_format(name)?;
    if !name.starts_with(b"refs/") {
        return Err("ref name must start with refs/");
    }
    if name.len() > MAX_REF_LEN {
        return Err("ref name too long");
    }
    if name.iter().any(|&b| b >= 0x80) {
        return Err("ref name must be ASCII (lookalike characters refused)");
    }
    if name.split(|&b| b == b'/').any(|c| c == b"HEAD") {
        return Err("HEAD is not allowed as a ref name component");
    }
    Ok(())
}

/// The `git check-ref-format` rules (see git-check-ref-format(1)).
pub fn check_ref_format(name: &[u8]) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("empty ref name");
    }
    if name == b"@" {
        return Err("ref name cannot be @");
    }
    for &b in name {
        if b < 0x20 || b == 0x7f {
            return Err("control character in ref name");
        }
        match b {
            b' ' => return Err("space in ref name"),
            b'~' | b'^' | b':' => return Err("ref name contains ~, ^ or :"),
            b'?' | b'*' | b'[' => return Err("ref name contains ?, * or ["),
            b'\\' => return Err("backslash in ref name"),
            _ => {}
        }
    }
    if contains(name, b"..") {
        return Err("ref name contains ..");
    }
    if contains(name, b"@{") {
        return Err("ref name contains @{");
    }
    if name.starts_with(b"/") || name.ends_with(b"/") {
        return Err("ref name begins or ends with /");
    }
    if name.ends_with(b".") {
        return Err("ref name ends with .");
    }
    if !name.contains(&b'/') {
        return Err("one-level ref name");
    }
    for comp in name.split(|&b| b == b'/') {
        if comp.is_empty() {
            return Err("ref name contains //");
        }
        if comp.starts_with(b".") {
            return Err("ref name component begins with .");
        }
        if comp.ends_with(b".lock") {
            return Err("ref name component ends with .lock");
        }
    }
    Ok(())
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// A case-folded, lookalike-folded skeleton, used to refuse names that only *look like* a
/// protected ref (`refs/heads/Main`, `refs/heads/rnain`, `refs/heads/ma1n`).
pub fn skeleton(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    let mut s = lower.replace("rn", "m").replace("vv", "w");
    s = s
        .chars()
        .map(|c| match c {
            '0' => 'o',
            '1' | 'l' | '|' => 'i',
            '5' => 's',
            '_' | '.' => '-',
            c => c,
        })
        .collect();
    s
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn accepts_normal_names() {
        for ok in [
            "refs/heads/main",
            "refs/heads/agent/x-1",
            "refs/tags/v1.0",
            "refs/heads/a.b/c",
            "refs/heads/100%",
            "refs/heads/a@b",
        ] {
            assert_eq!(validate(ok.as_bytes()), Ok(()), "{ok}");
        }
    }

    #[test]
    fn rejects_git_invalid_names() {
        let bad: &[&[u8]] = &[
            b"refs/heads/agent/../main",
            b"refs/heads/agent/x..y",
            b"refs/heads//x",
            b"refs/heads/x.lock",
            b"refs/heads/x.",
            b"refs/heads/.x",
            b"refs/heads/x/",
            b"/refs/heads/x",
            b"refs/heads/@{u}",
            b"refs/heads/a\\b",
            b"refs/heads/a b",
            b"refs/heads/a~1",
            b"refs/heads/a^",
            b"refs/heads/a:b",
            b"refs/heads/a?",
            b"refs/heads/a*",
            b"refs/heads/a[",
            b"refs/heads/a\x01",
            b"refs/heads/a\x7f",
            b"refs/heads/a\0b",
            b"refs/heads/a\tb",
            b"@",
            b"",
            b"main",
            b"HEAD",
        ];
        for name in bad {
            assert!(
                validate(name).is_err(),
                "{:?}",
                String::from_utf8_lossy(name)
            );
        }
    }

    #[test]
    fn hardening() {
        assert!(validate("refs/heads/mаin".as_bytes()).is_err()); // Cyrillic а
        assert!(validate(b"refs/main2/x").is_ok());
        assert!(validate(b"heads/main").is_err());
        assert!(validate(b"refs/heads/HEAD").is_err());
        assert!(validate("refs/heads/x".repeat(200).as_bytes()).is_err());
        // "@" alone is invalid but "@" as a component inside a longer name is fine for git.
        assert!(check_ref_format(b"refs/heads/@").is_ok());
    }

    #[test]
    fn skeletons() {
        assert_eq!(skeleton("refs/heads/Main"), skeleton("refs/heads/main"));
        assert_eq!(skeleton("refs/heads/rnain"), skeleton("refs/heads/main"));
        assert_eq!(skeleton("refs/heads/MA1N"), skeleton("refs/heads/main"));
        assert_ne!(skeleton("refs/heads/agent/x"), skeleton("refs/heads/main"));
    }
}
