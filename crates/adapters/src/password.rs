//! argon2id password hashing on a fixed set of hashing threads.
//!
//! Parameters are OWASP's first recommendation for argon2id (19 MiB of memory, 2 passes, one
//! lane), which are also the argon2 crate's defaults. A hash takes tens of milliseconds of CPU
//! and 19 MiB of memory, so it never runs on an async worker.
//!
//! The CPU and memory of hashing are bounded by construction, not by tuning:
//!
//! - `concurrency` threads do all the hashing, so at most that many hashes ever run at once,
//!   whatever happens to the requests that asked for them. (The earlier design, a semaphore in
//!   front of tokio's blocking pool, released its permit when a hung-up request's future was
//!   dropped while the hash it had started ran on, so hang-ups let more hashes run at once.)
//! - Each thread allocates its 19 MiB of argon2 memory once and reuses it for every hash
//!   (`hash_password_into_with_memory`). Allocating and freeing 19 MiB per hash on many threads
//!   is what made memory grow under a login flood: glibc raises its mmap threshold after the
//!   first such free, and later blocks land in per-thread arenas that keep the memory.
//! - Requests wait in a bounded queue. When it is full, hashing fails at once with the domain's
//!   `Unavailable`, which the API answers 503 with `Retry-After`, instead of queueing without end.
//! - A request whose caller has gone (its future was dropped) before a thread picks it up is
//!   skipped: an abandoned login costs no hash.
//! - The hashing threads run at the lowest scheduling priority (nice 19 on Linux): they get
//!   every CPU cycle that answering requests leaves, and no more, so a login flood cannot slow
//!   the rest of the API down. Under load that saturates the CPU, logins slow down first, and
//!   then the full queue turns them away with 503.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::thread;

use anyhow::{Context, anyhow};
use argon2::password_hash::phc::{Output, ParamsString, PasswordHash as PhcHash, Salt};
use argon2::{ARGON2ID_IDENT, Algorithm, Argon2, Block, Params, Version};
use async_trait::async_trait;
use tokio::sync::oneshot;
use warden_domain::{
    accounts::{Password, PasswordHash},
    crypto::PasswordHasher,
    error::Unavailable,
};

/// Salt length in bytes (the PHC string format's recommendation).
const SALT_BYTES: usize = 16;

/// Hashes and verifies passwords with argon2id on `concurrency` threads of its own.
#[derive(Debug, Clone)]
pub struct Argon2Hasher {
    jobs: flume::Sender<Job>,
    stats: Arc<Stats>,
    /// A hash of a random password with the same parameters, verified against when there is no
    /// real hash to check, so that refusing an unknown account costs what a wrong password does.
    dummy_hash: Arc<str>,
}

/// What the hashing threads have done, for tests and metrics.
#[derive(Debug, Default)]
pub struct Stats {
    running: AtomicUsize,
    peak_running: AtomicUsize,
    started: AtomicU64,
    skipped: AtomicU64,
}

impl Stats {
    /// The most hashes that ever ran at once.
    pub fn peak_running(&self) -> usize {
        self.peak_running.load(Ordering::SeqCst)
    }

    /// Hashes (and verifications) started so far.
    pub fn started(&self) -> u64 {
        self.started.load(Ordering::SeqCst)
    }

    /// Requests dropped unstarted because their caller had gone.
    pub fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::SeqCst)
    }
}

/// One unit of work for a hashing thread.
struct Job {
    work: Work,
    reply: oneshot::Sender<anyhow::Result<Outcome>>,
    queued: std::time::Instant,
}

enum Work {
    Hash(Password),
    Verify { candidate: Password, phc: Arc<str> },
}

enum Outcome {
    Hashed(String),
    Verified(bool),
}

impl Argon2Hasher {
    /// A hasher with `concurrency` hashing threads (at least one), each holding 19 MiB, and a
    /// queue of at most `queue` waiting requests (at least one).
    ///
    /// # Errors
    ///
    /// A thread cannot be started, or the dummy hash cannot be made.
    pub fn new(concurrency: usize, queue: usize) -> anyhow::Result<Self> {
        let (jobs, receiver) = flume::bounded::<Job>(queue.max(1));
        let stats = Arc::new(Stats::default());
        for i in 0..concurrency.max(1) {
            let (receiver, stats) = (receiver.clone(), Arc::clone(&stats));
            thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || work(&receiver, &stats))
                .context("cannot start a hashing thread")?;
        }
        // Made here, once, so that the first unknown account is refused as fast as the others.
        // (Its memory is freed at once; the threads' blocks are allocated once and kept.)
        let mut random = [0u8; 32];
        rand::fill(&mut random);
        let dummy = Password::candidate(hex(&random)).map_err(|err| anyhow!("{err}"))?;
        let params = Params::default();
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
        let mut memory = vec![Block::new(); params.block_count()];
        let dummy_hash = hash(&argon2, &params, &mut memory, &dummy)?;
        Ok(Self {
            jobs,
            stats,
            dummy_hash: dummy_hash.into(),
        })
    }

    /// What the hashing threads have done so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Queues `work` and waits for its outcome. Dropping the returned future before a thread
    /// has picked the work up means it is never done.
    async fn submit(&self, work: Work) -> anyhow::Result<Outcome> {
        let (reply, outcome) = oneshot::channel();
        let queued = std::time::Instant::now();
        self.jobs
            .try_send(Job {
                work,
                reply,
                queued,
            })
            .map_err(|err| match err {
                flume::TrySendError::Full(_) => anyhow::Error::new(Unavailable {
                    source: "too many passwords are waiting to be hashed".into(),
                }),
                flume::TrySendError::Disconnected(_) => anyhow!("the hashing threads are gone"),
            })?;
        outcome.await.context("a hashing thread failed")?
    }

    async fn verify_phc(&self, candidate: &Password, phc: Arc<str>) -> anyhow::Result<bool> {
        let work = Work::Verify {
            candidate: candidate.clone(),
            phc,
        };
        match self.submit(work).await? {
            Outcome::Verified(matches) => Ok(matches),
            Outcome::Hashed(_) => Err(anyhow!("a verification was asked for, a hash came back")),
        }
    }
}

