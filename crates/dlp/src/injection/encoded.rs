//! Instructions wrapped in base64, base64url, hex or percent-encoding: runs of the alphabet are decoded
//! (bounded pieces, every alignment when a run's start is out of view), printable islands of
//! the result are read again as hidden text, three times at most (base64 in base64 in base64).

use super::scanner::{Scanner, MAX_DEPTH};
use super::ContentKind;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;

/// Shortest run decoded (18 bytes of base64).
const MIN_RUN: usize = 24;
/// Encoded text before a judged region decoded with it (an encoded instruction shorter than
/// this is always decoded whole).
const OVERLAP: usize = 512;
/// Shortest printable island read again.
const MIN_ISLAND: usize = 16;

const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Bytes of the base64 and base64url alphabets (with padding), as a lookup table.
const ALPHABET: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let c = i as u8;
        t[i] = c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'-' | b'_' | b'=');
        i += 1;
    }
    t
};

fn base64_byte(c: u8) -> bool {
    ALPHABET[c as usize]
}

/// Spans (normalised positions) of encoded runs overlapping `[from, to)` that decode to an
/// instruction.
pub(crate) fn find(s: &Scanner, from: usize, to: usize) -> Vec<(usize, usize)> {
    let norm = &s.norm;
    let base = norm.base;
    let lo = from.saturating_sub(OVERLAP).max(base);
    let text = &norm.cased[lo - base..to - base];
    let mut out = Vec::new();
    // `i` is always at a run boundary (the start, or after a byte not of the alphabet). A
    // run long enough to decode covers the byte `MIN_RUN - 1` ahead, so most text is
    // passed over by looking at one byte in `MIN_RUN`.
    let mut i = 0;
    while i + MIN_RUN <= text.len() {
        let probe = i + MIN_RUN - 1;
        if !base64_byte(text[probe]) {
            i = probe + 1;
            continue;
        }
        if let Some(p) = text[i..probe].iter().rposition(|&c| !base64_byte(c)) {
            // The run holding the probe starts after `i + p`: probe again from there.
            i += p + 1;
            continue;
        }
        let start = i;
        i = probe + 1;
        while i < text.len() && base64_byte(text[i]) {
            i += 1;
        }
        let (run_start, run_end) = (lo + start, lo + i);
        // Past the run's end (a byte not of the alphabet, or the end of the text).
        let run = start..i;
        i += 1;
        if run_end <= from {
            continue;
        }
        // The run may have begun before the kept window: its alignment is unknown.
        let continued = start == 0 && lo > base && base64_byte(norm.cased[lo - 1 - base]);
        let piece = &text[run];
        if decodes_to_instruction(piece, continued, s.depth) {
            out.push((run_start, run_end));
        }
    }
    percent_encoded(text, lo, from, s.depth, &mut out);
    out
}

/// Shortest number of `%XX` escapes that make a token percent-encoded text.
const MIN_ESCAPES: usize = 3;

/// Tokens (no whitespace) with several `%XX` escapes (`ignore%20previous%20instructions`),
/// decoded and read again.
fn percent_encoded(text: &[u8], lo: usize, from: usize, depth: u8, out: &mut Vec<(usize, usize)>) {
    let mut i = 0;
    while let Some(p) = memchr::memchr(b'%', &text[i..]) {
        let pct = i + p;
        let start = text[..pct]
            .iter()
            .rposition(|c| c.is_ascii_whitespace())
            .map_or(0, |w| w + 1);
        let end = text[pct..]
            .iter()
            .position(|c| c.is_ascii_whitespace())
            .map_or(text.len(), |w| pct + w);
        i = end;
        if lo + end <= from {
            continue;
        }
        let token = &text[start..end];
        let mut decoded = Vec::with_capacity(token.len());
        let mut escapes = 0;
        let mut j = 0;
        while j < token.len() {
            let hex = token.get(j + 1..j + 3).and_then(|h| {
                std::str::from_utf8(h)
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
            });
            match (token[j], hex) {
                (b'%', Some(b)) => {
                    decoded.push(b);
                    escapes += 1;
                    j += 3;
                }
                (b'+', _) => {
                    decoded.push(b' ');
                    j += 1;
                }
                (c, _) => {
                    decoded.push(c);
                    j += 1;
                }
            }
        }
        if escapes >= MIN_ESCAPES && islands_instruct(&decoded, depth) {
            out.push((lo + start, lo + end));
        }
        if i >= text.len() {
            break;
        }
    }
}

fn decodes_to_instruction(piece: &[u8], continued: bool, depth: u8) -> bool {
    let tries = if continued { 4 } else { 1 };
    let hex = piece.len() >= 32 && piece.iter().all(|c| c.is_ascii_hexdigit());
    for skip in 0..tries {
        let Some(p) = piece.get(skip..) else { break };
        let cleaned: Vec<u8> = p
            .iter()
            .filter(|&&c| c != b'=')
            .map(|&c| match c {
                b'-' => b'+',
                b'_' => b'/',
                c => c,
            })
            .collect();
        let usable = cleaned.len() - cleaned.len() % 4;
        let mut decoded = Vec::new();
        if LENIENT.decode_vec(&cleaned[..usable], &mut decoded).is_ok()
            && islands_instruct(&decoded, depth)
        {
            return true;
        }
        if hex && skip < 2 {
            let even = (p.len()) & !1;
            if let Ok(bytes) = hex::decode(&p[..even]) {
                if islands_instruct(&bytes, depth) {
                    return true;
                }
            }
        }
    }
    false
}

/// Reads printable islands of decoded bytes as hidden text.
fn islands_instruct(bytes: &[u8], depth: u8) -> bool {
    let printable =
        |b: u8| (0x20..0x7f).contains(&b) || matches!(b, b'\t' | b'\n' | b'\r') || b >= 0x80;
    let mut i = 0;
    while i < bytes.len() {
        if !printable(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && printable(bytes[i]) {
            i += 1;
        }
        if i - start >= MIN_ISLAND && depth < MAX_DEPTH {
            let mut nested = Scanner::new(ContentKind::Text, true, depth + 1);
            nested.feed(&bytes[start..i]);
            nested.finish();
            if !nested.findings.is_empty() {
                return true;
            }
        }
    }
    false
}
