//! A strict git config parser and the judgement of which entries are inert.
//!
//! Deny by default: an entry is inert only when its key is in a small allowlist of keys git
//! itself writes and that never run a program or make git read config or hooks from
//! elsewhere. Anything the parser does not understand makes the whole file suspect (the
//! caller quarantines it): a lenient parser that git reads differently would be an escape.

/// One `section[.sub].key[=value]` of a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Section name, lower-cased (git compares it case-insensitively).
    pub section: String,
    /// Subsection, case-sensitive (`[remote "origin"]`); legacy `[a.b]` is lower-cased.
    pub sub: Option<String>,
    /// Key name, lower-cased.
    pub key: String,
    /// `None`: the key alone (boolean true).
    pub value: Option<String>,
}

impl Entry {
    /// `section.sub.key`, as `git config` names it.
    pub fn name(&self) -> String {
        match &self.sub {
            Some(s) => format!("{}.{}.{}", self.section, s, self.key),
            None => format!("{}.{}", self.section, self.key),
        }
    }

    /// A stable identity of key and value, hashed by the snapshot (values may be secret).
    pub fn identity(&self) -> String {
        format!(
            "{}\0{}",
            self.name(),
            self.value.as_deref().unwrap_or("\u{1}")
        )
    }
}

/// Parse a whole config file; `Err(line number, why)` on anything unusual.
pub fn parse(text: &str) -> Result<Vec<Entry>, (usize, String)> {
    let mut out = Vec::new();
    let mut section: Option<(String, Option<String>)> = None;
    let lines: Vec<&str> = text.split('\n').collect();
    let mut i = 0;
    while i < lines.len() {
        let no = i + 1;
        let mut rest = lines[i].trim_start_matches([' ', '\t', '\r']);
        i += 1;
        if rest.starts_with('[') {
            let (s, after) = header(rest).map_err(|e| (no, e))?;
            section = Some(s);
            rest = after.trim_start_matches([' ', '\t', '\r']);
        }
        if rest.is_empty() || rest.starts_with('#') || rest.starts_with(';') {
            continue;
        }
        let Some((sec, sub)) = &section else {
            return Err((no, "an entry before any [section]".into()));
        };
        let klen = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .unwrap_or(rest.len());
        let key = &rest[..klen];
        if !key.starts_with(|c: char| c.is_ascii_alphabetic()) {
            return Err((no, "a key must start with a letter".into()));
        }
        let after = rest[klen..].trim_start_matches([' ', '\t']);
        let value = if after.is_empty()
            || after == "\r"
            || after.starts_with('#')
            || after.starts_with(';')
        {
            None
        } else if let Some(v) = after.strip_prefix('=') {
            let (v, used) = value_text(v, &lines[i..]).map_err(|e| (no, e))?;
            i += used;
            Some(v)
        } else {
            return Err((no, format!("unexpected text after key `{key}`")));
        };
        out.push(Entry {
            section: sec.clone(),
            sub: sub.clone(),
            key: key.to_ascii_lowercase(),
            value,
        });
    }
    Ok(out)
}

/// `[name]`, `[name "sub"]` or legacy `[name.sub]`; returns the section and the text after `]`.
#[allow(clippy::type_complexity)]
fn header(line: &str) -> Result<((String, Option<String>), &str), String> {
    let body = &line[1..];
    let nlen = body
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '.'))
        .unwrap_or(body.len());
    let name = &body[..nlen];
    if name.is_empty() {
        return Err("an empty section name".into());
    }
    let tail = &body[nlen..];
    if let Some(after) = tail.strip_prefix(']') {
        let lower = name.to_ascii_lowercase();
        return Ok(match lower.split_once('.') {
            Some((s, sub)) => ((s.to_string(), Some(sub.to_string())), after),
            None => ((lower, None), after),
        });
    }
    if name.contains('.') {
        return Err("a dotted section name with a subsection".into());
    }
    let Some(q) = tail.trim_start_matches([' ', '\t']).strip_prefix('"') else {
        return Err("a section header that does not end in `]`".into());
    };
    let mut sub = String::new();
    let mut chars = q.char_indices();
    while let Some((idx, c)) = chars.next() {
        match c {
            '"' => {
                let Some(after) = q[idx + 1..].strip_prefix(']') else {
                    return Err("text after a quoted subsection".into());
                };
                return Ok(((name.to_ascii_lowercase(), Some(sub)), after));
            }
            '\\' => match chars.next() {
                Some((_, e)) => sub.push(e),
                None => return Err("a subsection ending in `\\`".into()),
            },
            '\n' | '\0' => return Err("a control character in a subsection".into()),
            _ => sub.push(c),
        }
    }
    Err("an unterminated subsection".into())
}

