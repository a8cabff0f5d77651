//! Where in a git object a secret can hide, besides blob contents: tree entry names, the
//! header fields of commits and tags (identities, the tag name) and their messages. Each
//! object is cut into labelled parts so a finding can say where it was, never what.

/// A labelled piece of an object to scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// `tree entry name`, `commit message`, `tag name`, ... (shown to the agent).
    pub location: &'static str,
    pub data: Vec<u8>,
}

fn part(location: &'static str, data: &[u8]) -> Part {
    Part {
        location,
        data: data.to_vec(),
    }
}

/// The entry names of a raw tree object, one per line (each name is one path component).
/// `None` if the tree is malformed (then the caller scans the raw bytes).
pub fn tree_names(raw: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut rest = raw;
    while !rest.is_empty() {
        let sp = rest.iter().position(|&b| b == b' ')?;
        let nul = rest.iter().position(|&b| b == 0)?;
        if nul < sp {
            return None;
        }
        out.extend_from_slice(&rest[sp + 1..nul]);
        out.push(b'\n');
        rest = rest.get(nul + 1 + 20..)?;
    }
    Some(out)
}

/// A header field: its key and its value (continuation lines joined with `\n`).
type Field<'a> = (&'a [u8], Vec<u8>);

/// Header fields and the message of a commit or tag.
fn split_fields(raw: &[u8]) -> (Vec<Field<'_>>, &[u8]) {
    let (head, msg) = match raw.windows(2).position(|w| w == b"\n\n") {
        Some(p) => (&raw[..p + 1], &raw[p + 2..]),
        None => (raw, &raw[raw.len()..]),
    };
    let mut fields: Vec<Field<'_>> = Vec::new();
    for line in head.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        match (line.first(), fields.last_mut()) {
            // A continuation line (multi-line gpgsig, mergetag) belongs to the field above.
            (Some(b' '), Some((_, value))) => {
                value.push(b'\n');
                value.extend_from_slice(&line[1..]);
            }
            _ => {
                let (key, value) = match line.iter().position(|&b| b == b' ') {
                    Some(p) => (&line[..p], &line[p + 1..]),
                    None => (line, &line[line.len()..]),
                };
                fields.push((key, value.to_vec()));
            }
        }
    }
    (fields, msg)
}

/// The parts of a commit: author/committer identities, other header fields, the message.
pub fn commit_parts(raw: &[u8]) -> Vec<Part> {
    let (fields, msg) = split_fields(raw);
    let mut parts: Vec<Part> = fields
        .iter()
        .map(|(key, value)| match *key {
            b"author" | b"committer" => part("commit author/committer", value),
            _ => part("commit header", value),
        })
        .collect();
    parts.push(part("commit message", msg));
    parts
}

/// The parts of an annotated tag: its name, the tagger, other header fields, the message.
pub fn tag_parts(raw: &[u8]) -> Vec<Part> {
    let (fields, msg) = split_fields(raw);
    let mut parts: Vec<Part> = fields
        .iter()
        .map(|(key, value)| match *key {
            b"tag" => part("tag name", value),
            b"tagger" => part("tag tagger", value),
            _ => part("tag header", value),
        })
        .collect();
    parts.push(part("tag message", msg));
    parts
}

/// The parts of any non-blob object worth scanning; the whole raw object is always the
/// last part, so nothing is missed if a secret straddles two parts.
pub fn parts(kind: &str, raw: &[u8]) -> Vec<Part> {
    let mut out = match kind {
        "tree" => match tree_names(raw) {
            Some(names) => vec![Part {
                location: "tree entry name",
                data: names,
            }],
            None => Vec::new(),
        },
        "commit" => commit_parts(raw),
        "tag" => tag_parts(raw),
        _ => Vec::new(),
    };
    out.push(part(
        match kind {
            "tree" => "tree object",
            "tag" => "tag object",
            _ => "commit object",
        },
        raw,
    ));
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn entry(mode: &str, name: &[u8]) -> Vec<u8> {
        let mut e = format!("{mode} ").into_bytes();
        e.extend_from_slice(name);
        e.push(0);
        e.extend_from_slice(&[0xab; 20]);
        e
    }

    #[test]
    fn tree_names_one_per_line() {
        let raw = [
            entry("100644", b"README"),
            entry("40000", b"dir with space"),
            entry("160000", b"sub"),
        ]
        .concat();
        assert_eq!(
            tree_names(&raw).unwrap(),
            b"README\ndir with space\nsub\n".to_vec()
        );
        // the 20-byte ids (which may contain spaces and NULs) are skipped, not read as names
        let tricky = [entry("100644", b"a"), entry("100644", b"b")].concat();
        let mut t = tricky.clone();
        t[9] = b' ';
        t[10] = 0;
        assert_eq!(tree_names(&t).unwrap(), b"a\nb\n".to_vec());
        assert_eq!(tree_names(&tricky[..tricky.len() - 1]), None);
        assert_eq!(tree_names(b"100644 noterminator"), None);
        assert_eq!(tree_names(b""), Some(Vec::new()));
    }

    #[test]
    fn commit_fields_and_message() {
        let raw = b"tree 1111\nparent 2222\nauthor A <a@x> 1 +0000\ncommitter C <c@x> 1 +0000\ngpgsig -----BEGIN\n line2\n -----END\n\nsubject\n\nbody\n";
        let p = commit_parts(raw);
        let find = |loc: &str| {
            p.iter()
                .filter(|x| x.location == loc)
                .map(|x| String::from_utf8_lossy(&x.data).into_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            find("commit author/committer"),
            vec!["A <a@x> 1 +0000", "C <c@x> 1 +0000"]
        );
        assert_eq!(find("commit message"), vec!["subject\n\nbody\n"]);
        assert!(find("commit header").contains(&"-----BEGIN\nline2\n-----END".to_string()));
        let all = parts("commit", raw);
        assert_eq!(all.last().unwrap().data, raw.to_vec());
    }

    #[test]
    fn tag_fields() {
        let raw = b"object 1111\ntype commit\ntag v1\ntagger T <t@x> 1 +0000\n\nrelease notes\n";
        let p = tag_parts(raw);
        assert!(p
            .iter()
            .any(|x| x.location == "tag name" && x.data == b"v1".to_vec()));
        assert!(p
            .iter()
            .any(|x| x.location == "tag message" && x.data == b"release notes\n".to_vec()));
        // no blank line: everything is header, the message is empty
        let p = tag_parts(b"object 1\ntag x");
        assert_eq!(p.last().unwrap().data, b"".to_vec());
    }
}
