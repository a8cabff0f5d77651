//! report-status responses (gitprotocol-pack "Report Status"), framed in side-band when
//! the client asked for it, with `remote:` messages on band 2. This is how a refusal must
//! look for `git push` to print `! [remote rejected] <ref> (<reason>)`.

use crate::pktline::{write_band, write_data, write_flush, write_text, Sideband};

/// Longest reason put on an `ng` line.
pub const MAX_REASON: usize = 200;

/// Makes a one-line, printable reason (no NUL/CR/LF/control bytes), bounded in length.
pub fn sanitize(reason: &str) -> String {
    let mut s: String = reason
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if s.len() > MAX_REASON {
        let mut cut = MAX_REASON;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

#[derive(Debug, Clone)]
pub struct Report {
    pub sideband: Sideband,
    pub report_status: bool,
    /// Lines shown as `remote: ...` (band 2).
    pub messages: Vec<String>,
    /// `Ok(())` = "unpack ok"; `Err(e)` = "unpack <e>".
    pub unpack: Result<(), String>,
    /// One entry per command: ref name bytes and `Ok` or `Err(reason)`.
    pub refs: Vec<(Vec<u8>, Result<(), String>)>,
}

impl Report {
    pub fn new(sideband: Sideband, report_status: bool) -> Self {
        Report {
            sideband,
            report_status,
            messages: Vec::new(),
            unpack: Ok(()),
            refs: Vec::new(),
        }
    }

    /// The response body.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for m in &self.messages {
            let line = format!("{}\n", sanitize(m));
            write_band(&mut out, self.sideband, 2, line.as_bytes());
        }
        if self.report_status {
            let mut rep = Vec::new();
            match &self.unpack {
                Ok(()) => write_text(&mut rep, "unpack ok"),
                Err(e) => write_text(&mut rep, &format!("unpack {}", sanitize(e))),
            }
            for (name, res) in &self.refs {
                let mut line = Vec::new();
                match res {
                    Ok(()) => line.extend_from_slice(b"ok "),
                    Err(_) => line.extend_from_slice(b"ng "),
                }
                line.extend_from_slice(name);
                if let Err(reason) = res {
                    line.push(b' ');
                    line.extend_from_slice(sanitize(reason).as_bytes());
                }
                line.push(b'\n');
                // A ref name is at most a few KiB (bounded by the request pkt-line).
                if write_data(&mut rep, &line).is_err() {
                    write_text(&mut rep, "ng refs/invalid ref name too long");
                }
            }
            write_flush(&mut rep);
            write_band(&mut out, self.sideband, 1, &rep);
        }
        if self.sideband != Sideband::None {
            write_flush(&mut out);
        }
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::pktline::{Pkt, PktReader};

    #[test]
    fn sideband_report_shape() {
        let mut r = Report::new(Sideband::Large, true);
        r.messages
            .push("git-gate: refs/heads/main: protected\nsecond".into());
        r.refs
            .push((b"refs/heads/main".to_vec(), Err("protected ref".into())));
        r.refs.push((b"refs/heads/x".to_vec(), Ok(())));
        let out = r.render();
        let mut rd = PktReader::new(&out);
        let Ok(Pkt::Data(msg)) = rd.read() else {
            panic!()
        };
        assert_eq!(msg, b"\x02git-gate: refs/heads/main: protected second\n");
        let Ok(Pkt::Data(band1)) = rd.read() else {
            panic!()
        };
        assert_eq!(band1[0], 1);
        let mut inner = PktReader::new(&band1[1..]);
        assert_eq!(inner.read_line(), Ok(Some(&b"unpack ok"[..])));
        assert_eq!(
            inner.read_line(),
            Ok(Some(&b"ng refs/heads/main protected ref"[..]))
        );
        assert_eq!(inner.read_line(), Ok(Some(&b"ok refs/heads/x"[..])));
        assert_eq!(inner.read_line(), Ok(None));
        assert_eq!(rd.read(), Ok(Pkt::Flush));
        assert!(rd.is_empty());
    }

    #[test]
    fn plain_report() {
        let mut r = Report::new(Sideband::None, true);
        r.messages.push("dropped without sideband".into());
        r.unpack = Err("pack too large".into());
        r.refs
            .push((b"refs/heads/x".to_vec(), Err("pack too large".into())));
        let out = r.render();
        assert_eq!(
            out,
            b"001aunpack pack too large\n0023ng refs/heads/x pack too large\n0000"
        );
    }

    #[test]
    fn sanitize_bounds() {
        assert_eq!(sanitize("a\r\nb\0c"), "a  b c");
        assert!(sanitize(&"é".repeat(500)).len() <= MAX_REASON);
    }
}

/// Rewrites `git receive-pack`'s own report on the way to the client: the generic
/// `ng <ref> pre-receive hook declined` becomes `ng <ref> <git-gate's reason>`. Progress
/// (band 2), errors (band 3) and keepalives pass through as they come; only the band-1
/// report is held back until receive-pack is done. Anything unparsable is passed on verbatim.
#[derive(Debug)]
pub struct ReportRewriter {
    sideband: Sideband,
    pending: Vec<u8>,
    /// Band-1 payload (the nested report), and the same frames verbatim for fallback.
    band1: Vec<u8>,
    band1_raw: Vec<u8>,
    saw_flush: bool,
    passthrough: bool,
}

impl ReportRewriter {
    pub fn new(sideband: Sideband) -> Self {
        ReportRewriter {
            sideband,
            pending: Vec::new(),
            band1: Vec::new(),
            band1_raw: Vec::new(),
            saw_flush: false,
            passthrough: false,
        }
    }

    /// Feeds output of receive-pack; returns what can be sent now.
    pub fn feed(&mut self, data: &[u8]) -> Vec<u8> {
        if self.passthrough {
            return data.to_vec();
        }
        self.pending.extend_from_slice(data);
        if self.sideband == Sideband::None {
            return Vec::new();
        }
        let mut out = Vec::new();
        loop {
            let mut r = crate::pktline::PktReader::new(&self.pending);
            let consumed;
            match r.read() {
                Err(crate::pktline::PktError::Truncated(_)) => break,
                Err(_) => {
                    // Not what we expected: give up rewriting, send everything as is.
                    self.passthrough = true;
                    out.extend_from_slice(&self.band1_raw);
                    if self.saw_flush {
                        out.extend_from_slice(b"0000");
                    }
                    out.append(&mut self.pending);
                    return out;
                }
                Ok(crate::pktline::Pkt::Flush) => {
                    consumed = r.position();
                    self.saw_flush = true;
                }
                Ok(crate::pktline::Pkt::Data(d)) => {
                    consumed = r.position();
                    let frame = &self.pending[..consumed];
                    if self.saw_flush {
                        // Data after the final flush: not the shape we know.
                        self.passthrough = true;
                        out.extend_from_slice(&self.band1_raw);
                        out.extend_from_slice(b"0000");
                        out.append(&mut self.pending);
                        return out;
                    }
                    match d.first() {
                        Some(1) if d.len() > 1 => {
                            self.band1.extend_from_slice(&d[1..]);
                            self.band1_raw.extend_from_slice(frame);
                        }
                        _ => out.extend_from_slice(frame),
                    }
                }
                Ok(_) => {
                    consumed = r.position();
                    let frame = self.pending[..consumed].to_vec();
                    out.extend_from_slice(&frame);
                }
            }
            self.pending.drain(..consumed);
        }
        out
    }

    /// The (rewritten) report and whatever is left, once receive-pack has finished.
    /// `reasons` maps ref names to the reason git-gate refused them.
    pub fn finish(&mut self, reasons: &std::collections::HashMap<Vec<u8>, String>) -> Vec<u8> {
        if self.passthrough {
            return std::mem::take(&mut self.pending);
        }
        let mut out = Vec::new();
        if self.sideband == Sideband::None {
            let raw = std::mem::take(&mut self.pending);
            match rewrite_report(&raw, reasons) {
                Some(r) => out.extend_from_slice(&r),
                None => out.extend_from_slice(&raw),
            }
            return out;
        }
        match rewrite_report(&self.band1, reasons) {
            Some(r) => write_band(&mut out, self.sideband, 1, &r),
            None => out.extend_from_slice(&self.band1_raw),
        }
        if self.saw_flush {
            write_flush(&mut out);
        }
        out.append(&mut self.pending);
        out
    }
}

/// Parses a report (pkt-lines up to a flush) and replaces the reason of hook-declined refs.
fn rewrite_report(
    report: &[u8],
    reasons: &std::collections::HashMap<Vec<u8>, String>,
) -> Option<Vec<u8>> {
    let mut r = crate::pktline::PktReader::new(report);
    let mut out = Vec::new();
    loop {
        match r.read().ok()? {
            crate::pktline::Pkt::Flush => {
                write_flush(&mut out);
                break;
            }
            crate::pktline::Pkt::Data(d) => {
                let line = crate::pktline::strip_lf(d);
                let replaced = line.strip_prefix(b"ng ").and_then(|rest| {
                    let sp = rest.iter().position(|&b| b == b' ')?;
                    let (name, why) = (&rest[..sp], &rest[sp + 1..]);
                    let reason = reasons.get(name)?;
                    (why == b"pre-receive hook declined").then(|| {
                        let mut l = b"ng ".to_vec();
                        l.extend_from_slice(name);
                        l.push(b' ');
                        l.extend_from_slice(sanitize(reason).as_bytes());
                        l.push(b'\n');
                        l
                    })
                });
                match replaced {
                    Some(l) => write_data(&mut out, &l).ok()?,
                    None => write_data(&mut out, d).ok()?,
                }
            }
            _ => return None,
        }
    }
    if !r.is_empty() {
        out.extend_from_slice(r.rest());
    }
    Some(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod rewrite_tests {
    use super::*;
    use std::collections::HashMap;

    fn git_style_output() -> Vec<u8> {
        let mut rep = Vec::new();
        write_text(&mut rep, "unpack ok");
        write_text(&mut rep, "ng refs/heads/a pre-receive hook declined");
        write_text(&mut rep, "ok refs/heads/b");
        write_flush(&mut rep);
        let mut out = Vec::new();
        write_band(&mut out, Sideband::Large, 2, b"git-gate: something\n");
        out.extend_from_slice(b"0005\x01"); // keepalive
        write_band(&mut out, Sideband::Large, 1, &rep);
        write_flush(&mut out);
        out
    }

    #[test]
    fn rewrites_declined_reason_byte_by_byte() {
        let input = git_style_output();
        let mut reasons = HashMap::new();
        reasons.insert(b"refs/heads/a".to_vec(), "secret detected\nx".to_string());
        let mut rw = ReportRewriter::new(Sideband::Large);
        let mut out = Vec::new();
        for b in &input {
            out.extend(rw.feed(std::slice::from_ref(b)));
        }
        // progress and keepalive went out before the end
        assert!(out.starts_with(b"0019\x02git-gate: something\n0005\x01"));
        out.extend(rw.finish(&reasons));
        let (lines, _) = decode(&out);
        assert_eq!(
            lines,
            vec![
                "unpack ok",
                "ng refs/heads/a secret detected x",
                "ok refs/heads/b"
            ]
        );
        assert!(out.ends_with(b"0000"));
    }

    #[test]
    fn garbage_passes_verbatim() {
        let mut rw = ReportRewriter::new(Sideband::Large);
        let mut out = rw.feed(b"zzzz not pkt");
        out.extend(rw.finish(&HashMap::new()));
        assert_eq!(out, b"zzzz not pkt");
        let mut rw = ReportRewriter::new(Sideband::None);
        let mut rep = Vec::new();
        write_text(&mut rep, "unpack ok");
        write_text(&mut rep, "ng refs/heads/a pre-receive hook declined");
        write_flush(&mut rep);
        assert!(rw.feed(&rep).is_empty());
        let mut reasons = HashMap::new();
        reasons.insert(b"refs/heads/a".to_vec(), "nope".to_string());
        let out = rw.finish(&reasons);
        assert!(String::from_utf8_lossy(&out).contains("ng refs/heads/a nope"));
    }

    fn decode(resp: &[u8]) -> (Vec<String>, String) {
        let mut band1 = Vec::new();
        let mut band2 = String::new();
        let mut r = crate::pktline::PktReader::new(resp);
        while let Ok(crate::pktline::Pkt::Data(d)) = r.read() {
            match d.first() {
                Some(1) => band1.extend_from_slice(&d[1..]),
                Some(2) => band2.push_str(&String::from_utf8_lossy(&d[1..])),
                _ => {}
            }
        }
        let mut lines = Vec::new();
        let mut r = crate::pktline::PktReader::new(&band1);
        while let Ok(Some(l)) = r.read_line() {
            lines.push(String::from_utf8_lossy(l).to_string());
        }
        (lines, band2)
    }
}