/// A value: quotes, escapes, comments, `\` continuation onto `more`. Returns the value and
/// how many of `more` it consumed.
fn value_text(first: &str, more: &[&str]) -> Result<(String, usize), String> {
    let mut out = String::new();
    let mut pending_space = String::new();
    let mut quoted = false;
    let mut line = first;
    let mut used = 0;
    loop {
        let mut chars = line.chars().peekable();
        let mut continued = false;
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    None => {
                        continued = true;
                        break;
                    }
                    Some(e) => {
                        out.push_str(&pending_space);
                        pending_space.clear();
                        out.push(match e {
                            'n' => '\n',
                            't' => '\t',
                            'b' => '\u{8}',
                            '\\' | '"' => e,
                            _ => return Err(format!("an unknown escape `\\{e}`")),
                        });
                    }
                },
                '"' => {
                    out.push_str(&pending_space);
                    pending_space.clear();
                    quoted = !quoted;
                }
                '#' | ';' if !quoted => break,
                ' ' | '\t' if !quoted => {
                    if !out.is_empty() {
                        pending_space.push(c);
                    }
                }
                '\r' if !quoted && chars.peek().is_none() => {}
                '\0' => return Err("a NUL byte in a value".into()),
                _ => {
                    out.push_str(&pending_space);
                    pending_space.clear();
                    out.push(c);
                }
            }
        }
        if !continued {
            break;
        }
        let Some(next) = more.get(used) else {
            return Err("a continuation at the end of the file".into());
        };
        used += 1;
        line = next;
    }
    if quoted {
        return Err("an unterminated quote".into());
    }
    Ok((out, used))
}

/// Why an entry is not inert (`None`: inert). `core.worktree` is inert here; its target is
/// checked by the caller, which knows where the git dir is.
pub fn danger(e: &Entry) -> Option<String> {
    let s = e.sub.as_deref();
    let ok = match (e.section.as_str(), s, e.key.as_str()) {
        (
            "core",
            None,
            "repositoryformatversion"
            | "filemode"
            | "bare"
            | "logallrefupdates"
            | "ignorecase"
            | "precomposeunicode"
            | "symlinks"
            | "worktree",
        ) => true,
        ("remote", Some(_), "url" | "pushurl") => !transport_runs_code(e),
        ("remote", Some(_), "fetch" | "push" | "tagopt" | "prune" | "mirror") => true,
        ("branch", Some(_), "remote" | "merge" | "pushremote") => true,
        ("submodule", Some(_), "url") => !transport_runs_code(e),
        ("submodule", Some(_), "active") => true,
        ("user", None, "name" | "email") => true,
        ("extensions", None, "objectformat" | "worktreeconfig") => true,
        _ => false,
    };
    (!ok).then(|| e.name())
}

/// `ext::` runs a command; `fd::` talks to a descriptor. Both off by default, but not inert.
fn transport_runs_code(e: &Entry) -> bool {
    let v = e.value.as_deref().unwrap_or("").trim_start();
    let low = v.to_ascii_lowercase();
    low.starts_with("ext::") || low.starts_with("fd::") || v.starts_with('-')
}

