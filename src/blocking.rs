//! Blocking work from async tasks: a database write that may wait for
//! another connection's lock, a listing of a large folder. Run on a runtime
//! thread, it would hold up every task on that thread (the folder's events,
//! the sinks' sends, the watchdog's heartbeat).

/// Runs `work` on tokio's blocking pool and waits for it; a panic in `work`
/// is passed on.
pub async fn off_runtime<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(work).await {
        Ok(value) => value,
        Err(error) => match error.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            // Only a runtime shutting down cancels a blocking task, and then
            // nothing resumes the task waiting for it.
            Err(_) => std::future::pending().await,
        },
    }
}