/// A hashing thread: takes jobs until the hasher is dropped, with one argon2 memory block for
/// its whole life.
fn work(jobs: &flume::Receiver<Job>, stats: &Stats) {
    // Lowering one's own priority needs no privilege; if it fails anyway, hashing still works,
    // only without yielding to requests.
    if let Err(err) =
        thread_priority::set_current_thread_priority(thread_priority::ThreadPriority::Min)
    {
        tracing::warn!(?err, "cannot lower the priority of a hashing thread");
    }
    let params = Params::default();
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let mut memory = vec![Block::new(); params.block_count()];
    for job in jobs.iter() {
        if job.reply.is_closed() {
            stats.skipped.fetch_add(1, Ordering::SeqCst);
            continue;
        }
        metrics::histogram!("warden_password_hash_wait_seconds").record(job.queued.elapsed());
        let running = stats.running.fetch_add(1, Ordering::SeqCst) + 1;
        stats.peak_running.fetch_max(running, Ordering::SeqCst);
        stats.started.fetch_add(1, Ordering::SeqCst);
        let outcome = match &job.work {
            Work::Hash(password) => {
                hash(&argon2, &params, &mut memory, password).map(Outcome::Hashed)
            }
            Work::Verify { candidate, phc } => verify(&mut memory, candidate, phc),
        };
        stats.running.fetch_sub(1, Ordering::SeqCst);
        // The caller may have gone meanwhile; then nobody wants the answer.
        let _ = job.reply.send(outcome);
    }
}

fn hash(
    argon2: &Argon2<'_>,
    params: &Params,
    memory: &mut [Block],
    password: &Password,
) -> anyhow::Result<String> {
    let mut salt = [0u8; SALT_BYTES];
    rand::fill(&mut salt);
    let mut out = vec![0u8; params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN)];
    argon2
        .hash_password_into_with_memory(password.expose().as_bytes(), &salt, &mut out, memory)
        .map_err(|err| anyhow!("cannot hash password: {err}"))?;
    let phc = PhcHash {
        algorithm: ARGON2ID_IDENT,
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params).map_err(|err| anyhow!("{err}"))?,
        salt: Some(Salt::new(&salt).map_err(|err| anyhow!("{err}"))?),
        hash: Some(Output::new(&out).map_err(|err| anyhow!("{err}"))?),
    };
    Ok(phc.to_string())
}

fn verify(memory: &mut [Block], candidate: &Password, phc: &str) -> anyhow::Result<Outcome> {
    let stored = PhcHash::new(phc).map_err(|err| anyhow!("unreadable password hash: {err}"))?;
    let (Some(salt), Some(expected)) = (&stored.salt, &stored.hash) else {
        return Err(anyhow!("the password hash has no salt or no output"));
    };
    let algorithm = Algorithm::try_from(stored.algorithm.as_str())
        .map_err(|err| anyhow!("unreadable password hash: {err}"))?;
    let version = stored
        .version
        .map(Version::try_from)
        .transpose()
        .map_err(|err| anyhow!("unreadable password hash: {err}"))?
        .unwrap_or_default();
    let params =
        Params::try_from(&stored).map_err(|err| anyhow!("unreadable password hash: {err}"))?;
    let argon2 = Argon2::new(algorithm, version, params.clone());
    let mut out = vec![0u8; expected.len()];
    let password = candidate.expose().as_bytes();
    let salt = salt.as_ref();
    let computed = if params.block_count() <= memory.len() {
        argon2.hash_password_into_with_memory(password, salt, &mut out, &mut *memory)
    } else {
        // A hash made with more memory than today's parameters (from before a change of them):
        // it needs its own allocation, once.
        argon2.hash_password_into(password, salt, &mut out)
    };
    computed.map_err(|err| anyhow!("cannot verify password: {err}"))?;
    let computed = Output::new(&out).map_err(|err| anyhow!("{err}"))?;
    // `Output`'s equality is constant-time.
    Ok(Outcome::Verified(&computed == expected))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[async_trait]
impl PasswordHasher for Argon2Hasher {
    async fn hash(&self, password: &Password) -> anyhow::Result<PasswordHash> {
        match self.submit(Work::Hash(password.clone())).await? {
            Outcome::Hashed(phc) => Ok(PasswordHash::new(phc)),
            Outcome::Verified(_) => Err(anyhow!("a hash was asked for, a verification came back")),
        }
    }

    async fn verify_password(
        &self,
        candidate: &Password,
        hash: &PasswordHash,
    ) -> anyhow::Result<bool> {
        self.verify_phc(candidate, hash.as_str().into()).await
    }

    async fn verify_dummy(&self, candidate: &Password) -> anyhow::Result<()> {
        self.verify_phc(candidate, Arc::clone(&self.dummy_hash))
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
