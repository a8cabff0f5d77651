//! Unit tests of the WebSocket frame codec ([`super`]).

use super::*;

fn encoded(fin: bool, op: u8, mask: Option<[u8; 4]>, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(&mut out, fin, op, mask, payload);
    out
}

/// The payload of one encoded frame, unmasked.
fn payload_of(frame: &[u8]) -> Vec<u8> {
    let h = FrameHeader::parse(frame).unwrap();
    let mut p = frame[h.header_len..].to_vec();
    assert_eq!(
        p.len() as u64,
        h.payload_len,
        "the frame is exactly one frame"
    );
    if let Some(key) = h.mask {
        apply_mask(&mut p, key, 0);
    }
    p
}

#[test]
fn each_length_encoding_round_trips_with_the_shortest_header() {
    // (payload length, header length unmasked)
    let cases = [
        (0usize, 2usize),
        (1, 2),
        (125, 2),
        (126, 4),
        (127, 4),
        (65535, 4),
        (65536, 10),
        (70_000, 10),
    ];
    for (n, hlen) in cases {
        let payload: Vec<u8> = (0..n).map(|i| (i * 7 + 3) as u8).collect();
        for mask in [None, Some([0xde, 0xad, 0xbe, 0xef])] {
            let f = encoded(n % 2 == 0, opcode::BINARY, mask, &payload);
            let h = FrameHeader::parse(&f).unwrap();
            let want_hlen = hlen + if mask.is_some() { 4 } else { 0 };
            assert_eq!(h.header_len, want_hlen, "len {n} mask {mask:?}");
            assert_eq!(h.payload_len, n as u64);
            assert_eq!(h.frame_len(), f.len() as u64);
            assert_eq!((h.fin, h.rsv, h.opcode, h.mask), (n % 2 == 0, 0, 2, mask));
            assert_eq!(payload_of(&f), payload, "len {n} mask {mask:?}");
            if mask.is_some() && n > 0 {
                assert_ne!(&f[h.header_len..], &payload[..], "masked on the wire");
            }
        }
    }
}

#[test]
fn a_header_is_answered_exactly_when_all_its_bytes_are_present() {
    let frames = [
        encoded(true, opcode::TEXT, None, b"hi"),
        encoded(true, opcode::TEXT, Some([1, 2, 3, 4]), b"hi"),
        encoded(false, opcode::BINARY, None, &[9u8; 300]),
        encoded(false, opcode::BINARY, Some([5, 6, 7, 8]), &[9u8; 300]),
        encoded(true, opcode::CONTINUATION, None, &[1u8; 70_000]),
        encoded(
            true,
            opcode::CONTINUATION,
            Some([9, 9, 9, 9]),
            &[1u8; 70_000],
        ),
    ];
    for f in &frames {
        let whole = FrameHeader::parse(f).unwrap();
        for cut in 0..=f.len().min(MAX_HEADER_LEN + 2) {
            let got = FrameHeader::parse(&f[..cut]);
            if cut < whole.header_len {
                assert_eq!(got, None, "cut {cut} of a {}-byte header", whole.header_len);
            } else {
                assert_eq!(got, Some(whole), "cut {cut}");
            }
        }
    }
}

#[test]
fn flags_opcode_and_reserved_bits_are_read_as_sent() {
    for rsv in 0..8u8 {
        for op in 0..16u8 {
            let b0 = 0x80 | (rsv << 4) | op;
            let h = FrameHeader::parse(&[b0, 0x05]).unwrap();
            assert_eq!((h.fin, h.rsv, h.opcode), (true, rsv, op));
            assert_eq!(h.has_reserved_bits(), rsv != 0, "rsv {rsv}");
            assert_eq!(h.is_control(), op >= 8, "opcode {op}");
            assert_eq!(h.is_close(), op == 8);
        }
    }
    let h = FrameHeader::parse(&[0x01, 0x00]).unwrap();
    assert!(!h.fin && h.mask.is_none() && h.payload_len == 0);
}

#[test]
fn malformed_headers_parse_structurally_and_fail_the_rules_a_side_asks() {
    // A control frame longer than 125 bytes (16-bit length form).
    let h = FrameHeader::parse(&[0x89, 126, 0, 126]).unwrap();
    assert!(h.is_control() && !h.is_valid_control());
    // 125 is the largest valid control payload.
    let h = FrameHeader::parse(&[0x89, 125]).unwrap();
    assert!(h.is_valid_control());
    // A fragmented control frame.
    let h = FrameHeader::parse(&[0x09, 0]).unwrap();
    assert!(h.is_control() && !h.is_valid_control());
    // A 64-bit length with its top bit set (RFC: must be clear): read as declared, and the
    // frame length saturates instead of wrapping to something small.
    let mut f = vec![0x82, 127];
    f.extend_from_slice(&u64::MAX.to_be_bytes());
    let h = FrameHeader::parse(&f).unwrap();
    assert_eq!(h.payload_len, u64::MAX);
    assert_eq!(h.frame_len(), u64::MAX);
    let mut f = vec![0x82, 0x80 | 127];
    f.extend_from_slice(&u64::MAX.to_be_bytes());
    f.extend_from_slice(&[1, 2, 3, 4]);
    assert_eq!(FrameHeader::parse(&f).unwrap().frame_len(), u64::MAX);
    // Non-minimal length encodings are read as declared (the length is what counts).
    let h = FrameHeader::parse(&[0x81, 126, 0, 5]).unwrap();
    assert_eq!((h.payload_len, h.header_len), (5, 4));
    let h = FrameHeader::parse(&[0x81, 127, 0, 0, 0, 0, 0, 0, 0, 5]).unwrap();
    assert_eq!((h.payload_len, h.header_len), (5, 10));
    // The mask bit alone, with its key cut off.
    assert_eq!(FrameHeader::parse(&[0x81, 0x80, 1, 2, 3]), None);
    assert_eq!(FrameHeader::parse(&[]), None);
    assert_eq!(FrameHeader::parse(&[0x81]), None);
}

