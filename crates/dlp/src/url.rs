//! URL and header scanning, and URL redaction for audit lines.

use crate::decode::{b64_decode, percent_decode};
use crate::engine::dedup;
use crate::entropy::shannon;
use crate::hit::Hit;
use crate::{Detector, Encoding, Finding, HIGH_ENTROPY};

/// Characters removed in the "noise-stripped" joined views (a secret split
/// into pieces separated by these).
fn is_noise(b: u8) -> bool {
    matches!(
        b,
        b'.' | b'/' | b' ' | b'+' | b',' | b';' | b'|' | b':' | b'~'
    )
}

/// Components (start, end) of `s[from..to]` split on any of `seps`.
fn split_ranges(s: &[u8], from: usize, to: usize, seps: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = from;
    for (i, b) in s.iter().enumerate().take(to).skip(from) {
        if seps.contains(b) {
            if i > start {
                out.push((start, i));
            }
            start = i + 1;
        }
    }
    if to > start {
        out.push((start, to));
    }
    out
}

struct Parts {
    /// (raw range, decoded bytes)
    items: Vec<((usize, usize), Vec<u8>)>,
}

impl Parts {
    fn joined(&self, strip_noise: bool) -> (Vec<u8>, Vec<usize>) {
        let mut v = Vec::new();
        let mut owner = Vec::new();
        for (k, (_, d)) in self.items.iter().enumerate() {
            for &b in d {
                if strip_noise && is_noise(b) {
                    continue;
                }
                v.push(b);
                owner.push(k);
            }
        }
        (v, owner)
    }
}

fn scan_component(
    det: &Detector,
    raw: &[u8],
    (s, e): (usize, usize),
    decoded: &[u8],
    hits: &mut Vec<Hit>,
) {
    let changed = decoded != &raw[s..e];
    for h in det.inner.engine.scan(decoded, false) {
        let enc = if changed && h.enc == Encoding::Raw {
            Encoding::Percent
        } else {
            h.enc
        };
        // Decoded offsets do not map 1:1 to the raw component: report it whole
        // unless nothing was decoded.
        let (hs, he) = if changed {
            (s, e)
        } else {
            (s + h.start, s + h.end)
        };
        hits.push(Hit {
            det: h.det,
            start: hs,
            end: he,
            enc,
        });
    }
    let o = &det.inner.opts;
    if det.inner.entropy_urls
        && decoded.len() >= o.entropy_min_len
        && shannon(decoded) > o.entropy_threshold
    {
        hits.push(Hit {
            det: HIGH_ENTROPY,
            start: s,
            end: e,
            enc: if changed {
                Encoding::Percent
            } else {
                Encoding::Raw
            },
        });
    }
}

fn scan_joined(det: &Detector, parts: &Parts, hits: &mut Vec<Hit>) {
    if parts.items.is_empty() {
        return;
    }
    for strip in [false, true] {
        if !strip && parts.items.len() < 2 {
            continue;
        }
        let (v, owner) = parts.joined(strip);
        for h in det.inner.engine.scan_opts(&v, false, true) {
            let first = owner.get(h.start).copied().unwrap_or(0);
            let last = owner.get(h.end.saturating_sub(1)).copied().unwrap_or(first);
            let (s, _) = parts.items[first].0;
            let (_, e) = parts.items[last].0;
            let enc = if first == last && h.enc != Encoding::Raw {
                h.enc
            } else {
                Encoding::Split
            };
            hits.push(Hit {
                det: h.det,
                start: s,
                end: e,
                enc,
            });
        }
    }
    // Two pieces with junk components between them: every ordered pair of
    // the first few components.
    let k = parts.items.len().min(MAX_PAIR_PARTS);
    if k >= 3 {
        let mut v = Vec::new();
        for i in 0..k {
            for j in i + 1..k {
                v.clear();
                v.extend_from_slice(&parts.items[i].1);
                v.extend_from_slice(&parts.items[j].1);
                for h in det.inner.engine.scan_opts(&v, false, true) {
                    hits.push(Hit {
                        det: h.det,
                        start: parts.items[i].0 .0,
                        end: parts.items[j].0 .1,
                        enc: Encoding::Split,
                    });
                }
            }
        }
    }
}

