//! Centerless totals between real `picket serve` processes on loopback: each host has its
//! own database, host key (made by `picket host key`, pasted into the others'
//! `[[peers]]`) and signatures, and shows the verified total of all. Impostors, rollbacks,
//! edited declarations and hosts that go away are flagged and left out; the checkpoint
//! format is checked by an independent verifier in Python (`cryptography`).

use std::time::{Duration, Instant};

use picket::federation::HostKey;
use serde_json::json;

use crate::support::{BUNDLED, Installation, Options, TestApp, eventually, require_server};

/// Short rounds, and loopback peers allowed (they are private addresses).
fn settings(refresh_secs: u64) -> String {
    format!("allow_private_addresses = true\nfederation_refresh_secs = {refresh_secs}\n")
}

/// A host not serving yet, with its address fixed and its key made.
struct Host {
    install: Installation,
    base: String,
    key: String,
}

fn host(options: Options, refresh_secs: u64) -> Host {
    let install = options
        .own_address()
        .process()
        .config(&settings(refresh_secs))
        .install();
    let base = install.fixed_base().expect("own address");
    let out = install.run(&["host", "key"]);
    let key = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert_eq!(key.lines().count(), 1, "one line to paste: {key}");
    Host { install, base, key }
}

/// Add `[[peers]]` entries to the host's settings file.
fn add_peers(host: &Host, peers: &[(&str, &str)]) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(host.install.dir().join("picket.toml"))
        .unwrap();
    for (url, key) in peers {
        writeln!(f, "\n[[peers]]\nurl = \"{url}\"\nkey = \"{key}\"").unwrap();
    }
}

async fn sign(app: &TestApp, name: &str) {
    let resp = app.api_sign(json!({ "name": name })).await;
    assert_eq!(resp.status(), 201, "signing as {name}");
}

async fn hosts(app: &TestApp) -> serde_json::Value {
    app.stats(BUNDLED).await["hosts"].clone()
}

/// The peer at `url` in `hosts`, if listed.
fn peer<'a>(hosts: &'a serde_json::Value, url: &str) -> Option<&'a serde_json::Value> {
    hosts["peers"].as_array()?.iter().find(|p| p["url"] == url)
}

fn status_of(hosts: &serde_json::Value, url: &str) -> String {
    peer(hosts, url).map_or("unlisted".into(), |p| {
        p["status"].as_str().unwrap_or("?").into()
    })
}

