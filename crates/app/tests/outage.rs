//! A database outage under load, against a real PostgreSQL: a fault-injecting TCP proxy between
//! Warden and the server cuts every connection and refuses new ones, then lets them through
//! again. The machine's server itself is never stopped.
//!
//! While the database is cut off, calls that need it answer 503 with `Retry-After` (never 500,
//! never a hang) and readiness is 503; once it is back, everything recovers by itself within
//! seconds, and no write that was acknowledged is lost.

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use poem::http::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::postgres::PgConnectOptions;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;
use warden_adapters::testing::TestDb;
use warden_adapters::{Store, StoreOptions};
use warden_app::testing::{self, TestApp};
use warden_domain::{
    accounts::UserId,
    posts::{Page, PostQuery, PostRepository},
};

/// A TCP proxy that can cut its connections.
struct Proxy {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<AbortHandle>>>,
}

impl Proxy {
    async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let connections = Arc::new(Mutex::new(Vec::new()));
        let (accepting, tracked) = (up.clone(), connections.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if !accepting.load(Ordering::SeqCst) {
                    continue; // dropped: the connection is closed at once
                }
                let upstream = upstream.clone();
                let forward = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                tracked.lock().unwrap().push(forward.abort_handle());
            }
        });
        Self {
            addr,
            up,
            connections,
        }
    }

    /// Closes every connection and refuses new ones.
    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for connection in self.connections.lock().unwrap().drain(..) {
            connection.abort();
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

/// One request's outcome: when it started, how long it took, its status, whether a 503 said
/// when to retry, and the title of the post it tried to write.
struct Outcome {
    started: Duration,
    took: Duration,
    status: StatusCode,
    retry_after: bool,
    title: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_outage_is_503_with_retry_after_and_recovers_losing_no_acknowledged_write() {
    let db = Arc::new(TestDb::postgres().await);
    let options = PgConnectOptions::from_str(db.url()).unwrap();
    let upstream = format!("{}:{}", options.get_host(), options.get_port());
    let proxy = Proxy::start(upstream.clone()).await;
    let proxied_url = db.url().replacen(&upstream, &proxy.addr.to_string(), 1);
    assert_ne!(
        proxied_url,
        db.url(),
        "DATABASE_URL must name host and port explicitly"
    );

    // Warden as `serve` builds it, but on the proxy.
    let store = Store::connect(
        &proxied_url,
        &StoreOptions {
            max_connections: 5,
            ..StoreOptions::default()
        },
    )
    .await
    .unwrap();
    let config = testing::config(&proxied_url, &[]);
    let app = Arc::new(TestApp::with_store(Arc::clone(&db), store, config));
    let ann = app.user("ann@example.com").await;
    let ann_login = format!(
        "username={}&password={}",
        testing::encode(&ann.email),
        testing::encode(&ann.password)
    );
    let user_id = UserId::new(ann.id);

    // Four writers create posts for eight seconds; the database is cut off from 1.5 s to 4 s.
    let start = Instant::now();
    let (cut_at, restore_at, end_at) = (
        Duration::from_millis(1500),
        Duration::from_millis(4000),
        Duration::from_millis(8000),
    );
    let writers: Vec<_> = (0..4)
        .map(|writer| {
            let (app, bearer) = (Arc::clone(&app), ann.bearer.clone());
            tokio::spawn(async move {
                let mut outcomes = Vec::new();
                for i in 0.. {
                    let started = start.elapsed();
                    if started > end_at {
                        break;
                    }
                    let title = format!("writer {writer} post {i}");
                    let body = json!({"title": title, "content": "under load"});
                    let response = app.call(Method::POST, "/posts", &bearer, Some(body)).await;
                    outcomes.push(Outcome {
                        started,
                        took: start.elapsed() - started,
                        status: response.0.status(),
                        retry_after: response.0.headers().contains_key("retry-after"),
                        title,
                    });
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                outcomes
            })
        })
        .collect();

    tokio::time::sleep_until((start + cut_at).into()).await;
    proxy.cut();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ready = app.client.get("/health/ready").send().await;
    ready.assert_status(StatusCode::SERVICE_UNAVAILABLE);
    assert!(ready.0.headers().contains_key("retry-after"));
    // The token endpoint says so in its own shape; a protected read cannot check its token.
    let login = app.login_form(&ann_login).await;
    login.assert_status(StatusCode::SERVICE_UNAVAILABLE);
    assert!(login.0.headers().contains_key("retry-after"));
    assert_eq!(login.0.headers().get("cache-control").unwrap(), "no-store");
    let body: Value = login.0.into_body().into_json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable");
    let me = app.get_with("/users/me", &ann.bearer).await;
    me.assert_status(StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = me.0.into_body().into_json().await.unwrap();
    assert_eq!(
        body["detail"],
        "Service temporarily unavailable, try again shortly"
    );
    tokio::time::sleep_until((start + restore_at).into()).await;
    proxy.restore();

    let mut outcomes = Vec::new();
    for writer in writers {
        outcomes.extend(writer.await.unwrap());
    }
    app.client
        .get("/health/ready")
        .send()
        .await
        .assert_status_is_ok();

    // Only 201 or 503, every 503 with Retry-After, no request held for long.
    for outcome in &outcomes {
        assert!(
            matches!(
                outcome.status,
                StatusCode::CREATED | StatusCode::SERVICE_UNAVAILABLE
            ),
            "{} at {:?}: {}",
            outcome.title,
            outcome.started,
            outcome.status
        );
        if outcome.status == StatusCode::SERVICE_UNAVAILABLE {
            assert!(outcome.retry_after, "a 503 without Retry-After");
        }
        assert!(
            outcome.took < Duration::from_secs(6),
            "a request hung for {:?}",
            outcome.took
        );
    }
    let unavailable = outcomes
        .iter()
        .filter(|o| o.status == StatusCode::SERVICE_UNAVAILABLE)
        .count();
    assert!(unavailable > 0, "the outage went unnoticed");
    // Recovered within seconds of the database coming back.
    let recovered = outcomes
        .iter()
        .filter(|o| o.status == StatusCode::CREATED && o.started > restore_at)
        .map(|o| o.started)
        .min()
        .expect("nothing succeeded after the outage");
    assert!(
        recovered - restore_at < Duration::from_secs(5),
        "recovery took {:?}",
        recovered - restore_at
    );
    assert!(
        outcomes
            .iter()
            .filter(|o| o.started > recovered)
            .all(|o| o.status == StatusCode::CREATED),
        "failures after recovery"
    );

    // Every acknowledged write is in the database, read directly, not through the proxy.
    let mut titles: Vec<String> = Vec::new();
    for skip in (0..).step_by(100) {
        let query = PostQuery {
            viewer: user_id,
            search: None,
            page: Page::new(100, skip).unwrap(),
        };
        let page = db.store().list_posts(&query).await.unwrap();
        titles.extend(page.posts.iter().map(|post| post.title.as_str().to_owned()));
        if titles.len() >= usize::try_from(page.total).unwrap() {
            break;
        }
    }
    for outcome in outcomes.iter().filter(|o| o.status == StatusCode::CREATED) {
        assert!(
            titles.contains(&outcome.title),
            "acknowledged {} was lost",
            outcome.title
        );
    }
}