/// A query value that is a JSON document (`?q={"a":"AKIA…","b":"…"}`): its
/// sibling string values joined, as the stream scanner does for JSON bodies
/// (same bounds, raw tokens and known secrets only); a finding covers the
/// whole value.
pub(crate) fn json_siblings(
    det: &Detector,
    (s, e): (usize, usize),
    value: &[u8],
    hits: &mut Vec<Hit>,
) {
    let batch = crate::json_join::JsonJoin::joins_of(value);
    if batch.is_empty() {
        return;
    }
    let mut found = Vec::new();
    det.inner.engine.scan_joins(&batch, &mut found);
    hits.extend(found.into_iter().map(|h| Hit {
        det: h.det,
        start: s,
        end: e,
        enc: Encoding::Split,
    }));
}

/// Components considered for pairwise joining (k*(k-1)/2 extra scans).
const MAX_PAIR_PARTS: usize = 8;

pub(crate) fn scan_url(det: &Detector, pq: &str) -> Vec<Finding> {
    let raw = pq.as_bytes();
    let mut hits = det.inner.engine.scan(raw, false);
    let end = memchr::memchr(b'#', raw).unwrap_or(raw.len());
    let qpos = memchr::memchr(b'?', &raw[..end]);
    let path_end = qpos.unwrap_or(end);

    let mut path = Parts { items: Vec::new() };
    for r in split_ranges(raw, 0, path_end, b"/") {
        let d = percent_decode(&raw[r.0..r.1], false);
        scan_component(det, raw, r, &d, &mut hits);
        path.items.push((r, d));
    }
    scan_joined(det, &path, &mut hits);

    let mut amz_credential: Vec<(usize, usize)> = Vec::new();
    if let Some(q) = qpos {
        let mut values = Parts { items: Vec::new() };
        for (ps, pe) in split_ranges(raw, q + 1, end, b"&;") {
            let eq = raw[ps..pe].iter().position(|&b| b == b'=').map(|i| ps + i);
            let (key, val) = match eq {
                Some(i) => ((ps, i), Some((i + 1, pe))),
                None => ((ps, pe), None),
            };
            let kd = percent_decode(&raw[key.0..key.1], true);
            if key.1 > key.0 {
                scan_component(det, raw, key, &kd, &mut hits);
            }
            if let Some(v) = val {
                if v.1 > v.0 {
                    let vd = percent_decode(&raw[v.0..v.1], true);
                    scan_component(det, raw, v, &vd, &mut hits);
                    json_siblings(det, v, &vd, &mut hits);
                    if kd.eq_ignore_ascii_case(b"x-amz-credential") {
                        amz_credential.push(v);
                    } else {
                        values.items.push((v, vd));
                    }
                }
            }
        }
        scan_joined(det, &values, &mut hits);
    }
    // An AWS key id in a SigV4 presigned URL (X-Amz-Credential) is the
    // public half of a signature the server issued, not a leak.
    hits.retain(|h| {
        !(h.det == "aws-access-key-id"
            && amz_credential
                .iter()
                .any(|&(s, e)| h.start >= s && h.end <= e))
    });
    dedup(hits)
        .into_iter()
        .map(|h| Finding::from_hit(h, 0))
        .collect()
}