#[tokio::test]
async fn five_hosts_agree_on_the_total_within_two_refresh_intervals() {
    // Long enough that a busy CI machine answers well within one interval.
    let refresh = 5;
    let hosts_: Vec<Host> = (0..5).map(|_| host(Options::default(), refresh)).collect();
    for (i, h) in hosts_.iter().enumerate() {
        let others: Vec<(&str, &str)> = hosts_
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, o)| (o.base.as_str(), o.key.as_str()))
            .collect();
        add_peers(h, &others);
    }
    let mut apps = Vec::new();
    for h in &hosts_ {
        apps.push(h.install.serve().await);
    }
    // Host i has i + 1 signatures of its own: 15 in all.
    for (i, app) in apps.iter().enumerate() {
        for n in 0..=i {
            sign(app, &format!("Signer {i}-{n}")).await;
        }
    }
    for app in &apps {
        eventually(
            Duration::from_secs(60),
            "every host to count 15 across 5 hosts",
            async || {
                let h = hosts(app).await;
                if h["signatures"] == 15 && h["counted_hosts"] == 5 {
                    Ok(())
                } else {
                    Err(h.to_string())
                }
            },
        )
        .await;
    }
    let h = hosts(&apps[0]).await;
    for other in &hosts_[1..] {
        assert_eq!(status_of(&h, &other.base), "verified");
    }
    assert_eq!(
        apps[0].signatures(BUNDLED).await,
        1,
        "its own count stays its own"
    );
    // Every view shows the total across hosts, the stats API's `hosts`.
    let text = async |path: &str| apps[0].get(path).await.text().await.unwrap();
    let page = text(&format!("/c/{BUNDLED}")).await;
    assert!(
        page.contains("<strong>15</strong> across 5 hosts"),
        "{page}"
    );
    assert!(page.contains("counts twice"));
    let badge = text(&format!("/c/{BUNDLED}/badge.svg")).await;
    assert!(badge.contains("15 signed across 5 hosts"), "{badge}");
    let stats = text(&format!("/c/{BUNDLED}/stats")).await;
    assert!(
        stats.contains(r#"<td id="hosts-signatures">15</td>"#),
        "{stats}"
    );
    let widget = text("/widget.js").await;
    assert!(
        widget.contains(r#""signatures":15,"strikers":0,"hosts":5"#),
        "widget data"
    );
    let listed = text(&format!("/c/{BUNDLED}/hosts")).await;
    assert_eq!(
        listed.matches(r#"data-status="verified""#).count(),
        4,
        "{listed}"
    );

    // One more signature anywhere reaches every host within two refresh intervals.
    sign(&apps[2], "Latecomer").await;
    let signed = Instant::now();
    for app in &apps {
        eventually(
            Duration::from_secs(60),
            "every host to count 16",
            async || hosts(app).await["signatures"] == 16,
        )
        .await;
    }
    let took = signed.elapsed();
    assert!(
        took <= Duration::from_secs(2 * refresh),
        "the hosts agreed after {took:?}, more than two refresh intervals of {refresh} s"
    );
}

#[tokio::test]
async fn a_peer_signed_by_another_key_is_bad_signature_and_not_counted() {
    let a = host(Options::default(), 1);
    let b = host(Options::default(), 1);
    let impostor = HostKey::from_seed([42; 32]).verifier(&b.base).to_string();
    add_peers(&a, &[(&b.base, &impostor)]);
    let (app_a, app_b) = (a.install.serve().await, b.install.serve().await);
    sign(&app_a, "Ann").await;
    sign(&app_b, "Bo").await;
    sign(&app_b, "Bea").await;
    let h = eventually(
        Duration::from_secs(30),
        "B to be bad_signature",
        async || {
            let h = hosts(&app_a).await;
            if status_of(&h, &b.base) == "bad_signature" {
                Ok(h)
            } else {
                Err(h.to_string())
            }
        },
    )
    .await;
    assert_eq!(
        (h["signatures"].clone(), h["counted_hosts"].clone()),
        (json!(1), json!(1))
    );
    assert_eq!(
        peer(&h, &b.base).unwrap()["signatures"],
        0,
        "nothing of it is kept"
    );
}

#[tokio::test]
async fn a_peer_that_restarts_its_chain_is_shown_as_rollback_and_not_counted() {
    let a = host(Options::default(), 1);
    let b = host(Options::default(), 1);
    add_peers(&a, &[(&b.base, &b.key)]);
    let app_a = a.install.serve().await;
    let app_b = b.install.serve().await;
    for name in ["Bo", "Bea", "Ben"] {
        sign(&app_b, name).await;
    }
    eventually(Duration::from_secs(30), "A to count B's 3", async || {
        let h = hosts(&app_a).await;
        (status_of(&h, &b.base) == "verified" && h["signatures"] == 3)
            .then_some(())
            .ok_or(h.to_string())
    })
    .await;

    // B starts over on a fresh database with the same key: its chain starts again at 1.
    app_b.stop();
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(b.install.dir().join(format!("picket.db{suffix}")));
    }
    let app_b = b.install.serve().await;
    sign(&app_b, "Bob").await;
    let h = eventually(Duration::from_secs(30), "B to be rollback", async || {
        let h = hosts(&app_a).await;
        if status_of(&h, &b.base) == "rollback" {
            Ok(h)
        } else {
            Err(h.to_string())
        }
    })
    .await;
    assert_eq!(h["signatures"], 0, "a rolled-back host is left out: {h}");
    assert_eq!(
        peer(&h, &b.base).unwrap()["signatures"],
        3,
        "its last good checkpoint is kept"
    );
}

#[tokio::test]
async fn a_peer_with_an_edited_declaration_is_counted_apart() {
    let a = host(Options::default(), 1);
    let edited = format!(
        "{}\nAnd one more sentence that only this copy has.\n",
        std::fs::read_to_string(crate::support::bundled_dir().join("declaration.md")).unwrap()
    );
    let b = host(
        Options::default().campaign_file("declaration.md", &edited),
        1,
    );
    add_peers(&a, &[(&b.base, &b.key)]);
    let (app_a, app_b) = (a.install.serve().await, b.install.serve().await);
    sign(&app_a, "Ann").await;
    sign(&app_b, "Bo").await;
    sign(&app_b, "Bea").await;
    let h = eventually(
        Duration::from_secs(30),
        "B to be different_declaration",
        async || {
            let h = hosts(&app_a).await;
            if status_of(&h, &b.base) == "different_declaration" && h["copies"]["signatures"] == 2 {
                Ok(h)
            } else {
                Err(h.to_string())
            }
        },
    )
    .await;
    assert_eq!(
        (h["signatures"].clone(), h["counted_hosts"].clone()),
        (json!(1), json!(1))
    );
    assert_eq!(h["copies"]["hosts"], 1);
    let page = app_a
        .get(&format!("/c/{BUNDLED}/hosts"))
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("Copies with changes"), "{page}");
    assert!(
        page.contains("counts twice"),
        "the page says a person can count twice"
    );
}

