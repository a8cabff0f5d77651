//! Strict parsing of a receive-pack request body (protocol v0/v1, gitprotocol-pack):
//!
//! ```text
//! *PKT("shallow" SP oid)
//! PKT(old SP new SP refname NUL capability-list)
//! *PKT(old SP new SP refname)
//! 0000
//! [ *PKT(push-option) 0000 ]        ; only if the client asked for push-options
//! [ PACK ... ]                      ; absent iff every command is a delete
//! ```

use crate::pktline::{PktError, PktReader, Sideband};

/// All-zero object id (sha1).
pub const ZERO_OID: &str = "0000000000000000000000000000000000000000";
/// The first 12 hex digits of an object id, as messages show it.
pub fn short_oid(oid: &str) -> &str {
    oid.get(..12).unwrap_or(oid)
}

/// Upper bound on commands parsed from one request (the policy limit is usually lower).
pub const MAX_COMMANDS: usize = 10_000;
/// Upper bound on push options in one request.
pub const MAX_PUSH_OPTIONS: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandKind {
    Create,
    Update,
    Delete,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub old: String,
    pub new: String,
    /// Raw bytes of the ref name as sent (validated separately, never normalised).
    pub name: Vec<u8>,
}

impl Command {
    pub fn kind(&self) -> CommandKind {
        if self.new == ZERO_OID {
            CommandKind::Delete
        } else if self.old == ZERO_OID {
            CommandKind::Create
        } else {
            CommandKind::Update
        }
    }

