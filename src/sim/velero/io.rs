//! Object storage I/O from a controller's reconcile.
//!
//! `reconcile` is a synchronous function called from a tokio task, and object_store is async.
//! On the multi-thread runtime the simulator runs on (`Sim::start` from `#[tokio::main]`, the
//! CLI's `Runtime::new()`, or `#[tokio::test(flavor = "multi_thread")]`), the I/O runs with
//! `tokio::task::block_in_place` around `Handle::current().block_on(..)`: the worker hands its
//! other tasks to the rest of the pool while it waits. A current-thread runtime cannot do that,
//! so there the I/O runs on a short-lived thread with a runtime of its own instead of panicking.

use std::future::Future;
use std::time::Duration;

use tokio::runtime::{Handle, RuntimeFlavor};

use super::location::LocationError;

/// Runs `io` to completion, giving up after `limit`.
pub fn run<T: Send>(
    limit: Duration,
    io: impl Future<Output = Result<T, LocationError>> + Send,
) -> Result<T, LocationError> {
    let bounded = async move {
        tokio::time::timeout(limit, io)
            .await
            .unwrap_or_else(|_| Err(LocationError::Io(format!("object storage did not answer within {limit:?}"))))
    };
    match Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(|| handle.block_on(bounded))
        }
        _ => std::thread::scope(|s| {
            s.spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| LocationError::Io(format!("cannot start a runtime for object storage I/O: {e}")))?
                    .block_on(bounded)
            })
            .join()
            .unwrap_or_else(|_| Err(LocationError::Io("object storage I/O panicked".to_string())))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread")]
    async fn io_runs_inside_a_multi_thread_runtime() {
        let v = tokio::task::spawn(async { run(Duration::from_secs(5), async { Ok(7) }) }).await.unwrap();
        assert_eq!(v.unwrap(), 7);
    }

    #[tokio::test]
    async fn io_runs_inside_a_current_thread_runtime_too() {
        assert_eq!(run(Duration::from_secs(5), async { Ok(8) }).unwrap(), 8);
        let slow = run(Duration::from_millis(20), async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok(())
        });
        assert!(matches!(slow, Err(LocationError::Io(m)) if m.contains("did not answer")));
    }
}
