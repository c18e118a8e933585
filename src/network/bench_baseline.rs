//! The baseline for `picket bench dispatch`: the same POST requests the sandbox adapter
//! makes, fired by a bare `reqwest` client with no store, rendering or pacing around them.
//! It shows how much of the dispatcher's time is picket's own and how much is HTTP. Here
//! because only `network/` speaks HTTP.

use std::time::{Duration, Instant};

use futures::StreamExt;

/// Send `n` posts to the sandbox receiver at `base_url`, `concurrency` at a time, each from
/// its own token and key (so the receiver creates every one, as it does for the
/// dispatcher's posts); returns the wall time and how many were answered 2xx.
pub async fn fire(base_url: &str, n: usize, concurrency: usize) -> (Duration, usize) {
    // The same client the sandbox adapter uses (the receiver is the operator's own).
    let client = super::Egress::new(false).trusted().clone();
    let url = format!("{}/api/v1/statuses", base_url.trim_end_matches('/'));
    let started = Instant::now();
    let ok = futures::stream::iter(0..n)
        .map(|i| {
            let client = client.clone();
            let url = url.clone();
            async move {
                let resp = client
                    .post(&url)
                    .bearer_auth(&format!("baseline-token-{i}"))
                    .header("Idempotency-Key", &format!("baseline-key-{i}"))
                    .timeout(Duration::from_secs(30))
                    .json(&serde_json::json!({
                        "status": format!("Baseline post {i} #BenchStrike https://picket.example/i/abcdefghjkmn"),
                        "scheduled_for": chrono::DateTime::<chrono::Utc>::UNIX_EPOCH,
                        "slot": "baseline",
                    }))
                    .send()
                    .await;
                match resp {
                    Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
                    _ => false,
                }
            }
        })
        .buffer_unordered(concurrency.max(1))
        .filter(|ok| std::future::ready(*ok))
        .count()
        .await;
    (started.elapsed(), ok)
}
