//! Listing and scanning the objects a push brought (everything in the quarantine that the
//! mirror does not already have, referenced or not).

use std::collections::HashSet;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use crate::git::{run, GitRunner};
use crate::GateError;

/// Finds secrets in bytes; returns the names of the detectors that fired (never the match).
pub trait SecretScanner: Send + Sync {
    fn scan(&self, data: &[u8]) -> Vec<String>;
    /// A scanner for one large object fed in chunks, so it is never held whole in memory.
    fn stream(&self) -> Box<dyn ChunkScanner + Send>;
}

/// Scans consecutive chunks of one object, each together with the end of the one before.
pub trait ChunkScanner {
    fn feed(&mut self, chunk: &[u8]) -> Vec<String>;
}

/// The shared detectors (the same code pipelock uses).
pub struct DetectorScanner(pub &'static bottle_dlp::Detector);

impl SecretScanner for DetectorScanner {
    fn scan(&self, data: &[u8]) -> Vec<String> {
        self.0
            .detect(data)
            .into_iter()
            .map(|f| f.detector.to_string())
            .collect()
    }

    fn stream(&self) -> Box<dyn ChunkScanner + Send> {
        Box::new(DetectorChunks(self.0.stream()))
    }
}

struct DetectorChunks(bottle_dlp::StreamScanner);

impl ChunkScanner for DetectorChunks {
    fn feed(&mut self, chunk: &[u8]) -> Vec<String> {
        // Eager mode: the chunk is scanned with the overlap before it; nothing is held back.
        self.0
            .check(chunk)
            .into_iter()
            .map(|f| f.detector.to_string())
            .collect()
    }
}

/// Blobs larger than this are scanned in chunks of this size.
pub const SCAN_CHUNK: usize = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewObject {
    pub oid: String,
    pub kind: String,
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub oid: String,
    pub kind: String,
    /// Where in the object: `blob`, `tree entry name`, `commit message`, `tag name`, ...
    pub location: &'static str,
    pub detector: String,
}

impl Finding {
    /// The refusal reason: detector and place, never the secret.
    pub fn reason(&self) -> String {
        let oid = self.oid.get(..12).unwrap_or(&self.oid);
        if self.location == "blob" {
            format!("secret detected ({}) in blob {oid}", self.detector)
        } else {
            format!(
                "secret detected ({}) in {} ({} {oid})",
                self.detector, self.location, self.kind
            )
        }
    }
}

const STEP_TIMEOUT: Duration = Duration::from_secs(300);

/// Every object in the quarantine that the mirror does not already have.
pub async fn new_objects(
    runner: &GitRunner,
    mirror: &Path,
    quarantine: &Path,
) -> Result<Vec<NewObject>, GateError> {
    let mut cmd = runner.command(Some(mirror));
    cmd.env("GIT_OBJECT_DIRECTORY", quarantine);
    cmd.args([
        "cat-file",
        "--batch-all-objects",
        "--batch-check=%(objectname) %(objecttype) %(objectsize)",
    ]);
    let out = run(cmd, None, STEP_TIMEOUT).await?;
    if !out.success {
        return Err(GateError::Git(format!(
            "cannot list pushed objects: {}",
            out.stderr_str().trim()
        )));
    }
    let mut all = Vec::new();
    for line in out.stdout_str().lines() {
        let mut it = line.split(' ');
        if let (Some(oid), Some(kind), Some(size)) = (it.next(), it.next(), it.next()) {
            all.push(NewObject {
                oid: oid.to_string(),
                kind: kind.to_string(),
                size: size.parse().unwrap_or(u64::MAX),
            });
        }
    }
    if all.is_empty() {
        return Ok(all);
    }
    // Drop objects the mirror already has (bases appended by --fix-thin, re-sent objects).
    let mut cmd = runner.command(Some(mirror));
    cmd.args(["cat-file", "--batch-check=%(objectname)"]);
    let input: String = all.iter().map(|o| format!("{}\n", o.oid)).collect();
    let out = run(cmd, Some(input.as_bytes()), STEP_TIMEOUT).await?;
    let existing: HashSet<String> = out
        .stdout_str()
        .lines()
        .filter(|l| !l.ends_with(" missing"))
        .map(str::to_owned)
        .collect();
    all.retain(|o| !existing.contains(&o.oid));
    Ok(all)
}

/// Scans blobs (content), trees (entry names), commits and tags (header fields, messages)
/// with `scanner`.
pub async fn scan_objects(
    runner: &GitRunner,
    mirror: &Path,
    quarantine: &Path,
    objects: &[NewObject],
    scanner: &dyn SecretScanner,
) -> Result<Vec<Finding>, GateError> {
    let wanted: Vec<&NewObject> = objects
        .iter()
        .filter(|o| matches!(o.kind.as_str(), "blob" | "tree" | "commit" | "tag"))
        .collect();
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let mut cmd = runner.command(Some(mirror));
    cmd.env("GIT_OBJECT_DIRECTORY", quarantine);
    cmd.env("GIT_ALTERNATE_OBJECT_DIRECTORIES", mirror.join("objects"));
    cmd.args(["cat-file", "--batch"]).stdin(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| GateError::Spawn(e.to_string()))?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| GateError::Spawn("no stdin".into()))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| GateError::Spawn("no stdout".into()))?;
    let input: String = wanted.iter().map(|o| format!("{}\n", o.oid)).collect();
    let writer = tokio::spawn(async move {
        let _ = stdin.write_all(input.as_bytes()).await;
        let _ = stdin.shutdown().await;
    });
    let mut reader = BufReader::new(stdout);
    let mut findings = Vec::new();
    let work = async {
        for _ in 0..wanted.len() {
            let mut header = String::new();
            if reader
                .read_line(&mut header)
                .await
                .map_err(|e| GateError::Io(e.to_string()))?
                == 0
            {
                return Err(GateError::Git("cat-file ended early".into()));
            }
            let mut it = header.trim_end().split(' ');
            let (oid, kind, size) = (it.next().unwrap_or(""), it.next().unwrap_or(""), it.next());
            let Some(size) = size.and_then(|s| s.parse::<usize>().ok()) else {
                return Err(GateError::Git(format!("cannot read object {oid}")));
            };
            let mut found = std::collections::BTreeSet::new();
            if kind == "blob" && size > SCAN_CHUNK {
                // Large blobs in chunks: memory stays at one chunk per push.
                let mut chunks = scanner.stream();
                let mut buf = vec![0u8; SCAN_CHUNK];
                let mut left = size;
                while left > 0 {
                    let n = left.min(SCAN_CHUNK);
                    reader
                        .read_exact(&mut buf[..n])
                        .await
                        .map_err(|e| GateError::Io(e.to_string()))?;
                    found.extend(chunks.feed(&buf[..n]).into_iter().map(|d| ("blob", d)));
                    left -= n;
                }
            } else {
                let mut data = vec![0u8; size];
                reader
                    .read_exact(&mut data)
                    .await
                    .map_err(|e| GateError::Io(e.to_string()))?;
                if kind == "blob" {
                    found.extend(scanner.scan(&data).into_iter().map(|d| ("blob", d)));
                } else {
                    for p in crate::objparts::parts(kind, &data) {
                        for d in scanner.scan(&p.data) {
                            // The whole-object pass only adds what no precise part found.
                            if !found.iter().any(|(_, seen)| seen == &d) {
                                found.insert((p.location, d));
                            }
                        }
                    }
                }
            }
            let mut nl = [0u8; 1];
            reader
                .read_exact(&mut nl)
                .await
                .map_err(|e| GateError::Io(e.to_string()))?;
            for (location, detector) in found {
                findings.push(Finding {
                    oid: oid.to_string(),
                    kind: kind.to_string(),
                    location,
                    detector,
                });
            }
        }
        Ok(())
    };
    let res = tokio::time::timeout(STEP_TIMEOUT, work).await;
    let _ = writer.await;
    let _ = child.kill().await;
    match res {
        Ok(Ok(())) => Ok(findings),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(GateError::Timeout),
    }
}