pub(crate) fn scan_header(det: &Detector, name: &str, value: &[u8]) -> Vec<Finding> {
    let mut hits = det.inner.engine.scan(value, false);
    let lname = name.to_ascii_lowercase();
    if lname == "authorization" || lname == "proxy-authorization" {
        let trimmed_start = value
            .iter()
            .position(|b| !b.is_ascii_whitespace())
            .unwrap_or(value.len());
        let rest = &value[trimmed_start..];
        if rest.len() > 6 && rest[..6].eq_ignore_ascii_case(b"basic ") {
            let cs = trimmed_start
                + 6
                + rest[6..]
                    .iter()
                    .take_while(|b| b.is_ascii_whitespace())
                    .count();
            let ce = cs
                + value[cs..]
                    .iter()
                    .take_while(|&&b| crate::decode::B64[b as usize] != 255)
                    .count();
            let mut dec = Vec::new();
            b64_decode(&value[cs..ce], &mut dec);
            for h in det.inner.engine.scan(&dec, false) {
                hits.push(Hit {
                    det: h.det,
                    start: cs,
                    end: ce,
                    enc: Encoding::Base64,
                });
            }
            // The password alone (after the first ':').
            if let Some(c) = memchr::memchr(b':', &dec) {
                for h in det.inner.engine.scan(&dec[c + 1..], false) {
                    hits.push(Hit {
                        det: h.det,
                        start: cs,
                        end: ce,
                        enc: Encoding::Base64,
                    });
                }
            }
        }
    }
    if lname == "cookie" {
        for (s, e) in split_ranges(value, 0, value.len(), b";") {
            if let Some(i) = value[s..e].iter().position(|&b| b == b'=') {
                let vs = s + i + 1;
                if e > vs {
                    let d = percent_decode(&value[vs..e], false);
                    if d != value[vs..e] {
                        for h in det.inner.engine.scan(&d, false) {
                            hits.push(Hit {
                                det: h.det,
                                start: vs,
                                end: e,
                                enc: Encoding::Percent,
                            });
                        }
                    }
                }
            }
        }
    }
    let mut out: Vec<Finding> = dedup(hits)
        .into_iter()
        .map(|h| Finding::from_hit(h, 0))
        .collect();
    out.extend(
        det.inner
            .engine
            .scan(name.as_bytes(), false)
            .into_iter()
            .map(|h| Finding::from_hit(h, 0)),
    );
    out
}

