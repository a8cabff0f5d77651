//! Unit tests of the streaming scrubber.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use super::*;
use base64::Engine as _;

const SECRET: &str = "ghp_CanaryT0ken/with+odd=chars_1234567890";

fn pats() -> Arc<Patterns> {
    Arc::new(Patterns::new(&[SECRET]).unwrap())
}

fn every_encoding(secret: &str) -> Vec<Vec<u8>> {
    let s = secret.as_bytes();
    let mut v = vec![s.to_vec()];
    for pre in ["", "x", "xy", "xyz"] {
        let mut p = pre.as_bytes().to_vec();
        p.extend_from_slice(s);
        p.extend_from_slice(b"trailing");
        v.push(
            base64::engine::general_purpose::STANDARD
                .encode(&p)
                .into_bytes(),
        );
        v.push(
            base64::engine::general_purpose::URL_SAFE
                .encode(&p)
                .into_bytes(),
        );
    }
    v.push(pct(s, false, true));
    v.push(pct(s, false, false));
    v.push(pct(s, true, true));
    v.push(pct(s, true, false));
    v.push(hex::encode(s).into_bytes());
    v.push(hex::encode_upper(s).into_bytes());
    v.push(secret.replace('/', "\\/").into_bytes());
    v
}

fn run_stream(p: &Arc<Patterns>, input: &[u8], splits: &[usize]) -> (Vec<u8>, u64) {
    let mut sc = StreamScrubber::new(Arc::clone(p));
    let mut out = Vec::new();
    let mut last = 0;
    for &s in splits {
        out.extend_from_slice(&sc.push(Bytes::copy_from_slice(&input[last..s])));
        assert!(sc.held() <= p.max_hold());
        last = s;
    }
    out.extend_from_slice(&sc.push(Bytes::copy_from_slice(&input[last..])));
    out.extend_from_slice(&sc.finish());
    (out, sc.count())
}

#[test]
fn every_form_is_found_whole() {
    let p = pats();
    for enc in every_encoding(SECRET) {
        let mut input = b"prefix ".to_vec();
        input.extend_from_slice(&enc);
        input.extend_from_slice(b" suffix");
        let (out, n) = p.scrub_all(&input);
        assert!(n >= 1, "not found: {}", String::from_utf8_lossy(&enc));
        let s = String::from_utf8_lossy(&out);
        assert!(s.contains("[REDACTED by egress]"));
        assert!(!s.contains("Canary"), "{s}");
    }
}

#[test]
fn every_form_is_found_at_every_split_point() {
    let p = pats();
    for enc in every_encoding(SECRET) {
        let mut input = b"data: ".to_vec();
        input.extend_from_slice(&enc);
        input.extend_from_slice(b"\n\n");
        for cut in 1..input.len() {
            let (out, n) = run_stream(&p, &input, &[cut]);
            assert!(n >= 1);
            let s = String::from_utf8_lossy(&out);
            assert!(s.starts_with("data: "), "{s}");
            assert!(s.ends_with("\n\n"), "{s}");
            for other in every_encoding(SECRET) {
                // no 12-byte window of any full form survives
                for w in other.windows(24) {
                    assert!(
                        !out.windows(w.len()).any(|x| x == w),
                        "leak at cut {cut}: {s}"
                    );
                }
            }
        }
    }
}

#[test]
fn byte_at_a_time_and_three_way_split() {
    let p = pats();
    let mut input = b"{\"token\":\"".to_vec();
    input.extend_from_slice(SECRET.as_bytes());
    input.extend_from_slice(b"\",\"again\":\"");
    input.extend_from_slice(hex::encode(SECRET).as_bytes());
    input.extend_from_slice(b"\"}");
    let splits: Vec<usize> = (1..input.len()).collect();
    let (out, n) = run_stream(&p, &input, &splits);
    assert_eq!(n, 2);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "{\"token\":\"[REDACTED by egress]\",\"again\":\"[REDACTED by egress]\"}"
    );
    let (out, n) = run_stream(&p, &input, &[5, 30, 31]);
    assert_eq!(n, 2);
    assert!(!String::from_utf8_lossy(&out).contains("Canary"));
}

#[test]
fn clean_stream_passes_unchanged_and_sse_is_not_delayed() {
    let p = pats();
    let mut sc = StreamScrubber::new(Arc::clone(&p));
    let ev = Bytes::from_static(b"data: hello world\n\n");
    assert_eq!(sc.push(ev.clone()), ev);
    assert_eq!(sc.held(), 0);
    // a partial prefix of the secret is held, then released when it diverges
    let out = sc.push(Bytes::from_static(b"data: ghp_Can"));
    assert_eq!(&out[..], b"data: ");
    assert_eq!(sc.held(), 7);
    let out = sc.push(Bytes::from_static(b"dy\n\n"));
    assert_eq!(&out[..], b"ghp_Candy\n\n");
    assert_eq!(sc.finish(), Bytes::new());
    assert_eq!(sc.count(), 0);
}

