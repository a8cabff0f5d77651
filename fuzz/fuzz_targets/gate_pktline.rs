#![no_main]
//! git-gate pkt-line reader and writers. Reader: never panics, errors leave the position
//! unchanged, and re-encoding the frames read reproduces the consumed input byte for byte.
//! Writers: what `write_band`/`write_text`/`write_data` emit reads back to the payload.
use git_gate::pktline::{
    parse_len, strip_lf, write_band, write_data, write_flush, write_text, Pkt, PktReader, Sideband,
    MAX_PKT_DATA, MAX_PKT_LEN, MAX_SIDEBAND_64K_DATA, MAX_SIDEBAND_DATA,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, buf)) = data.split_first() else {
        return;
    };
    let v2 = mode & 1 == 1;
    let mut r = if v2 {
        PktReader::new_v2(buf)
    } else {
        PktReader::new(buf)
    };
    let mut out = Vec::new();
    loop {
        let before = r.position();
        assert_eq!(r.rest(), &buf[before.min(buf.len())..]);
        match r.read() {
            Ok(pkt) => {
                let after = r.position();
                assert!(after > before && after <= buf.len());
                let len = parse_len(&buf[before..before + 4]).unwrap();
                match pkt {
                    Pkt::Flush => {
                        assert_eq!(len, 0);
                        write_flush(&mut out);
                    }
                    Pkt::Delim => {
                        assert!(v2 && len == 1);
                        out.extend_from_slice(b"0001");
                    }
                    Pkt::ResponseEnd => {
                        assert!(v2 && len == 2);
                        out.extend_from_slice(b"0002");
                    }
                    Pkt::Data(d) => {
                        assert!((4..=MAX_PKT_LEN).contains(&len));
                        assert_eq!(d.len() + 4, len);
                        assert_eq!(d, &buf[before + 4..after]);
                        write_data(&mut out, d).unwrap();
                        let s = strip_lf(d);
                        assert!(
                            s.len() == d.len() || (s.len() + 1 == d.len() && d.ends_with(b"\n"))
                        );
                    }
                }
                assert_eq!(after - before, out.len() - before, "frame length");
                assert_eq!(&out[..], &buf[..after], "re-encoding differs");
            }
            Err(_) => {
                assert_eq!(r.position(), before, "error moved the position");
                break;
            }
        }
    }
    assert_eq!(r.position(), out.len());
    // A v1 reader and a v2 reader agree up to the first v2 special.
    let mut a = PktReader::new(buf);
    let mut b = PktReader::new_v2(buf);
    loop {
        match (a.read(), b.read()) {
            (Ok(x), Ok(y)) => assert_eq!(x, y),
            (Err(_), Ok(Pkt::Delim | Pkt::ResponseEnd)) => break,
            (Err(x), Err(y)) => {
                assert_eq!(x, y);
                break;
            }
            (x, y) => panic!("v1 {x:?} vs v2 {y:?}"),
        }
    }

    // Writers: the whole input as payload.
    let band = 1 + mode % 3;
    for sb in [Sideband::Small, Sideband::Large] {
        let mut w = Vec::new();
        write_band(&mut w, sb, band, buf);
        let max = if sb == Sideband::Small {
            MAX_SIDEBAND_DATA
        } else {
            MAX_SIDEBAND_64K_DATA
        };
        let mut rr = PktReader::new(&w);
        let mut joined = Vec::new();
        while !rr.is_empty() {
            let Ok(Pkt::Data(d)) = rr.read() else {
                panic!("write_band wrote an unreadable frame")
            };
            assert_eq!(d[0], band);
            assert!(d.len() >= 2 && d.len() - 1 <= max);
            joined.extend_from_slice(&d[1..]);
        }
        assert_eq!(joined, buf);
    }
    let mut raw = Vec::new();
    write_band(&mut raw, Sideband::None, band, buf);
    assert_eq!(raw, if band == 1 { buf } else { &[][..] });

    let mut w = Vec::new();
    let res = write_data(&mut w, buf);
    assert_eq!(res.is_ok(), buf.len() <= MAX_PKT_DATA);
    if res.is_ok() {
        assert_eq!(PktReader::new(&w).read(), Ok(Pkt::Data(buf)));
    }
    if let Ok(text) = std::str::from_utf8(buf) {
        let mut w = Vec::new();
        write_text(&mut w, text);
        let mut rr = PktReader::new(&w);
        let line = rr.read_line().unwrap().unwrap();
        assert!(rr.is_empty());
        let expect = &text.as_bytes()[..text.len().min(MAX_PKT_DATA - 1)];
        // strip_lf removes the added LF only; a text ending in LF keeps its own.
        assert_eq!(line, expect);
    }
});
