//! One module per measurement mode; each returns a `stats::Outcome`.

pub mod hold;
pub mod keepalive;
pub mod sse;
pub mod urls;

use std::future::Future;

use crate::conn::LoadError;

/// Runs `workers` tasks of `work` at once and gathers what they return: their items (in no
/// particular order) and the sum of their failure counts.
pub async fn gather<T, Fut>(
    workers: usize,
    work: impl Fn() -> Fut,
) -> Result<(Vec<T>, u64), LoadError>
where
    T: Send + 'static,
    Fut: Future<Output = (Vec<T>, u64)> + Send + 'static,
{
    let tasks: Vec<_> = (0..workers).map(|_| tokio::spawn(work())).collect();
    let (mut items, mut failed) = (Vec::new(), 0u64);
    for task in tasks {
        let (i, f) = task.await.map_err(|e| LoadError::Msg(e.to_string()))?;
        items.extend(i);
        failed += f;
    }
    Ok((items, failed))
}
