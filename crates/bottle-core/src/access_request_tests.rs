use super::*;

fn request(id: &RequestId, now: u64, ttl: u64) -> PendingRequest {
    PendingRequest {
        id: id.to_string(),
        kind: "host".into(),
        ask: serde_json::json!({"host": "example.com"}),
        reason: "r".into(),
        created_at: String::new(),
        created_unix: now,
        expires_unix: now + ttl,
    }
}

fn decision(d: &str, until_unix: Option<u64>) -> Decision {
    Decision {
        decision: d.into(),
        for_: until_unix.map(|_| "1h".into()),
        until_unix,
        reason: Some(format!("{d} by test")),
        decided_at: String::new(),
    }
}

/// A state dir with one pending request.
fn with_request() -> (tempfile::TempDir, RequestId) {
    let state = tempfile::tempdir().unwrap();
    let dir = requests_dir(state.path());
    std::fs::create_dir(&dir).unwrap();
    let id = RequestId::random();
    write_pending(&dir, &id, &request(&id, 1000, 60)).unwrap();
    (state, id)
}

#[test]
fn random_ids_parse_and_differ() {
    let a = RequestId::random();
    let b = RequestId::random();
    assert_ne!(a, b);
    assert_eq!(a.as_str().len(), ID_LEN);
    assert_eq!(RequestId::parse(a.as_str()), Some(a));
}

#[test]
fn hostile_ids_refused() {
    let long = "a".repeat(27);
    for bad in [
        "",
        "..",
        "../../etc/passwd",
        "aaaaaaaaaaaaaaaaaaaaaaaaa/",
        "../aaaaaaaaaaaaaaaaaaaaaaa",
        "AAAAAAAAAAAAAAAAAAAAAAAAAA",
        "aaaaaaaaaaaaaaaaaaaaaaaaa\u{e9}",
        "aaaaaaaaaaaaaaaaaaaaaaaa.j",
        "aaaaaaaaaaaaaaaaaaaaaaaa%2",
        "aaaaaaaaaaaaaaaaaaaaaaaaa\0",
        "aaaaaaaaaaaaaaaaaaaaaaaaa1",
        long.as_str(),
    ] {
        assert_eq!(RequestId::parse(bad), None, "{bad:?}");
    }
}

/// Two launchers deciding the same request at once: exactly one decision is written, the
/// other gets `AlreadyExists`, and the file holds the winner's decision whole.
#[test]
fn first_decision_wins_under_a_race() {
    for _ in 0..50 {
        let (state, id) = with_request();
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
        let handles: Vec<_> = ["approved", "denied"]
            .into_iter()
            .map(|d| {
                let (path, id, barrier) = (state.path().to_path_buf(), id.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    (d, write_decision(&path, &id, &decision(d, None)))
                })
            })
            .collect();
        let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let winners: Vec<&str> = results
            .iter()
            .filter(|(_, r)| r.is_ok())
            .map(|(d, _)| *d)
            .collect();
        assert_eq!(winners.len(), 1, "{results:?}");
        for (_, r) in &results {
            if let Err(e) = r {
                assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists);
            }
        }
        let on_disk = read_decision(&requests_dir(state.path()), &id)
            .unwrap()
            .unwrap();
        assert_eq!(on_disk.decision, winners[0]);
        let temp_left = std::fs::read_dir(requests_dir(state.path()))
            .unwrap()
            .filter_map(|e| e.ok())
            .any(|e| e.file_name().to_string_lossy().ends_with(".tmp"));
        assert!(!temp_left, "temp files are removed");
    }
}

#[test]
fn a_decision_for_an_id_never_written_is_refused() {
    let (state, _) = with_request();
    let ghost = RequestId::random();
    let e = write_decision(state.path(), &ghost, &decision("approved", None)).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
    assert!(!requests_dir(state.path())
        .join(format!("{ghost}.decision.json"))
        .exists());
    // A planted directory or symlink in the request's place is not a request either.
    let dir = requests_dir(state.path());
    let planted = RequestId::random();
    std::fs::create_dir(dir.join(format!("{planted}.json"))).unwrap();
    let e = write_decision(state.path(), &planted, &decision("approved", None)).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
}

