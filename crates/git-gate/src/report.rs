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