#[tokio::test]
async fn a_peer_that_goes_away_becomes_stale_then_unreachable_without_blocking_the_others() {
    let a = host(Options::default(), 1);
    let b = host(Options::default(), 1);
    let c = host(Options::default(), 1);
    // A peer that accepts connections and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_url = format!("http://{}", silent.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = silent.accept().await {
            held.push(conn);
        }
    });
    let silent_key = HostKey::from_seed([7; 32])
        .verifier(&silent_url)
        .to_string();
    add_peers(
        &a,
        &[
            (&b.base, &b.key),
            (&c.base, &c.key),
            (&silent_url, &silent_key),
        ],
    );
    let app_a = a.install.serve().await;
    let app_b = b.install.serve().await;
    let app_c = c.install.serve().await;
    sign(&app_b, "Bo").await;
    sign(&app_c, "Cy").await;
    eventually(Duration::from_secs(30), "B and C verified", async || {
        let h = hosts(&app_a).await;
        (h["signatures"] == 2 && h["counted_hosts"] == 3)
            .then_some(())
            .ok_or(h.to_string())
    })
    .await;

    app_c.stop();
    eventually(Duration::from_secs(30), "C to be stale", async || {
        let h = hosts(&app_a).await;
        (status_of(&h, &c.base) == "stale")
            .then_some(())
            .ok_or(h.to_string())
    })
    .await;
    // Meanwhile B goes on being read: a new signature there is counted.
    sign(&app_b, "Bea").await;
    eventually(
        Duration::from_secs(30),
        "B's new signature counted",
        async || {
            let h = hosts(&app_a).await;
            (h["signatures"] == 2
                && status_of(&h, &b.base) == "verified"
                && peer(&h, &b.base).unwrap()["signatures"] == 2)
                .then_some(())
                .ok_or(h.to_string())
        },
    )
    .await;
    let h = eventually(Duration::from_secs(60), "C to be unreachable", async || {
        let h = hosts(&app_a).await;
        if status_of(&h, &c.base) == "unreachable" {
            Ok(h)
        } else {
            Err(h.to_string())
        }
    })
    .await;
    assert_eq!(status_of(&h, &silent_url), "unreachable");
    assert_eq!(status_of(&h, &b.base), "verified");

    let out = a.install.run(&["peers", BUNDLED, "--format", "json"]);
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let statuses: Vec<(String, String)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["id"].as_str().unwrap().to_string(),
                p["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        statuses.contains(&(b.base.clone(), "verified".into())),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&(c.base.clone(), "unreachable".into())),
        "{statuses:?}"
    );
}

