//! The failures every port and service shares.

/// What is behind a port cannot serve right now: the connection to the storage was refused or
/// lost, no connection could be had in time, the database is shutting down or busy, or too many
/// passwords wait to be hashed. Adapters put it in the error chain of such failures, so that
/// callers can tell "try again shortly" from a bug; [`is_unavailable`] looks for it.
#[derive(Debug, thiserror::Error)]
#[error("storage unavailable")]
pub struct Unavailable {
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

/// Whether `err` is (caused by) [`Unavailable`].
pub fn is_unavailable(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| cause.is::<Unavailable>())
}

/// The only failure of an operation that has no business outcome of its own (listing, counting,
/// logging out): whatever went wrong is nobody's fault but ours, a bug or an unreachable
/// database ([`is_unavailable`] tells which).
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct Unknown(#[from] pub anyhow::Error);