    /// The ref name for messages and policy (lossy for non-UTF-8 names, which are refused anyway).
    pub fn name_str(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities(pub Vec<String>);

impl Capabilities {
    pub fn has(&self, cap: &str) -> bool {
        self.0.iter().any(|c| c == cap)
    }

    pub fn value(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find_map(|c| c.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
    }

    pub fn sideband(&self) -> Sideband {
        if self.has("side-band-64k") {
            Sideband::Large
        } else if self.has("side-band") {
            Sideband::Small
        } else {
            Sideband::None
        }
    }

    pub fn report_status(&self) -> bool {
        self.has("report-status") || self.has("report-status-v2")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushRequest {
    pub shallow: Vec<String>,
    pub commands: Vec<Command>,
    pub caps: Capabilities,
    pub push_options: Vec<String>,
    /// Offset of the pack data in the body (== body length when there is none).
    pub pack_offset: usize,
    pub has_pack: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RequestError {
    #[error("malformed pkt-line: {0}")]
    Pkt(#[from] PktError),
    #[error("empty command list")]
    Empty,
    #[error("push certificates are not accepted")]
    PushCert,
    #[error("malformed command line: {0}")]
    BadCommand(&'static str),
    #[error("capabilities sent twice")]
    DuplicateCaps,
    #[error("too many commands (more than {MAX_COMMANDS})")]
    TooManyCommands,
    #[error("malformed push option")]
    BadPushOption,
    #[error("too many push options (more than {MAX_PUSH_OPTIONS})")]
    TooManyPushOptions,
    #[error("pack data missing")]
    MissingPack,
    #[error("unexpected data after the command list")]
    UnexpectedData,
}

fn is_oid(b: &[u8]) -> bool {
    b.len() == 40 && b.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

fn parse_command(line: &[u8]) -> Result<Command, RequestError> {
    let old = line
        .get(..40)
        .ok_or(RequestError::BadCommand("short line"))?;
    if !is_oid(old) || line.get(40) != Some(&b' ') {
        return Err(RequestError::BadCommand("bad old object id"));
    }
    let new = line
        .get(41..81)
        .ok_or(RequestError::BadCommand("short line"))?;
    if !is_oid(new) || line.get(81) != Some(&b' ') {
        return Err(RequestError::BadCommand("bad new object id"));
    }
    let name = line.get(82..).unwrap_or(&[]);
    if name.is_empty() {
        return Err(RequestError::BadCommand("missing ref name"));
    }
    Ok(Command {
        // is_oid checked: pure ASCII hex.
        old: String::from_utf8_lossy(old).into_owned(),
        new: String::from_utf8_lossy(new).into_owned(),
        name: name.to_vec(),
    })
}

/// Parses only the capability list of the first command, for error reporting when the
/// full parse fails. Returns default capabilities if even that is impossible.
pub fn sniff_caps(body: &[u8]) -> Capabilities {
    let mut r = PktReader::new(body);
    while let Ok(Some(line)) = r.read_line() {
        if line.starts_with(b"shallow ") {
            continue;
        }
        if let Some(pos) = line.iter().position(|&b| b == 0) {
            return split_caps(&line[pos + 1..]);
        }
        break;
    }
    Capabilities::default()
}

fn split_caps(raw: &[u8]) -> Capabilities {
    Capabilities(
        String::from_utf8_lossy(raw)
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
    )
}

/// Parses a full request body.
pub fn parse(body: &[u8]) -> Result<PushRequest, RequestError> {
    parse_inner(body, true)
}

/// Parses the command list (and push options) of a body whose pack was cut off.
pub fn parse_commands_only(body: &[u8]) -> Result<PushRequest, RequestError> {
    parse_inner(body, false)
}

fn parse_inner(body: &[u8], check_pack: bool) -> Result<PushRequest, RequestError> {
    let mut r = PktReader::new(body);
    let mut shallow = Vec::new();
    let mut commands = Vec::new();
    let mut caps = None;
    while let Some(line) = r.read_line()? {
        if commands.is_empty() && caps.is_none() {
            if let Some(oid) = line.strip_prefix(b"shallow ") {
                if !is_oid(oid) {
                    return Err(RequestError::BadCommand("bad shallow line"));
                }
                shallow.push(String::from_utf8_lossy(oid).into_owned());
                continue;
            }
            if line.starts_with(b"push-cert") {
                return Err(RequestError::PushCert);
            }
        }
        let (cmd, cap_part) = match line.iter().position(|&b| b == 0) {
            Some(pos) => (&line[..pos], Some(&line[pos + 1..])),
            None => (line, None),
        };
        match (cap_part, commands.is_empty()) {
            (Some(c), true) => caps = Some(split_caps(c)),
            (Some(_), false) => return Err(RequestError::DuplicateCaps),
            (None, _) => {}
        }
        if commands.len() >= MAX_COMMANDS {
            return Err(RequestError::TooManyCommands);
        }
        commands.push(parse_command(cmd)?);
    }
    if commands.is_empty() {
        return Err(RequestError::Empty);
    }
    let caps = caps.unwrap_or_default();
    let mut push_options = Vec::new();
    if caps.has("push-options") {
        while let Some(line) = r.read_line()? {
            if line.contains(&0) || line.contains(&b'\n') || line.contains(&b'\r') {
                return Err(RequestError::BadPushOption);
            }
            if push_options.len() >= MAX_PUSH_OPTIONS {
                return Err(RequestError::TooManyPushOptions);
            }
            push_options.push(String::from_utf8_lossy(line).into_owned());
        }
    }
    let pack_offset = r.position();
    let rest = r.rest();
    let all_deletes = commands.iter().all(|c| c.kind() == CommandKind::Delete);
    let has_pack = !rest.is_empty();
    if check_pack {
        if all_deletes {
            if has_pack {
                return Err(RequestError::UnexpectedData);
            }
        } else if !rest.starts_with(b"PACK") {
            return Err(RequestError::MissingPack);
        }
    }
    Ok(PushRequest {
        shallow,
        commands,
        caps,
        push_options,
        pack_offset,
        has_pack,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::pktline::{write_data, write_flush};

    const A: &str = "1111111111111111111111111111111111111111";
    const B: &str = "2222222222222222222222222222222222222222";

    fn body(lines: &[&[u8]], options: Option<&[&str]>, pack: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for l in lines {
            write_data(&mut out, l).unwrap();
        }
        write_flush(&mut out);
        if let Some(opts) = options {
            for o in opts {
                write_data(&mut out, format!("{o}\n").as_bytes()).unwrap();
            }
            write_flush(&mut out);
        }
        out.extend_from_slice(pack);
        out
    }

    #[test]
    fn parses_real_shape() {
        let first = format!("{A} {B} refs/heads/main\0 report-status-v2 side-band-64k quiet atomic push-options object-format=sha1 agent=git/2.47.3");
        let second = format!("{ZERO_OID} {B} refs/heads/feature/a\n");
        let b = body(
            &[first.as_bytes(), second.as_bytes()],
            Some(&["ci.skip", "x=y"]),
            b"PACK\0\0\0\x02",
        );
        let req = parse(&b).unwrap();
        assert_eq!(req.commands.len(), 2);
        assert_eq!(req.commands[0].kind(), CommandKind::Update);
        assert_eq!(req.commands[1].kind(), CommandKind::Create);
        assert_eq!(req.commands[1].name, b"refs/heads/feature/a");
        assert!(req.caps.has("atomic"));
        assert_eq!(req.caps.value("object-format"), Some("sha1"));
        assert_eq!(req.caps.sideband(), Sideband::Large);
        assert_eq!(req.push_options, vec!["ci.skip", "x=y"]);
        assert!(req.has_pack);
        assert_eq!(&b[req.pack_offset..req.pack_offset + 4], b"PACK");
        assert_eq!(sniff_caps(&b), req.caps);
    }

    #[test]
    fn shallow_and_delete() {
        let sh = format!("shallow {A}");
        let del = format!("{A} {ZERO_OID} refs/heads/x\0report-status");
        let req = parse(&body(&[sh.as_bytes(), del.as_bytes()], None, b"")).unwrap();
        assert_eq!(req.shallow, vec![A.to_string()]);
        assert_eq!(req.commands[0].kind(), CommandKind::Delete);
        assert!(!req.has_pack);
        // a pack on a delete-only push
        assert_eq!(
            parse(&body(&[del.as_bytes()], None, b"PACK")),
            Err(RequestError::UnexpectedData)
        );
    }

    #[test]
    fn rejects_malformed() {
        let good = format!("{A} {B} refs/heads/x\0report-status");
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"0000".to_vec(), "empty"),
            (body(&[b"push-cert\0report-status"], None, b""), "cert"),
            (
                body(
                    &[format!("{A}  {B} refs/heads/x").as_bytes()],
                    None,
                    b"PACK",
                ),
                "double space",
            ),
            (
                body(
                    &[format!("{} {B} refs/heads/x", "ab".repeat(20).to_uppercase()).as_bytes()],
                    None,
                    b"PACK",
                ),
                "upper hex",
            ),
            (
                body(&[format!("{A} {B} ").as_bytes()], None, b"PACK"),
                "no name",
            ),
            (
                body(&[format!("{A} {B}").as_bytes()], None, b"PACK"),
                "short",
            ),
            (
                body(&[good.as_bytes(), good.as_bytes()], None, b"PACK"),
                "caps twice",
            ),
            (body(&[good.as_bytes()], None, b""), "missing pack"),
            (body(&[good.as_bytes()], None, b"garbage"), "garbage pack"),
            (
                format!(
                    "0001{}",
                    String::from_utf8_lossy(&body(&[good.as_bytes()], None, b"PACK"))
                )
                .into_bytes(),
                "delim",
            ),
            (b"00ffshort".to_vec(), "truncated"),
            (
                body(&[format!("shallow {B}x").as_bytes()], None, b""),
                "bad shallow",
            ),
        ];
        for (b, what) in cases {
            assert!(parse(&b).is_err(), "{what}");
        }
        let with_opts = format!("{A} {B} refs/heads/x\0report-status push-options");
        assert_eq!(
            parse(&body(&[with_opts.as_bytes()], Some(&["a\0b"]), b"PACK")),
            Err(RequestError::BadPushOption)
        );
        let many: Vec<String> = (0..=MAX_PUSH_OPTIONS).map(|i| format!("o{i}")).collect();
        let many_ref: Vec<&str> = many.iter().map(String::as_str).collect();
        assert_eq!(
            parse(&body(&[with_opts.as_bytes()], Some(&many_ref), b"PACK")),
            Err(RequestError::TooManyPushOptions)
        );
    }

    #[test]
    fn keeps_raw_ref_bytes() {
        let line = [
            format!("{A} {B} ").as_bytes(),
            b"refs/heads/a\x01b\0report-status",
        ]
        .concat();
        let req = parse(&body(&[&line], None, b"PACK")).unwrap();
        assert_eq!(req.commands[0].name, b"refs/heads/a\x01b");
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod fuzzish {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// Random mutations of a valid request never panic the parser, the caps sniffer or the
    /// report rewriter.
    #[test]
    fn mutated_requests_never_panic() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
        let a = "1111111111111111111111111111111111111111";
        let mut base = Vec::new();
        let first = format!("{a} {a} refs/heads/main\0report-status side-band-64k push-options\n");
        crate::pktline::write_data(&mut base, first.as_bytes()).unwrap();
        crate::pktline::write_data(
            &mut base,
            format!("{ZERO_OID} {a} refs/heads/x\n").as_bytes(),
        )
        .unwrap();
        base.extend_from_slice(b"0000000aopt=1\n0000PACK\0\0\0\x02\0\0\0\0");
        assert!(parse(&base).is_ok());
        for _ in 0..20_000 {
            let mut b = base.clone();
            for _ in 0..rng.random_range(1..6) {
                let i = rng.random_range(0..b.len());
                match rng.random_range(0..4) {
                    0 => b[i] = rng.random(),
                    1 => {
                        b.remove(i);
                    }
                    2 => b.insert(i, rng.random()),
                    _ => b.truncate(i),
                }
                if b.is_empty() {
                    break;
                }
            }
            let _ = parse(&b);
            let _ = parse_commands_only(&b);
            let _ = sniff_caps(&b);
            let mut rw = crate::report::ReportRewriter::new(crate::pktline::Sideband::Large);
            let mut out = rw.feed(&b);
            out.extend(rw.finish(&std::collections::HashMap::new()));
        }
    }
}
