#![no_main]
//! git-gate receive-pack request parsing. Never panics; a parsed request is well formed,
//! agrees with `parse_commands_only` and `sniff_caps`, and re-serialising it parses back
//! to the same request.
use git_gate::pktline::{write_data, write_flush};
use git_gate::request::{
    parse, parse_commands_only, sniff_caps, CommandKind, PushRequest, MAX_COMMANDS,
    MAX_PUSH_OPTIONS,
};
use libfuzzer_sys::fuzz_target;

fn is_oid(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

fn check(req: &PushRequest, body: &[u8], full: bool) {
    assert!(!req.commands.is_empty() && req.commands.len() <= MAX_COMMANDS);
    assert!(req.push_options.len() <= MAX_PUSH_OPTIONS);
    assert!(req.push_options.is_empty() || req.caps.has("push-options"));
    assert!(req.pack_offset <= body.len());
    assert_eq!(req.has_pack, req.pack_offset < body.len());
    for s in &req.shallow {
        assert!(is_oid(s));
    }
    for c in &req.commands {
        assert!(is_oid(&c.old) && is_oid(&c.new));
        assert!(!c.name.is_empty() && !c.name.contains(&0));
        let _ = c.name_str();
    }
    if full {
        let all_deletes = req.commands.iter().all(|c| c.kind() == CommandKind::Delete);
        if all_deletes {
            assert!(!req.has_pack);
        } else {
            assert!(body[req.pack_offset..].starts_with(b"PACK"));
        }
    }
}

/// Serialises the request the way a git client would; `None` if a line does not fit.
fn serialise(req: &PushRequest, body: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    for s in &req.shallow {
        write_data(&mut out, format!("shallow {s}\n").as_bytes()).ok()?;
    }
    for (i, c) in req.commands.iter().enumerate() {
        let mut line = format!("{} {} ", c.old, c.new).into_bytes();
        line.extend_from_slice(&c.name);
        if i == 0 && !req.caps.0.is_empty() {
            line.push(0);
            line.extend_from_slice(req.caps.0.join(" ").as_bytes());
        }
        line.push(b'\n');
        write_data(&mut out, &line).ok()?;
    }
    write_flush(&mut out);
    if req.caps.has("push-options") {
        for o in &req.push_options {
            write_data(&mut out, format!("{o}\n").as_bytes()).ok()?;
        }
        write_flush(&mut out);
    }
    out.extend_from_slice(&body[req.pack_offset..]);
    Some(out)
}

fuzz_target!(|body: &[u8]| {
    let full = parse(body);
    let partial = parse_commands_only(body);
    if let Ok(req) = &partial {
        check(req, body, false);
        assert_eq!(
            sniff_caps(body),
            req.caps,
            "sniff_caps disagrees with parse"
        );
        if let Some(again) = serialise(req, body) {
            let back = parse_commands_only(&again).expect("re-serialised request parses");
            assert_eq!(back.shallow, req.shallow);
            assert_eq!(back.commands, req.commands);
            assert_eq!(back.caps, req.caps);
            assert_eq!(back.push_options, req.push_options);
            assert_eq!(&again[back.pack_offset..], &body[req.pack_offset..]);
            assert_eq!(parse(&again).is_ok(), full.is_ok());
        }
    }
    match &full {
        Ok(req) => {
            check(req, body, true);
            assert_eq!(
                partial.as_ref(),
                Ok(req),
                "full parse and commands-only differ"
            );
        }
        Err(e) => {
            // Only the pack checks may fail where the commands parse.
            if partial.is_ok() {
                use git_gate::request::RequestError::*;
                assert!(matches!(e, MissingPack | UnexpectedData), "{e:?}");
            }
        }
    }
});