#[test]
fn arbitrary_bytes_never_panic_and_a_header_never_claims_more_than_it_read() {
    // A small deterministic generator: the parser is also a fuzz candidate.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..20_000 {
        let len = (next() % 16) as usize;
        let buf: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if let Some(h) = FrameHeader::parse(&buf) {
            assert!(h.header_len <= buf.len(), "{buf:?}");
            assert!([2, 4, 6, 8, 10, 14].contains(&h.header_len), "{buf:?}");
            assert_eq!(h.mask.is_some(), buf[1] & 0x80 != 0);
        }
        let mut b = FrameBoundaries::default();
        b.feed(&buf);
    }
}

#[test]
fn unmasking_in_pieces_equals_unmasking_whole() {
    let key = [0x11, 0x22, 0x33, 0x44];
    let plain: Vec<u8> = (0..=255u8).collect();
    let mut masked = plain.clone();
    apply_mask(&mut masked, key, 0);
    assert_ne!(masked, plain);
    for cut in 0..plain.len() {
        let (mut a, mut b) = (masked[..cut].to_vec(), masked[cut..].to_vec());
        apply_mask(&mut a, key, 0);
        apply_mask(&mut b, key, cut as u64);
        assert_eq!([a, b].concat(), plain, "cut {cut}");
    }
}

#[test]
fn close_frames_carry_the_code_and_a_reason_cut_to_fit_on_a_char_boundary() {
    let f = close_frame(close_code::POLICY_VIOLATION, "policy violation", None);
    let h = FrameHeader::parse(&f).unwrap();
    assert!(h.is_close() && h.fin && h.is_valid_control() && h.mask.is_none());
    assert_eq!(payload_of(&f), b"\x03\xf0policy violation");
    // A long reason of 3-byte characters: cut at 123 bytes or just before, never inside one.
    let reason = "\u{20ac}".repeat(60);
    for mask in [None, Some([7, 7, 0, 1])] {
        let f = close_frame(close_code::MESSAGE_TOO_BIG, &reason, mask);
        let h = FrameHeader::parse(&f).unwrap();
        assert!(h.is_valid_control(), "{h:?}");
        assert_eq!(h.mask, mask);
        let p = payload_of(&f);
        assert_eq!(&p[..2], &1009u16.to_be_bytes());
        let text = std::str::from_utf8(&p[2..]).unwrap();
        assert_eq!(text.len(), 123, "41 whole characters");
        assert!(reason.starts_with(text));
    }
    let ascii = "x".repeat(500);
    assert_eq!(close_payload(1000, &ascii).len(), MAX_CONTROL_PAYLOAD);
    assert_eq!(close_payload(1000, ""), vec![3, 232]);
}

#[test]
fn frame_boundaries_are_known_at_every_cut_and_byte_by_byte() {
    let frames = [
        encoded(true, opcode::TEXT, Some([1, 1, 1, 1]), b"hi"),
        encoded(true, opcode::BINARY, Some([2, 2, 2, 2]), &[7u8; 300]),
        encoded(true, opcode::PING, Some([3, 3, 3, 3]), b""),
        encoded(false, opcode::BINARY, None, &[1u8; 70_000]),
        encoded(true, opcode::CONTINUATION, None, b""),
    ];
    let mut ends = Vec::new();
    let mut total = 0;
    for f in &frames {
        total += f.len();
        ends.push(total);
    }
    let stream = frames.concat();
    // Two writes, cut anywhere near the boundaries or inside a header.
    let mut cuts: Vec<usize> = (0..400).collect();
    cuts.extend(stream.len() - 40..=stream.len());
    for cut in cuts {
        let mut b = FrameBoundaries::default();
        b.feed(&stream[..cut]);
        assert_eq!(
            b.at_boundary(),
            cut == 0 || ends.contains(&cut),
            "cut {cut}"
        );
        b.feed(&stream[cut..]);
        assert!(b.at_boundary(), "cut {cut}: the whole stream ends a frame");
    }
    let mut b = FrameBoundaries::default();
    for (i, byte) in stream.iter().enumerate() {
        b.feed(std::slice::from_ref(byte));
        assert_eq!(b.at_boundary(), ends.contains(&(i + 1)), "byte {i}");
    }
}
