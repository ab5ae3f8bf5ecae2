use std::time::Duration;

use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};

use super::*;

fn password(raw: &str) -> Password {
    Password::candidate(raw.into()).unwrap()
}

#[tokio::test]
async fn a_hash_verifies_its_password_and_no_other() {
    let hasher = Argon2Hasher::new(2, 8).unwrap();
    let hash = hasher.hash(&password("correct horse")).await.unwrap();

    assert!(hash.as_str().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
    assert!(!hash.as_str().contains("correct horse"));
    assert!(
        hasher
            .verify_password(&password("correct horse"), &hash)
            .await
            .unwrap()
    );
    assert!(
        !hasher
            .verify_password(&password("battery staple"), &hash)
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn hashes_are_standard_phc_strings_both_ways() {
    let hasher = Argon2Hasher::new(1, 8).unwrap();
    // Ours verify with the argon2 crate's own verifier...
    let ours = hasher.hash(&password("correct horse")).await.unwrap();
    let standard = Argon2::default();
    let parsed = PhcHash::new(ours.as_str()).unwrap();
    assert!(standard.verify_password(b"correct horse", &parsed).is_ok());
    assert!(
        standard
            .verify_password(b"battery staple", &parsed)
            .is_err()
    );
    // ...and hashes made by it (stored before this hasher existed) verify with ours.
    let theirs = PasswordHash::new(
        standard
            .hash_password(b"correct horse")
            .unwrap()
            .to_string(),
    );
    assert!(
        hasher
            .verify_password(&password("correct horse"), &theirs)
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn the_same_password_hashes_differently_each_time() {
    let hasher = Argon2Hasher::new(2, 8).unwrap();
    let first = hasher.hash(&password("correct horse")).await.unwrap();
    let second = hasher.hash(&password("correct horse")).await.unwrap();
    assert_ne!(first, second);
}

#[tokio::test]
async fn an_unreadable_hash_is_an_error_not_a_mismatch() {
    let hasher = Argon2Hasher::new(1, 8).unwrap();
    let broken = PasswordHash::new("not a phc string".into());
    assert!(
        hasher
            .verify_password(&password("correct horse"), &broken)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn the_dummy_verification_succeeds_without_matching_anything() {
    let hasher = Argon2Hasher::new(1, 8).unwrap();
    hasher
        .verify_dummy(&password("correct horse"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_more_hashes_run_at_once_than_the_concurrency_even_when_callers_hang_up() {
    let hasher = Argon2Hasher::new(2, 64).unwrap();
    let hash = hasher.hash(&password("correct horse")).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..24 {
        let (hasher, hash) = (hasher.clone(), hash.clone());
        tasks.push(tokio::spawn(async move {
            let candidate = password("correct horse");
            let verify = hasher.verify_password(&candidate, &hash);
            if i % 2 == 0 {
                // A client that gives up after 5 ms: its future is dropped mid-hash or before.
                let _ = tokio::time::timeout(Duration::from_millis(5), verify).await;
            } else {
                assert!(verify.await.unwrap());
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    // Let the hashes of hung-up callers that had started finish.
    while hasher.stats().running.load(Ordering::SeqCst) > 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(hasher.stats().peak_running(), 2);
    assert!(
        hasher.stats().skipped() > 0,
        "no hung-up request was skipped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_abandoned_before_its_hash_starts_never_hashes() {
    let hasher = Argon2Hasher::new(1, 8).unwrap();
    let hash = hasher.hash(&password("correct horse")).await.unwrap();
    let started = hasher.stats().started();
    // One verification keeps the only thread busy...
    let busy = {
        let (hasher, hash) = (hasher.clone(), hash.clone());
        tokio::spawn(async move {
            hasher
                .verify_password(&password("correct horse"), &hash)
                .await
        })
    };
    while hasher.stats().started() == started {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // ...while another is queued and abandoned by its caller...
    let candidate = password("correct horse");
    let abandoned = hasher.verify_password(&candidate, &hash);
    assert!(
        tokio::time::timeout(Duration::from_millis(1), abandoned)
            .await
            .is_err()
    );
    // ...and a third waits behind it.
    assert!(
        hasher
            .verify_password(&password("correct horse"), &hash)
            .await
            .unwrap()
    );
    assert!(busy.await.unwrap().unwrap());
    assert_eq!(
        hasher.stats().started(),
        started + 2,
        "the abandoned one ran"
    );
    assert_eq!(hasher.stats().skipped(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_queue_is_unavailable_at_once_not_a_longer_wait() {
    let hasher = Argon2Hasher::new(1, 2).unwrap();
    let hash = hasher.hash(&password("correct horse")).await.unwrap();
    let attempts: Vec<_> = (0..12)
        .map(|_| {
            let (hasher, hash) = (hasher.clone(), hash.clone());
            tokio::spawn(async move {
                hasher
                    .verify_password(&password("correct horse"), &hash)
                    .await
            })
        })
        .collect();
    let mut refused = 0;
    for attempt in attempts {
        match attempt.await.unwrap() {
            Ok(matches) => assert!(matches),
            Err(err) => {
                assert!(warden_domain::error::is_unavailable(&err), "{err:#}");
                refused += 1;
            }
        }
    }
    assert!(refused > 0, "twelve requests fitted a queue of two");
}

/// The hashing threads yield the CPU to everything else: their niceness is the lowest there is.
#[cfg(target_os = "linux")]
#[test]
fn hashing_threads_run_at_the_lowest_priority() {
    fn hashing_threads_niceness() -> Vec<i64> {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(Result::ok)
            .filter(|task| {
                std::fs::read_to_string(task.path().join("comm"))
                    .is_ok_and(|comm| comm.starts_with("argon2-"))
            })
            .filter_map(|task| {
                let stat = std::fs::read_to_string(task.path().join("stat")).ok()?;
                // Field 19 of stat, counted after the parenthesised command name.
                stat.rsplit_once(')')?
                    .1
                    .split_whitespace()
                    .nth(16)?
                    .parse()
                    .ok()
            })
            .collect()
    }
    let _hasher = Argon2Hasher::new(2, 4).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let niceness = hashing_threads_niceness();
        if niceness.len() >= 2 && niceness.iter().all(|nice| *nice == 19) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "hashing threads' niceness: {niceness:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}