/// Replace every finding's byte range in `path_and_query` with `[REDACTED]`
/// (ranges are merged and widened to character boundaries; a zero-length
/// finding redacts to the end). Use with findings from `scan_url` on the
/// same string.
pub fn redact_url(path_and_query: &str, findings: &[Finding]) -> String {
    let n = path_and_query.len();
    let mut ranges: Vec<(usize, usize)> = findings
        .iter()
        .map(|f| {
            let s = f.offset.min(n);
            let e = if f.len == 0 {
                n
            } else {
                f.offset.saturating_add(f.len).min(n)
            };
            (s, e)
        })
        .collect();
    ranges.sort_unstable();
    let mut merged: Vec<(usize, usize)> = Vec::new();
    for (mut s, mut e) in ranges {
        while s > 0 && !path_and_query.is_char_boundary(s) {
            s -= 1;
        }
        while e < n && !path_and_query.is_char_boundary(e) {
            e += 1;
        }
        if e <= s {
            continue;
        }
        match merged.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    let mut out = String::with_capacity(n);
    let mut pos = 0;
    for (s, e) in merged {
        out.push_str(&path_and_query[pos..s]);
        out.push_str("[REDACTED]");
        pos = e;
    }
    out.push_str(&path_and_query[pos..]);
    out
}

/// Detectors whose tokens are all upper case: a host label is case-insensitive
/// (DNS and the proxy see it in any case), so they are also run on an
/// upper-cased copy of the host. Only these: upper-casing would forge the
/// shape of mixed-case tokens.
const UPPER_SHAPED: &[&str] = &["aws-access-key-id", "newrelic-api-key", "age-secret-key"];
/// Their anchors, lower-cased: the upper-cased views are only scanned when
/// one occurs (kept in step with the patterns by a test).
const UPPER_ANCHORS: &[&[u8]] = &[
    b"akia",
    b"asia",
    b"agpa",
    b"aida",
    b"aroa",
    b"aipa",
    b"anpa",
    b"anva",
    b"abia",
    b"acca",
    b"a3t",
    b"nrak-",
    b"age-secret-key-",
];

/// Whether any of [`UPPER_ANCHORS`] occurs in `hay`, in any case (one
/// automaton pass, no lower-cased copy).
fn upper_anchor_in(hay: &[u8]) -> bool {
    static AC: std::sync::OnceLock<Option<aho_corasick::AhoCorasick>> = std::sync::OnceLock::new();
    let ac = AC.get_or_init(|| {
        aho_corasick::AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .kind(Some(aho_corasick::AhoCorasickKind::DFA))
            .build(UPPER_ANCHORS)
            .ok()
    });
    match ac {
        Some(ac) => ac.is_match(hay),
        // Cannot happen for this small literal set; scan the upper-cased
        // view anyway rather than skip it.
        None => true,
    }
}

/// A hit in an upper-cased view counts only for an upper-case-shaped
/// detector and only if its body has a digit: upper-cased words glued over
/// labels (`akiaflowers.example`) fit `AKIA[A-Z2-7]{16}`; a real key id
/// has a digit in all but a few percent of cases.
fn upper_hit_ok(up: &[u8], h: &Hit) -> bool {
    UPPER_SHAPED.contains(&h.det)
        && up
            .get(h.start + 4..h.end)
            .is_some_and(|b| b.iter().any(u8::is_ascii_digit))
}

/// Most labels whose contiguous runs are joined (a DNS name has at most 127).
/// Past it all labels are also joined at once.
const MAX_HOST_LABELS: usize = 128;
/// Longest run of labels joined (a DNS name is at most 253 bytes).
const MAX_RUN_BYTES: usize = 256;

pub(crate) fn scan_host(det: &Detector, host: &str) -> Vec<Finding> {
    let raw = host.as_bytes();
    let mut hits = det.inner.engine.scan(raw, false);
    // A secret split over DNS labels, with other labels around it: every
    // contiguous run of two or more labels joined without dots, all runs in
    // one view, one run per line (so each run has clean boundaries).
    let labels = split_ranges(raw, 0, raw.len(), b".");
    let k = labels.len().min(MAX_HOST_LABELS);
    let mut view = Vec::with_capacity(raw.len() * 2);
    // (offset in view, span in host) of each line.
    let mut lines: Vec<(usize, (usize, usize))> = vec![(0, (0, raw.len()))];
    view.extend_from_slice(raw);
    view.push(b'\n');
    for i in 0..k {
        let mut len = labels[i].1 - labels[i].0;
        for j in i + 1..k {
            len += labels[j].1 - labels[j].0;
            if len > MAX_RUN_BYTES {
                break;
            }
            lines.push((view.len(), (labels[i].0, labels[j].1)));
            for &(s, e) in &labels[i..=j] {
                view.extend_from_slice(&raw[s..e]);
            }
            view.push(b'\n');
        }
    }
    if labels.len() > k {
        lines.push((view.len(), (0, raw.len())));
        view.extend(raw.iter().copied().filter(|&b| b != b'.'));
        view.push(b'\n');
    }
    let span = |at: usize| {
        let l = lines.partition_point(|&(o, _)| o <= at);
        lines[l.saturating_sub(1)].1
    };
    let add = |h: &Hit, hits: &mut Vec<Hit>| {
        let (start, end) = span(h.start);
        // The first line is the host itself: only the upper-cased copy is new.
        let enc = if start == 0 && end == raw.len() && h.start < raw.len() {
            Encoding::Raw
        } else {
            Encoding::Split
        };
        hits.push(Hit {
            det: h.det,
            start,
            end,
            enc,
        });
    };
    let runs = &view[raw.len() + 1..];
    if !runs.is_empty() {
        for mut h in det.inner.engine.scan_opts(runs, false, true) {
            h.start += raw.len() + 1;
            add(&h, &mut hits);
        }
    }
    if upper_anchor_in(&view) {
        let up = view.to_ascii_uppercase();
        for h in det.inner.engine.scan_opts(&up, false, true) {
            if upper_hit_ok(&up, &h) {
                add(&h, &mut hits);
            }
        }
    }
    dedup(hits)
        .into_iter()
        .map(|h| Finding::from_hit(h, 0))
        .collect()
}

#[cfg(test)]
mod host_tests {
    use super::*;

    #[test]
    fn upper_anchors_cover_the_upper_shaped_patterns() {
        for d in crate::patterns::PATTERNS {
            if UPPER_SHAPED.contains(&d.id) {
                for a in d.anchors {
                    let a = a.to_ascii_lowercase();
                    assert!(
                        UPPER_ANCHORS.iter().any(|u| a.as_bytes().starts_with(u)),
                        "{} anchor {a}",
                        d.id
                    );
                }
            }
        }
    }
}