#[tokio::test]
async fn a_checkpoint_is_verified_by_an_independent_python_verifier() {
    let Some(python) = require_server("PICKET_TEST_PYTHON") else {
        return;
    };
    // A host key whose printed form has a '+' in its base64 (the separator of its parts).
    let app = TestApp::spawn(
        Options::default()
            .own_address()
            .config(r#"host_key = "CAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAg=""#),
    )
    .await;
    let public_url = app.state().settings.public_url.clone();
    let key = app.state().host_key.verifier(&public_url).to_string();
    assert!(
        key.split_once('+')
            .unwrap()
            .1
            .split_once('+')
            .unwrap()
            .1
            .contains('+')
    );
    let note = |app: &TestApp| {
        let url = app.url(&format!("/c/{BUNDLED}/checkpoint"));
        let http = app.http.clone();
        async move { http.get(url).send().await.unwrap().text().await.unwrap() }
    };
    let first = note(&app).await;
    sign(&app, "Ann").await;
    let second = eventually(Duration::from_secs(10), "a new checkpoint", async || {
        let n = note(&app).await;
        (n != first).then_some(n)
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let (key_path, first_path, second_path) = (
        file("key", &key),
        file("first", &first),
        file("second", &second),
    );
    let verifier = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scripts/checkpoint-verifier/verify.py"
    );
    let run = |args: &[&std::path::Path]| {
        std::process::Command::new(&python)
            .arg(verifier)
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&[&key_path, &second_path, &first_path]);
    assert!(
        out.status.success(),
        "{}{}\n{first}\n{second}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let fields: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(fields["campaign"], BUNDLED);
    assert_eq!(fields["url"], public_url.trim_end_matches('/'));
    assert_eq!(fields["signatures"], 1);
    assert_eq!(fields["sequence"], 2);

    let tampered = file(
        "tampered",
        &second.replace("signatures 1\n", "signatures 9\n"),
    );
    let out = run(&[&key_path, &tampered]);
    assert!(!out.status.success(), "a changed count must not verify");
    let out = run(&[&key_path, &first_path, &second_path]);
    assert!(
        !out.status.success(),
        "the chain read backwards must not link"
    );
}

#[tokio::test]
async fn hosts_sharing_a_sketch_key_estimate_distinct_signers_and_others_show_none() {
    let shared = "distinct_signers_key = \"shared-by-a-and-b-only-0123\"\n";
    let a = host(Options::default().config(shared), 1);
    let b = host(Options::default().config(shared), 1);
    add_peers(&a, &[(&b.base, &b.key)]);
    add_peers(&b, &[(&a.base, &a.key)]);
    let (app_a, app_b) = (a.install.serve().await, b.install.serve().await);
    let signed = async |app: &TestApp, name: &str, email: Option<&str>| {
        let body = match email {
            Some(e) => json!({ "name": name, "email": e }),
            None => json!({ "name": name }),
        };
        assert_eq!(app.api_sign(body).await.status(), 201);
    };
    for (name, email) in [
        ("Ann", "ann@a.example"),
        ("Al", "al@a.example"),
        ("Sam", "sam@both.example"),
    ] {
        signed(&app_a, name, Some(email)).await;
    }
    signed(&app_b, "Bo", Some("bo@b.example")).await;
    signed(&app_b, "Sam", Some("Sam@Both.example")).await;
    signed(&app_b, "Anonymous", None).await;
    // 6 signatures, 5 people: Sam signed on both hosts.
    let h = eventually(
        Duration::from_secs(30),
        "an estimate of 5 people",
        async || {
            let h = hosts(&app_a).await;
            if h["signatures"] == 6 && h["distinct_signers"] == 5 {
                Ok(h)
            } else {
                Err(h.to_string())
            }
        },
    )
    .await;
    assert_eq!(h["counted_hosts"], 2);
    let sketch = app_a
        .get(&format!("/c/{BUNDLED}/sketch"))
        .await
        .text()
        .await
        .unwrap();
    assert!(sketch.starts_with("picket sketch v1\n"), "{sketch}");
    let page = app_a
        .get(&format!("/c/{BUNDLED}/hosts"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("About <strong>5</strong> different people"),
        "{page}"
    );
    assert!(
        !sketch.contains("example"),
        "no address leaves the host: {sketch}"
    );

    // A host without the key makes no sketch, and a total with it shows no estimate.
    let c = host(Options::default(), 1);
    add_peers(&c, &[(&a.base, &a.key)]);
    let app_c = c.install.serve().await;
    let h = eventually(Duration::from_secs(30), "C to count A", async || {
        let h = hosts(&app_c).await;
        (h["signatures"] == 3)
            .then_some(h.clone())
            .ok_or(h.to_string())
    })
    .await;
    assert_eq!(h["distinct_signers"], serde_json::Value::Null);
    assert_eq!(
        app_c.get(&format!("/c/{BUNDLED}/sketch")).await.status(),
        404
    );
}