/// Serialise entries back into a config file git reads the same way.
pub fn render(entries: &[Entry]) -> String {
    let mut out = String::new();
    let mut last: Option<(&str, Option<&str>)> = None;
    for e in entries {
        let here = (e.section.as_str(), e.sub.as_deref());
        if last != Some(here) {
            match e.sub.as_deref() {
                Some(s) => out.push_str(&format!(
                    "[{} \"{}\"]\n",
                    e.section,
                    s.replace('\\', "\\\\").replace('"', "\\\"")
                )),
                None => out.push_str(&format!("[{}]\n", e.section)),
            }
            last = Some(here);
        }
        match &e.value {
            None => out.push_str(&format!("\t{}\n", e.key)),
            Some(v) => {
                let esc = v
                    .replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n")
                    .replace('\t', "\\t")
                    .replace('\u{8}', "\\b");
                out.push_str(&format!("\t{} = \"{}\"\n", e.key, esc));
            }
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn bad(text: &str) -> Vec<String> {
        parse(text)
            .unwrap()
            .iter()
            .filter_map(danger)
            .collect::<Vec<_>>()
    }

    #[test]
    fn what_git_writes_itself_is_inert() {
        let text = "[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = false\n\
                    \tlogallrefupdates = true\n\tworktree = ../../../sub\n\
                    [remote \"origin\"]\n\turl = https://example.test/r.git\n\
                    \tfetch = +refs/heads/*:refs/remotes/origin/*\n\
                    [branch \"main\"]\n\tremote = origin\n\tmerge = refs/heads/main\n\
                    [submodule \"sub\"]\n\turl = ./sub\n\tactive = true\n\
                    [user]\n\tname = A\n\temail = a@example.test\n";
        assert_eq!(bad(text), Vec::<String>::new());
    }

    #[test]
    fn every_dangerous_key_family_is_refused() {
        for (text, key) in [
            ("[core]\n\tfsmonitor = touch /tmp/x\n", "core.fsmonitor"),
            ("[core]\n\thooksPath = /tmp/h\n", "core.hookspath"),
            ("[core]\n\tsshCommand = sh -c x\n", "core.sshcommand"),
            ("[core]\n\tpager = x\n", "core.pager"),
            ("[core]\n\teditor = x\n", "core.editor"),
            ("[core]\n\taskPass = x\n", "core.askpass"),
            ("[core]\n\tgitProxy = x\n", "core.gitproxy"),
            ("[diff]\n\texternal = x\n", "diff.external"),
            ("[diff \"t\"]\n\ttextconv = x\n", "diff.t.textconv"),
            ("[filter \"f\"]\n\tclean = x\n", "filter.f.clean"),
            ("[filter \"f\"]\n\tsmudge = x\n", "filter.f.smudge"),
            ("[filter \"f\"]\n\tprocess = x\n", "filter.f.process"),
            ("[merge \"m\"]\n\tdriver = x\n", "merge.m.driver"),
            ("[credential]\n\thelper = !x\n", "credential.helper"),
            ("[include]\n\tpath = ../evil\n", "include.path"),
            (
                "[includeIf \"gitdir:/\"]\n\tpath = x\n",
                "includeif.gitdir:/.path",
            ),
            ("[alias]\n\tst = !x\n", "alias.st"),
            ("[gpg]\n\tprogram = x\n", "gpg.program"),
            ("[sequence]\n\teditor = x\n", "sequence.editor"),
            (
                "[uploadpack]\n\tpackObjectsHook = x\n",
                "uploadpack.packobjectshook",
            ),
            ("[submodule \"s\"]\n\tupdate = !x\n", "submodule.s.update"),
            ("[remote \"o\"]\n\tuploadpack = x\n", "remote.o.uploadpack"),
            ("[remote \"o\"]\n\turl = ext::sh -c x\n", "remote.o.url"),
            ("[core \"x\"]\n\tfilemode = true\n", "core.x.filemode"),
            // Odd spellings git accepts.
            ("[CORE] FsMonitor = x\n", "core.fsmonitor"),
            ("  [Core]\n  FSMONITOR=x\n", "core.fsmonitor"),
            ("[core]\n\tfsmonitor\n", "core.fsmonitor"),
            (
                "[core]\n\trepositoryformatversion = 0 \\\n\n\tfsmonitor = x\n",
                "core.fsmonitor",
            ),
            ("[core.x]\n\tfsmonitor = y\n", "core.x.fsmonitor"),
            (
                "[core]bare=false\n[core]fsmonitor=\"touch x\" ; c\n",
                "core.fsmonitor",
            ),
        ] {
            assert!(
                bad(text).contains(&key.to_string()),
                "{text:?} -> {:?}",
                bad(text)
            );
        }
    }

    #[test]
    fn continuation_and_quotes_are_read_as_git_reads_them() {
        let e = parse("[core]\n\tfsmonitor = \"touch \\\n/tmp/m\" # c\n").unwrap();
        assert_eq!(e[0].value.as_deref(), Some("touch /tmp/m"));
        let e = parse("[user]\n\tname = a \"b ; c\" d ; e\n").unwrap();
        assert_eq!(e[0].value.as_deref(), Some("a b ; c d"));
    }

    #[test]
    fn anything_unusual_is_an_error() {
        for text in [
            "fsmonitor = x\n",
            "[core\n",
            "[core \"x\n",
            "[core]\n\t1key = x\n",
            "[core]\n\tkey x\n",
            "[core]\n\tkey = \"x\n",
            "[core]\n\tkey = \\q\n",
            "[core]\n\tkey = x\\",
            "[core \"x\"] junk]\n",
        ] {
            assert!(parse(text).is_err(), "{text:?} parsed");
        }
    }

    #[test]
    fn render_round_trips() {
        let text = "[remote \"o \\\"q\\\"\"]\n\turl = \"a\\tb \\\\ c\"\n[core]\n\tbare\n";
        let e = parse(text).unwrap();
        assert_eq!(parse(&render(&e)).unwrap(), e);
    }
}