#[test]
fn truncated_stream_flushes_short_partial_prefix() {
    let p = pats();
    let (out, n) = run_stream(&p, b"abc ghp_Can", &[]);
    assert_eq!(n, 0);
    assert_eq!(out, b"abc ghp_Can");
}

#[test]
fn fragments_at_body_edges_are_redacted() {
    let p = pats();
    // a body cut inside the secret at its end (e.g. Range: bytes=0-N)
    for splits in [vec![], vec![3], vec![9]] {
        let (out, n) = run_stream(&p, b"abc ghp_CanaryT0", &splits);
        assert_eq!(n, 1);
        assert_eq!(out, b"abc [REDACTED by egress]");
    }
    // a body starting inside the secret (e.g. Range: bytes=N-)
    let (out, n) = run_stream(&p, b"ryT0ken/with+odd=chars_1234567890\nrest", &[]);
    assert_eq!(n, 1);
    assert_eq!(out, b"[REDACTED by egress]\nrest");
    // also inside an encoding
    let hex = hex::encode(SECRET);
    let (out, n) = run_stream(&p, format!("{} tail", &hex[10..]).as_bytes(), &[]);
    assert_eq!(n, 1);
    assert_eq!(out, b"[REDACTED by egress] tail");
    // short or unrelated edges are untouched
    let (out, n) = run_stream(&p, b"7890 data: ok", &[]);
    assert_eq!((out.as_slice(), n), (&b"7890 data: ok"[..], 0));
    assert!(p.contains_or_edge(b"x: ghp_CanaryT0"));
    assert!(!p.contains_or_edge(b"plain header value"));
}

#[test]
fn forms_are_deduplicated_and_long_enough() {
    let f = forms(b"abcdefgh");
    for x in &f {
        assert!(x.len() >= MIN_FORM_LEN);
    }
    let mut seen = f.iter().map(|x| x.to_vec()).collect::<Vec<_>>();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), f.len());
    assert!(Patterns::new(&[""]).is_err());
    assert!(!format!("{:?}", pats()).contains("Canary"));
}

/// Streaming over random chunkings of random text salted with every form
/// gives exactly what one pass over the whole buffer gives.
#[test]
fn streaming_equals_one_shot_on_random_input() {
    let p = pats();
    let mut encs = every_encoding(SECRET);
    encs.extend(mixed_spellings(SECRET).into_iter().map(String::into_bytes));
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let alphabet = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/=%_-\n \\\"u";
    for _ in 0..1000 {
        let mut input = Vec::new();
        for _ in 0..(rnd() % 12) {
            for _ in 0..(rnd() % 40) {
                input.push(alphabet[(rnd() % alphabet.len() as u64) as usize]);
            }
            let e = &encs[(rnd() % encs.len() as u64) as usize];
            // sometimes only a prefix of a form (must not be redacted nor lost)
            let cut = if rnd() % 4 == 0 {
                (rnd() as usize) % e.len()
            } else {
                e.len()
            };
            input.extend_from_slice(&e[..cut]);
        }
        // the leading-fragment check looks at the first chunk only: keep it long
        let lo = p.max_len();
        let mut splits: Vec<usize> = (0..(rnd() % 6))
            .map(|_| (rnd() as usize) % (input.len() + 1))
            .filter(|&s| s >= lo && s < input.len())
            .collect();
        splits.sort_unstable();
        splits.dedup();
        let (streamed, n1) = run_stream(&p, &input, &splits);
        let (whole, n2) = run_stream(&p, &input, &[]);
        // and without edge fragments, one pass over the buffer agrees too
        // (a stream also redacts a tail that starts a view form, in any case)
        let view_tail = (MIN_FRAGMENT..=input.len().min(p.max_hold()))
            .any(|k| p.is_fragment(&input[input.len() - k..]));
        if p.leading_fragment(&input).is_none()
            && p.trailing_fragment(&input).is_none()
            && !view_tail
        {
            let (one, _) = p.scrub_all(&input);
            assert_eq!(
                String::from_utf8_lossy(&one),
                String::from_utf8_lossy(&whole)
            );
        }
        assert_eq!(
            String::from_utf8_lossy(&streamed),
            String::from_utf8_lossy(&whole),
            "splits {splits:?}"
        );
        assert_eq!(n1, n2);
    }
}

