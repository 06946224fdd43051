#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]
//! Issue 17: the scaled-out deployment of `deploy/run.sh` (LB → two gateway processes → nginx
//! cache → the stand-in process), driven over HTTP. The stand-in's own count of the requests
//! it received (`/_standin/counts`) shows what the cache collapsed.
//!
//! Needs nginx (`scripts/install-deps.sh` installs Debian's `nginx-light`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// The deployment, stopped (by the pids `deploy/run.sh` recorded) when dropped.
struct Deployment {
    dir: PathBuf,
    env: HashMap<String, String>,
}

impl Deployment {
    fn start(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "tower-electric-deploy-{}-{name}",
            std::process::id()
        ));
        let status = Command::new("bash")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/run.sh"))
            .arg("start")
            .env("DEPLOY_DIR", &dir)
            .env("CARGO_PROFILE", "dev")
            .status()
            .expect("bash runs deploy/run.sh");
        let deployment = Self {
            env: HashMap::new(),
            dir,
        };
        assert!(
            status.success(),
            "deploy/run.sh start failed (is nginx installed? scripts/install-deps.sh)"
        );
        let text = std::fs::read_to_string(deployment.dir.join("env")).unwrap();
        let mut deployment = deployment;
        deployment.env = text
            .lines()
            .filter_map(|line| line.split_once('='))
            .map(|(key, value)| (key.to_owned(), value.trim_matches('"').to_owned()))
            .collect();
        deployment
    }

    fn url(&self, name: &str) -> &str {
        &self.env[name]
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/run.sh"))
            .arg("stop")
            .env("DEPLOY_DIR", &self.dir)
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

struct Answer {
    status: StatusCode,
    headers: http::HeaderMap,
    body: Bytes,
}

impl Answer {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|value| value.to_str().unwrap())
            .unwrap_or_else(|| panic!("no {name}: {:?}", self.headers))
    }

    /// The change messages' values.
    fn values(&self) -> Vec<Value> {
        let messages: Vec<Value> = serde_json::from_slice(&self.body).unwrap();
        messages
            .into_iter()
            .filter_map(|message| message.get("value").cloned())
            .collect()
    }
}

fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

async fn send(method: http::Method, url: &str, token: Option<&str>, body: &str) -> Answer {
    let mut request = Request::builder().method(method).uri(url);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let request = request
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap();
    // A guard against a hung test (a long-poll is held up to 20 s), not a timing assertion.
    let response = tokio::time::timeout(Duration::from_secs(60), client().request(request))
        .await
        .expect("no answer")
        .unwrap();
    let (parts, body) = response.into_parts();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes(),
    }
}

async fn get(url: &str, token: &str) -> Answer {
    send(http::Method::GET, url, Some(token), "").await
}

/// What the stand-in has received so far: `(shape, snapshot, live)` request counts.
async fn counts(deployment: &Deployment) -> (u64, u64, u64) {
    let answer = send(
        http::Method::GET,
        &format!("{}/_standin/counts", deployment.url("STANDIN_URL")),
        None,
        "",
    )
    .await;
    let counts: Value = serde_json::from_slice(&answer.body).unwrap();
    let field = |name: &str| counts[name].as_u64().unwrap();
    (field("shape"), field("snapshot"), field("live"))
}

