//! Bounded push intake: a cap on pushes judged at once, and push bodies that spill to an
//! (already unlinked) temp file under `<data-dir>/spill` past a threshold instead of being
//! held in memory.

use std::io::SeekFrom;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::io::{AsyncSeekExt, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::metrics::GateMetrics;

/// Default `--max-concurrent-pushes`.
pub const DEFAULT_MAX_CONCURRENT_PUSHES: u32 = 4;
/// Default `--push-spill-bytes` (8 MiB).
pub const DEFAULT_PUSH_SPILL_BYTES: u64 = 8 << 20;
/// The start of a body always kept in memory: the command list and push options must fit.
pub const HEAD_BYTES: usize = 1 << 20;

/// git-gate's push flags (flattened into the binary's arguments).
#[derive(clap::Args, Debug, Clone)]
pub struct PushArgs {
    /// Most pushes judged at once; another push is refused ("too many pushes in progress").
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_CONCURRENT_PUSHES,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_concurrent_pushes: u32,
    /// Push bodies larger than this go to a temp file under --data-dir/spill, not memory.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_PUSH_SPILL_BYTES)]
    pub push_spill_bytes: u64,
}

/// The push slots: one is held from the start of a receive-pack request until its push has
/// finished (upstream included).
pub struct PushSlots {
    sem: Arc<Semaphore>,
    pub max: usize,
    metrics: Arc<GateMetrics>,
}

/// A held slot; frees itself when dropped.
pub struct PushSlot {
    _permit: OwnedSemaphorePermit,
    metrics: Arc<GateMetrics>,
}

impl Drop for PushSlot {
    fn drop(&mut self) {
        self.metrics.push_done();
    }
}

impl PushSlots {
    pub fn new(max: usize, metrics: Arc<GateMetrics>) -> PushSlots {
        PushSlots {
            sem: Arc::new(Semaphore::new(max.max(1))),
            max: max.max(1),
            metrics,
        }
    }

    /// A slot, or `None` when `max` pushes are already in progress (never waits).
    pub fn try_acquire(&self) -> Option<PushSlot> {
        let permit = self.sem.clone().try_acquire_owned().ok()?;
        self.metrics.push_started();
        Some(PushSlot {
            _permit: permit,
            metrics: self.metrics.clone(),
        })
    }

    pub fn full(&self) -> bool {
        self.sem.available_permits() == 0
    }

    pub fn busy_reason(&self) -> String {
        crate::policy::too_many_pushes_reason(self.max)
    }
}

/// Where and from what size push bodies spill.
#[derive(Debug, Clone)]
pub struct Spill {
    pub dir: PathBuf,
    pub threshold: u64,
}

/// A push body: in memory, or in an unlinked temp file (the start kept in memory).
pub enum PushBody {
    Memory(Vec<u8>),
    Spilled {
        head: Vec<u8>,
        file: tokio::fs::File,
        len: u64,
    },
}

impl PushBody {
    /// The whole body, or its first [`HEAD_BYTES`] when spilled.
    pub fn head(&self) -> &[u8] {
        match self {
            PushBody::Memory(b) => b,
            PushBody::Spilled { head, .. } => head,
        }
    }

    pub fn len(&self) -> u64 {
        match self {
            PushBody::Memory(b) => b.len() as u64,
            PushBody::Spilled { len, .. } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes the body to `w` (git's stdin), streaming a spilled one from its file.
    pub async fn write_to<W: AsyncWrite + Unpin>(self, w: &mut W) -> std::io::Result<()> {
        match self {
            PushBody::Memory(b) => w.write_all(&b).await?,
            PushBody::Spilled { mut file, .. } => {
                file.seek(SeekFrom::Start(0)).await?;
                tokio::io::copy(&mut file, w).await?;
            }
        }
        w.shutdown().await
    }
}

pub enum BodyRead {
    Complete(PushBody),
    /// Over the cap: the first [`HEAD_BYTES`] (for the command list) and the size seen
    /// (the rest is drained, up to twice the cap, and dropped).
    TooLarge {
        head: Vec<u8>,
        total: u64,
    },
    Failed(String),
}

/// A new temp file, unlinked at once: nothing is left behind whatever happens to the push
/// or the process, and the space is freed when the handle is dropped.
fn spill_file(dir: &Path) -> std::io::Result<std::fs::File> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!("push-{}", hex::encode(rand::random::<[u8; 12]>())));
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    std::fs::remove_file(&path)?;
    Ok(f)
}

/// Reads a receive-pack body up to `cap` bytes, spilling past `spill.threshold`. Beyond
/// `cap` it keeps reading (discarding) up to `2 * cap`, so the client is still listening
/// when we answer.
pub async fn read_push_body(
    mut body: Incoming,
    cap: u64,
    spill: &Spill,
    idle: std::time::Duration,
) -> BodyRead {
    let mut mem: Vec<u8> = Vec::new();
    let mut head: Vec<u8> = Vec::new();
    let mut file: Option<BufWriter<tokio::fs::File>> = None;
    let mut total: u64 = 0;
    let drain_cap = cap.saturating_mul(2);
    let mut too_large = false;
    loop {
        let frame = match tokio::time::timeout(idle, body.frame()).await {
            Err(_) => return BodyRead::Failed("timed out reading the request body".into()),
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                return BodyRead::Failed(format!("cannot read the request body: {e}"))
            }
            Ok(Some(Ok(f))) => f,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        total += data.len() as u64;
        if total > cap {
            if !too_large {
                too_large = true;
                if file.is_none() {
                    mem.truncate(HEAD_BYTES);
                    head = std::mem::take(&mut mem);
                }
                file = None;
            }
            if head.len() < HEAD_BYTES {
                let n = (HEAD_BYTES - head.len()).min(data.len());
                head.extend_from_slice(&data[..n]);
            }
            if total > drain_cap {
                break;
            }
            continue;
        }
        if file.is_none() && total <= spill.threshold {
            mem.extend_from_slice(&data);
            continue;
        }
        if file.is_none() {
            let f = match spill_file(&spill.dir) {
                Ok(f) => f,
                Err(e) => return BodyRead::Failed(format!("cannot spill the push body: {e}")),
            };
            let mut w = BufWriter::with_capacity(256 << 10, tokio::fs::File::from_std(f));
            if let Err(e) = w.write_all(&mem).await {
                return BodyRead::Failed(format!("cannot spill the push body: {e}"));
            }
            mem.truncate(HEAD_BYTES);
            head = std::mem::take(&mut mem);
            file = Some(w);
        }
        if head.len() < HEAD_BYTES {
            let n = (HEAD_BYTES - head.len()).min(data.len());
            head.extend_from_slice(&data[..n]);
        }
        if let Some(w) = file.as_mut() {
            if let Err(e) = w.write_all(&data).await {
                return BodyRead::Failed(format!("cannot spill the push body: {e}"));
            }
        }
    }
    if too_large {
        return BodyRead::TooLarge { head, total };
    }
    match file {
        None => BodyRead::Complete(PushBody::Memory(mem)),
        Some(mut w) => {
            if let Err(e) = w.flush().await {
                return BodyRead::Failed(format!("cannot spill the push body: {e}"));
            }
            BodyRead::Complete(PushBody::Spilled {
                head,
                file: w.into_inner(),
                len: total,
            })
        }
    }
}

/// Keeps the first [`HEAD_BYTES`] of a body and discards the rest, reading at most `limit`
/// bytes (for a push refused before it is judged: the client still gets to read the answer).
pub async fn read_head_and_drain(
    mut body: Incoming,
    limit: u64,
    idle: std::time::Duration,
) -> Result<(Vec<u8>, u64), String> {
    let mut head = Vec::new();
    let mut total: u64 = 0;
    while total <= limit {
        let frame = match tokio::time::timeout(idle, body.frame()).await {
            Err(_) => return Err("timed out reading the request body".into()),
            Ok(None) => break,
            Ok(Some(Err(e))) => return Err(format!("cannot read the request body: {e}")),
            Ok(Some(Ok(f))) => f,
        };
        if let Ok(data) = frame.into_data() {
            total += data.len() as u64;
            if head.len() < HEAD_BYTES {
                let n = (HEAD_BYTES - head.len()).min(data.len());
                head.extend_from_slice(&data[..n]);
            }
        }
    }
    Ok((head, total))
}