#[test]
fn json_and_form_escapes() {
    let secret = r#"tok&<en> "q"\s/x y"#;
    let p = Patterns::new(&[secret]).unwrap();
    for enc in [
        r#"tok\u0026\u003cen\u003e \"q\"\\s/x y"#.to_string(),
        r#"tok&<en> \"q\"\\s\/x y"#.to_string(),
        r#"tok&<en> \"q\"\\s/x y"#.to_string(),
        "tok%26%3Cen%3E+%22q%22%5Cs%2Fx+y".to_string(),
    ] {
        let (out, n) = p.scrub_all(format!("{{\"a\":\"{enc}\"}}").as_bytes());
        assert_eq!(n, 1, "{enc}");
        assert_eq!(out, b"{\"a\":\"[REDACTED by egress]\"}");
    }
}

#[test]
fn several_secrets_in_one_set() {
    let p =
        Arc::new(Patterns::new(&["first-secret-value", "x-access-token:second-secret"]).unwrap());
    let basic = base64::engine::general_purpose::STANDARD.encode("x-access-token:second-secret");
    let input = format!("a first-secret-value b Basic {basic} c");
    let (out, n) = run_stream(&p, input.as_bytes(), &[9, 40]);
    assert_eq!(n, 2);
    let s = String::from_utf8(out).unwrap();
    assert!(!s.contains("first-secret"));
    assert!(!s.contains(&basic[..20]), "{s}");
}