/// Oversized, garbled, mislabelled and non-regular files read as absent with a reason.
#[test]
fn bad_files_are_reported_not_trusted() {
    let (state, id) = with_request();
    let dir = requests_dir(state.path());
    let pending = read_pending(&dir, &id).unwrap().unwrap();
    assert_eq!(pending.id, id.as_str());
    assert_eq!(read_decision(&dir, &id), Ok(None));
    assert_eq!(read_pending(&dir, &RequestId::random()), Ok(None));

    let garbled = RequestId::random();
    std::fs::write(dir.join(format!("{garbled}.json")), b"{\"id\": ").unwrap();
    assert!(matches!(
        read_pending(&dir, &garbled),
        Err(ReadError::Garbled(_))
    ));

    let big = RequestId::random();
    let mut body = serde_json::to_vec(&request(&big, 1, 1)).unwrap();
    body.extend(std::iter::repeat_n(b' ', MAX_PENDING_BYTES as usize));
    std::fs::write(dir.join(format!("{big}.json")), body).unwrap();
    assert!(matches!(
        read_pending(&dir, &big),
        Err(ReadError::TooLarge(_))
    ));

    // A file whose id is another request's: not this request.
    let other = RequestId::random();
    std::fs::write(
        dir.join(format!("{other}.json")),
        serde_json::to_vec(&request(&id, 1, 1)).unwrap(),
    )
    .unwrap();
    assert!(matches!(
        read_pending(&dir, &other),
        Err(ReadError::Garbled(_))
    ));

    std::fs::write(
        dir.join(format!("{id}.decision.json")),
        br#"{"decision":"APPROVED!"}"#,
    )
    .unwrap();
    assert!(matches!(
        read_decision(&dir, &id),
        Err(ReadError::Garbled(_))
    ));

    #[cfg(unix)]
    {
        let linked = RequestId::random();
        let elsewhere = state.path().join("elsewhere.json");
        std::fs::write(
            &elsewhere,
            serde_json::to_vec(&request(&linked, 1, 1)).unwrap(),
        )
        .unwrap();
        std::os::unix::fs::symlink(&elsewhere, dir.join(format!("{linked}.json"))).unwrap();
        assert_eq!(read_pending(&dir, &linked), Err(ReadError::NotRegular));
    }
    // Junk names are not ids; every request-shaped name is listed.
    std::fs::write(dir.join("notanid.json"), b"{}").unwrap();
    let listed = list_ids(&dir);
    assert!(listed.contains(&id) && listed.contains(&garbled));
    assert!(listed
        .iter()
        .all(|i| RequestId::parse(i.as_str()).is_some()));
    assert_eq!(listed.len(), if cfg!(unix) { 5 } else { 4 }, "{listed:?}");
}

#[test]
fn states_over_time() {
    let id = RequestId::random();
    let req = request(&id, 1000, 60);
    assert!(RequestState::of(&req, None, 1059).is_pending());
    assert_eq!(RequestState::of(&req, None, 1060), RequestState::Expired);
    let timed = decision("approved", Some(5000));
    assert!(matches!(
        RequestState::of(&req, Some(&timed), 4999),
        RequestState::Approved {
            until_unix: Some(5000),
            ..
        }
    ));
    assert_eq!(
        RequestState::of(&req, Some(&timed), 5000),
        RequestState::Expired
    );
    let denied = decision("denied", None);
    assert_eq!(
        RequestState::of(&req, Some(&denied), 9999),
        RequestState::Denied {
            reason: Some("denied by test".into())
        }
    );
    assert_eq!(
        RequestState::Approved {
            for_: Some("session".into()),
            until_unix: None
        }
        .to_json()["status"],
        "approved"
    );
}

/// The requests directory is writable from the supervise container: a file that was a regular
/// file when checked and is a symlink (or another file) when opened is not read through.
#[cfg(unix)]
#[test]
fn a_file_swapped_between_check_and_open_is_not_read() {
    let (state, id) = with_request();
    let dir = requests_dir(state.path());
    let path = dir.join(format!("{id}.decision.json"));
    std::fs::write(
        &path,
        serde_json::to_vec(&decision("denied", None)).unwrap(),
    )
    .unwrap();
    let seen = std::fs::symlink_metadata(&path).unwrap();
    // The swap: a valid approval elsewhere (the operator's home, for the launcher), linked in.
    let elsewhere = state.path().join("elsewhere.json");
    std::fs::write(
        &elsewhere,
        serde_json::to_vec(&decision("approved", None)).unwrap(),
    )
    .unwrap();
    std::fs::remove_file(&path).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &path).unwrap();
    let got = read_same_file(&path, &seen, MAX_DECISION_BYTES);
    assert!(got.is_err(), "read through a swapped-in link: {got:?}");
    // The same with a regular file renamed over it (another inode).
    let other = dir.join("other.tmp");
    std::fs::write(
        &other,
        serde_json::to_vec(&decision("approved", None)).unwrap(),
    )
    .unwrap();
    std::fs::rename(&other, &path).unwrap();
    assert!(read_same_file(&path, &seen, MAX_DECISION_BYTES).is_err());
    // Unswapped, the file is read.
    let now = std::fs::symlink_metadata(&path).unwrap();
    assert!(read_same_file(&path, &now, MAX_DECISION_BYTES).is_ok());
    assert_eq!(
        read_decision(&dir, &id).unwrap().map(|d| d.decision),
        Some("approved".to_owned())
    );
}

/// A FIFO swapped in after the check would block a plain `open` until a writer came (the
/// launcher's `bottle requests` hung); the read is refused at once instead.
#[cfg(target_os = "linux")]
#[test]
fn a_fifo_swapped_in_is_refused_without_blocking() {
    let (state, id) = with_request();
    let dir = requests_dir(state.path());
    let path = dir.join(format!("{id}.decision.json"));
    std::fs::write(
        &path,
        serde_json::to_vec(&decision("denied", None)).unwrap(),
    )
    .unwrap();
    let seen = std::fs::symlink_metadata(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let made = std::process::Command::new("mkfifo").arg(&path).status();
    if !made.is_ok_and(|s| s.success()) {
        eprintln!("no mkfifo here; skipped");
        return;
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let p = path.clone();
    std::thread::spawn(move || {
        let _ = tx.send(read_same_file(&p, &seen, MAX_DECISION_BYTES).is_err());
    });
    let refused = rx.recv_timeout(std::time::Duration::from_secs(5));
    // Unblock a stuck reader (if the test failed) by opening the write end.
    if refused.is_err() {
        let _ = std::fs::OpenOptions::new().write(true).open(&path);
    }
    assert_eq!(
        refused,
        Ok(true),
        "the read blocked on a FIFO or accepted it"
    );
}