/// Every value is the tenant's and none has a column the policy hides.
fn assert_only(values: &[Value], tenant: &str) {
    assert!(!values.is_empty());
    for value in values {
        assert_eq!(value["tenant_id"], tenant, "{value}");
        assert!(value.get("internal_note").is_none(), "{value}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_tier_collapses_one_tenants_requests_and_keeps_tenants_apart() {
    let deployment = Deployment::start("collapse");
    let lb = deployment.url("LB_URL").to_owned();

    // A snapshot through the LB: alice sees acme's rows, decrypted, without the hidden column.
    let before = counts(&deployment).await;
    let first = get(
        &format!("{lb}/v1/shape?table=items&offset=-1"),
        "alice-token",
    )
    .await;
    assert_eq!(first.status, StatusCode::OK);
    let rows = first.values();
    assert_only(&rows, "acme");
    // Decrypted by the gateway: the stored ciphertext is base64, without spaces.
    assert!(rows
        .iter()
        .all(|row| row["title"].as_str().is_some_and(|t| t.contains(' '))));
    assert!(first.header("cache-control").starts_with("private"));
    let after_first = counts(&deployment).await;
    assert_eq!(
        after_first.1,
        before.1 + 1,
        "the first snapshot reaches Electric"
    );

    // The same shape, spelled another way, through either replica: answered by the cache.
    for query in [
        "table=items&offset=-1",
        "offset=-1&%74able=public.items&log=full",
        "table=%22public%22.%22items%22&offset=-1&columns=done,title,tenant_id,id",
    ] {
        let again = get(&format!("{lb}/v1/shape?{query}"), "alice-token").await;
        assert_eq!(again.status, StatusCode::OK, "{query}");
        assert_eq!(again.values(), rows, "{query}");
        assert_eq!(again.header("etag"), first.header("etag"));
    }
    assert_eq!(
        counts(&deployment).await.1,
        after_first.1,
        "one snapshot request for alice"
    );

    // A client's validator: the cache answers 304 from its entry, Electric is not asked.
    let shape_requests = counts(&deployment).await.0;
    let etag = first.header("etag").to_owned();
    let request = Request::get(format!("{lb}/v1/shape?table=items&offset=-1"))
        .header("authorization", "Bearer alice-token")
        .header("if-none-match", &etag)
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = client().request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(response.headers()["etag"], etag.as_str());
    assert_eq!(counts(&deployment).await.0, shape_requests);

    // Another tenant: its own URL, so its own request, never alice's cached rows.
    let bob = get(&format!("{lb}/v1/shape?table=items&offset=-1"), "bob-token").await;
    assert_eq!(bob.status, StatusCode::OK);
    assert_only(&bob.values(), "globex");
    assert_eq!(counts(&deployment).await.1, after_first.1 + 1);

    // Two of alice's clients holding the same live poll: one request at Electric.
    let handle = first.header("electric-handle").to_owned();
    let offset = first.header("electric-offset").to_owned();
    let live =
        format!("{lb}/v1/shape?table=items&handle={handle}&offset={offset}&live=true&cursor=");
    let live_before = counts(&deployment).await.2;
    let one = tokio::spawn({
        let live = live.clone();
        async move { get(&live, "alice-token").await }
    });
    // Wait (bounded) until the first poll is held by Electric, then send the second.
    let mut held = false;
    for _ in 0..200 {
        if counts(&deployment).await.2 > live_before {
            held = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(held, "the first live poll never reached Electric");
    let two = tokio::spawn({
        let live = live.clone();
        async move { get(&live, "alice-token").await }
    });
    // Let the second reach the cache's lock before the change (no assertion on time: were it
    // later, it is answered from the cached entry, still without a request to Electric).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let write = send(
        http::Method::POST,
        &format!("{}/_standin/items", deployment.url("STANDIN_URL")),
        None,
        r#"{"id": 50, "tenant_id": "acme", "title": "Written from outside"}"#,
    )
    .await;
    assert_eq!(write.status, StatusCode::OK);
    for answer in [one.await.unwrap(), two.await.unwrap()] {
        assert_eq!(answer.status, StatusCode::OK);
        let values = answer.values();
        assert_only(&values, "acme");
        assert!(
            values.iter().any(|v| v["title"] == "Written from outside"),
            "{values:?}"
        );
    }
    assert_eq!(
        counts(&deployment).await.2,
        live_before + 1,
        "one live request for both"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_streams_through_the_lb_and_the_cache_uncollapsed() {
    let deployment = Deployment::start("sse");
    let lb = deployment.url("LB_URL").to_owned();
    let first = get(
        &format!("{lb}/v1/shape?table=items&offset=-1"),
        "alice-token",
    )
    .await;
    let sse = format!(
        "{lb}/v1/shape?table=items&handle={}&offset={}&live=true&live_sse=true",
        first.header("electric-handle"),
        first.header("electric-offset")
    );
    let open = |url: String| async move {
        let request = Request::get(url)
            .header("authorization", "Bearer alice-token")
            .body(Full::new(Bytes::new()))
            .unwrap();
        client().request(request).await.unwrap()
    };
    // Each stream is its own request at Electric, at once: nginx can neither share a stream
    // nor store one, and through the cache's location the second would wait on its lock
    // (30 s) for the first. The 15 s guards sit well between an answer at once and that wait.
    let guard = Duration::from_secs(15);
    let live_before = counts(&deployment).await.2;
    let mut streams = Vec::new();
    for opened in 1..=2 {
        let response = tokio::time::timeout(guard, open(sse.clone()))
            .await
            .expect("the stream's head was held back");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        let waiting = std::time::Instant::now();
        while counts(&deployment).await.2 < live_before + opened {
            assert!(
                waiting.elapsed() < guard,
                "SSE stream {opened} never reached Electric"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        streams.push(response.into_body());
    }
    let write = send(
        http::Method::POST,
        &format!("{}/_standin/items", deployment.url("STANDIN_URL")),
        None,
        r#"{"id": 60, "tenant_id": "acme", "title": "Streamed"}"#,
    )
    .await;
    assert_eq!(write.status, StatusCode::OK);
    for mut body in streams {
        // The stand-in keeps a stream open for 60 s: within this guard the frame can only
        // have come because nothing on the way buffered the stream.
        let text = tokio::time::timeout(Duration::from_secs(30), async {
            let mut text = String::new();
            while !text.contains("Streamed") {
                let frame = body.frame().await.expect("the stream ended").unwrap();
                if let Some(data) = frame.data_ref() {
                    text.push_str(&String::from_utf8_lossy(data));
                }
            }
            text
        })
        .await
        .expect("the change's frame was held back");
        let frame = text
            .split("\n\n")
            .find(|frame| frame.contains("Streamed"))
            .unwrap();
        let message: Value =
            serde_json::from_str(frame.trim().trim_start_matches("data: ")).unwrap();
        assert_only(&[message["value"].clone()], "acme");
    }
}

/// The key of each file in the cache tier's cache directory (nginx writes it in plain text
/// into the file's header, as `KEY: ...`), with whether the file mentions `needle` anywhere.
fn cache_files(deployment: &Deployment, needle: &str) -> Vec<(String, bool)> {
    fn walk(dir: &std::path::Path, files: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, files);
            } else {
                files.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(&deployment.dir.join("cache"), &mut files);
    files
        .iter()
        .map(|file| {
            let bytes = std::fs::read(file).unwrap();
            let text = String::from_utf8_lossy(&bytes);
            let key = text
                .split_once("\nKEY: ")
                .and_then(|(_, rest)| rest.split_once('\n'))
                .map(|(key, _)| key.to_owned())
                .unwrap_or_default();
            (key, text.contains(needle))
        })
        .collect()
}

fn mode(path: PathBuf) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(&path).unwrap().permissions().mode() & 0o777
}

/// Electric's secret stays out of the cache files (their key leaves it out), and only a
/// request with the secret is answered from an entry: without it, or with another, the
/// request goes past the cache to Electric, which refuses it. What holds the secret is private.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_tier_keeps_the_secret_out_of_its_files_and_entries_from_requests_without_it() {
    let deployment = Deployment::start("secret");
    let secret = deployment.url("ELECTRIC_SECRET").to_owned();
    assert_eq!(secret.len(), 32, "128 random bits, in hex: {secret}");
    for private in ["env", "cache.conf", "cache.error.log", "gateway1.log"] {
        assert_eq!(mode(deployment.dir.join(private)), 0o600, "{private}");
    }
    assert_eq!(mode(deployment.dir.clone()), 0o711);
    assert_eq!(mode(deployment.dir.join("cache")), 0o700);
    assert_eq!(mode(deployment.dir.join("tmp")), 0o700);

    let lb = deployment.url("LB_URL").to_owned();
    let first = get(
        &format!("{lb}/v1/shape?table=items&offset=-1"),
        "alice-token",
    )
    .await;
    assert_eq!(first.status, StatusCode::OK);
    // The entry is written once the answer is whole: wait for it (bounded).
    let mut files = Vec::new();
    for _ in 0..100 {
        files = cache_files(&deployment, &secret);
        if !files.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(files.len(), 1, "{files:?}");
    let (key, has_secret) = files.remove(0);
    assert!(!has_secret, "the cache file holds the secret");
    assert!(
        key.starts_with("/v1/shape?") && !key.contains("secret"),
        "{key}"
    );

    // With the secret, wherever it stands: the entry, Electric not asked.
    let cache = deployment.url("CACHE_URL").to_owned();
    let requests = counts(&deployment).await.0;
    let mut bodies = Vec::new();
    for url in [
        format!("{cache}{key}&secret={secret}"),
        format!(
            "{cache}/v1/shape?secret={secret}&{}",
            &key["/v1/shape?".len()..]
        ),
    ] {
        let hit = send(http::Method::GET, &url, None, "").await;
        assert_eq!(hit.status, StatusCode::OK, "{url}");
        assert_eq!(counts(&deployment).await.0, requests, "{url}");
        bodies.push(hit.body);
    }
    assert_eq!(bodies[0], bodies[1]);
    // Without it, or with another: past the cache to Electric, which refuses it.
    for url in [
        format!("{cache}{key}"),
        format!("{cache}{key}&secret=guess"),
    ] {
        let before = counts(&deployment).await.0;
        let refused = send(http::Method::GET, &url, None, "").await;
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{url}");
        assert_eq!(counts(&deployment).await.0, before + 1, "{url}");
    }
    // The secret and another one: past the cache too, whichever Electric reads.
    let url = format!("{cache}{key}&secret={secret}&secret=guess");
    let before = counts(&deployment).await.0;
    send(http::Method::GET, &url, None, "").await;
    assert_eq!(counts(&deployment).await.0, before + 1, "{url}");
    assert_eq!(cache_files(&deployment, &secret).len(), 1);
}