fn alt_case(s: &str) -> String {
    s.chars()
        .enumerate()
        .map(|(i, c)| {
            if i % 2 == 0 {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect()
}

/// Spellings no fixed list of forms holds: any subset of bytes escaped, either case.
fn mixed_spellings(secret: &str) -> Vec<String> {
    let b = secret.as_bytes();
    let each = |f: &dyn Fn(usize, u8) -> String| -> String {
        b.iter().enumerate().map(|(i, &c)| f(i, c)).collect()
    };
    vec![
        // every other byte percent-encoded
        each(&|i, c| {
            if i % 2 == 1 {
                format!("%{c:02X}")
            } else {
                (c as char).to_string()
            }
        }),
        // lower and upper hex digits mixed
        each(&|i, c| {
            if i % 2 == 0 {
                format!("%{c:02x}")
            } else {
                format!("%{c:02X}")
            }
        }),
        alt_case(
            &pct(b, true, false)
                .iter()
                .map(|&c| c as char)
                .collect::<String>(),
        ),
        // JSON \u for some characters, either case, plus `\/`
        each(&|i, c| match (i % 3, c) {
            (_, b'/') => "\\/".to_string(),
            (0, _) => format!("\\u{c:04x}"),
            (1, _) => format!("\\u{c:04X}"),
            _ => (c as char).to_string(),
        }),
        // percent and JSON escapes in one spelling
        each(&|i, c| match i % 3 {
            0 => format!("%{c:02x}"),
            1 => format!("\\u00{c:02X}"),
            _ => (c as char).to_string(),
        }),
        // hex in mixed case
        alt_case(&hex::encode(b)),
        // percent-encoded twice
        pct(b, true, true)
            .iter()
            .map(|&c| {
                if c == b'%' {
                    "%25".to_string()
                } else {
                    (c as char).to_string()
                }
            })
            .collect(),
        // the secret in another case (a header name arrives lowercased)
        secret.to_ascii_lowercase(),
        // HTML references: decimal, hex of either case, HTML5 names
        each(&|i, c| match (i % 3, c) {
            (_, b'/') => "&sol;".to_string(),
            (_, b'+') => "&plus;".to_string(),
            (_, b'=') => "&equals;".to_string(),
            (0, _) => format!("&#{c};"),
            (1, _) => format!("&#x{c:02X};"),
            _ => (c as char).to_string(),
        }),
        // Go's html/template: only `+` (and quotes) escaped
        secret.replace('+', "&#43;"),
    ]
}

#[test]
fn mixed_spellings_are_found_whole_and_split_anywhere() {
    let p = pats();
    for m in mixed_spellings(SECRET) {
        let input = format!("data: {m}\n\n");
        let (out, n) = p.scrub_all(input.as_bytes());
        assert_eq!(n, 1, "{m}");
        assert_eq!(out, b"data: [REDACTED by egress]\n\n", "{m}");
        assert!(p.contains(m.as_bytes()), "{m}");
        for cut in 1..input.len() {
            let (out, n) = run_stream(&p, input.as_bytes(), &[cut]);
            assert_eq!(n, 1, "{m} cut {cut}");
            assert_eq!(out, b"data: [REDACTED by egress]\n\n", "{m} cut {cut}");
        }
    }
    // one mixed spelling cut in three at every pair of offsets
    let m = &mixed_spellings(SECRET)[4];
    let input = format!("x {m} y");
    for a in 1..input.len() {
        for b in a + 1..input.len() {
            let (out, n) = run_stream(&p, input.as_bytes(), &[a, b]);
            assert_eq!((out.as_slice(), n), (&b"x [REDACTED by egress] y"[..], 1));
        }
    }
}

#[test]
fn a_stray_escape_does_not_hide_a_literal_secret() {
    // the view reads `%4` + `1f...` as `A` + `f...`; the literal automaton still sees it
    let secret = "1f2e3d4c-canary-token";
    let p = Arc::new(Patterns::new(&[secret]).unwrap());
    for pre in ["%4", "%", "\\u004", "\\u00", "\\"] {
        let input = format!("a {pre}{secret} b");
        for cut in 0..input.len() {
            let splits = if cut == 0 { vec![] } else { vec![cut] };
            let (out, n) = run_stream(&p, input.as_bytes(), &splits);
            let s = String::from_utf8_lossy(&out).to_string();
            assert_eq!(n, 1, "{pre} cut {cut}: {s}");
            assert!(!s.contains("canary"), "{pre} cut {cut}: {s}");
            assert!(s.starts_with("a ") && s.ends_with(" b"), "{s}");
        }
    }
}

#[test]
fn escapes_without_a_secret_are_not_delayed_or_changed() {
    let p = pats();
    let mut sc = StreamScrubber::new(Arc::clone(&p));
    for ev in [
        &b"data: 100%25 done \\u0041 \\/ \\\"q\\\"\n\n"[..],
        b"data: {\"url\":\"https:\\/\\/x.test\\/a%20b\"}\n\n",
        b"data: 50% off\n\n",
    ] {
        assert_eq!(&sc.push(Bytes::copy_from_slice(ev))[..], ev);
        assert_eq!(sc.held(), 0);
    }
    // an escape cut at the end of a chunk waits for its rest, then passes unchanged
    assert_eq!(&sc.push(Bytes::from_static(b"a %2"))[..], b"a ");
    assert_eq!(&sc.push(Bytes::from_static(b"0b\n\n"))[..], b"%20b\n\n");
    assert_eq!(sc.finish(), Bytes::new());
    assert_eq!(sc.count(), 0);
}

/// Escape-dense random input (`%`, `\`, `u`, hex digits, pieces of the secret) at random
/// splits: never a panic, held bytes stay bounded, any chunking gives the same output.
#[test]
fn escape_dense_random_input_at_random_splits() {
    let p = pats();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let alphabet = b"%\\u0u00\"/7aAfFgG_hp&#x;";
    let pieces = mixed_spellings(SECRET);
    for _ in 0..2000 {
        let mut input = Vec::new();
        for _ in 0..(rnd() % 60) {
            if rnd() % 10 == 0 {
                let m = pieces[(rnd() % pieces.len() as u64) as usize].as_bytes();
                let cut = (rnd() as usize) % (m.len() + 1);
                input.extend_from_slice(&m[..cut]);
            } else {
                input.push(alphabet[(rnd() % alphabet.len() as u64) as usize]);
            }
        }
        let lo = p.max_len();
        let mut splits: Vec<usize> = (0..(rnd() % 8))
            .map(|_| (rnd() as usize) % (input.len() + 1))
            .filter(|&s| s >= lo && s < input.len())
            .collect();
        splits.sort_unstable();
        splits.dedup();
        let (streamed, n1) = run_stream(&p, &input, &splits);
        let (whole, n2) = run_stream(&p, &input, &[]);
        assert_eq!(streamed, whole, "splits {splits:?}");
        assert_eq!(n1, n2);
        let _ = p.contains(&input);
    }
}

/// The start of a body that could grow into a leading fragment is held whatever the
/// chunking, empty chunks included (an HTTP/2 origin may send empty DATA frames).
#[test]
fn a_leading_fragment_is_found_across_small_and_empty_chunks() {
    let p = pats();
    let frag = &SECRET.as_bytes()[5..];
    for cut in 1..frag.len() {
        let mut sc = StreamScrubber::new(Arc::clone(&p));
        let mut out = Vec::new();
        out.extend_from_slice(&sc.push(Bytes::copy_from_slice(&frag[..cut])));
        out.extend_from_slice(&sc.push(Bytes::new()));
        out.extend_from_slice(&sc.push(Bytes::copy_from_slice(&frag[cut..])));
        out.extend_from_slice(&sc.push(Bytes::from_static(b" tail")));
        out.extend_from_slice(&sc.finish());
        assert_eq!(out, b"[REDACTED by egress] tail", "cut {cut}");
    }
    // a body that only looked like one for a while is released intact
    let (out, n) = run_stream(&p, b"ghp tail", &[1, 2]);
    assert_eq!((out.as_slice(), n), (&b"ghp tail"[..], 0));
}
