//! The `picket` binary as a user runs it: exit codes, output formats, startup and shutdown.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::support::{Options, TestApp};

fn picket(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_picket"))
        .current_dir(dir)
        .args(args)
        .env("PICKET_LOG", "warn")
        .env_remove("PICKET_DATABASE_URL")
        .env_remove("PICKET_CAMPAIGNS")
        .env_remove("PICKET_CONFIG")
        .output()
        .expect("picket runs")
}

fn fixtures() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/campaigns")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn campaign_check_exits_0_for_the_bundled_campaigns() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = picket(root, &["campaign", "check", "campaigns/"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout(&out).is_empty());
}

#[test]
fn campaign_check_prints_file_line_col_and_exits_2_for_bad_files() {
    let bad = fixtures().join("bad");
    let out = picket(
        &bad,
        &[
            "campaign",
            "check",
            "unknown-zone.toml",
            "impossible-date.toml",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    for line in lines {
        let mut parts = line.splitn(4, ':');
        let (file, l, c) = (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        );
        assert!(file.ends_with(".toml"), "{line}");
        assert!(
            l.parse::<usize>().is_ok() && c.parse::<usize>().is_ok(),
            "{line}"
        );
    }
    assert!(
        text.contains("America/New_York"),
        "suggests the right zone: {text}"
    );
}

#[test]
fn campaign_check_of_a_folder_reports_every_bad_file() {
    let out = picket(&fixtures(), &["campaign", "check", "bad"]);
    assert_eq!(out.status.code(), Some(2));
    let files: std::collections::HashSet<String> = stdout(&out)
        .lines()
        .map(|l| l.split(':').next().unwrap().to_string())
        .collect();
    let expected = std::fs::read_dir(fixtures().join("bad"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "toml")
        })
        .count();
    assert_eq!(files.len(), expected, "{files:?}");
}

#[test]
fn campaign_check_of_a_missing_path_says_so() {
    let out = picket(&fixtures(), &["campaign", "check", "no-such-file.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stdout(&out).contains("no-such-file.toml"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn preview_as_json_lists_posts_with_utc_and_local_times() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = picket(
        root,
        &[
            "campaign",
            "preview",
            "campaigns/social-media-strike.toml",
            "--tz",
            "Asia/Kolkata",
            "--network",
            "bluesky",
            "--format",
            "json",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let text = v.to_string();
    // July 4 starts at 00:00 in Kolkata = July 3, 18:30 UTC.
    assert!(text.contains("2027-07-03T18:30:00Z"), "{text}");
    assert!(text.contains("bluesky"));
}

#[test]
fn a_reader_that_stops_early_ends_the_output_quietly() {
    use std::os::unix::process::ExitStatusExt;
    // As in `picket campaign preview ... | head -1`: the pipe closes before picket writes.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_picket"))
        .current_dir(root)
        .args(["campaign", "preview", "campaigns/social-media-strike.toml"])
        .env("PICKET_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("picket runs");
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        out.status.success() || out.status.signal() == Some(13),
        "{:?}: {stderr}",
        out.status
    );
}

#[test]
fn preview_refuses_an_unknown_zone_with_exit_2() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = picket(
        root,
        &[
            "campaign",
            "preview",
            "campaigns/social-media-strike.toml",
            "--tz",
            "Mars/Olympus",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Mars/Olympus"));
}

#[test]
fn account_list_as_json_is_an_array_of_objects_with_ids() {
    let dir = tempfile::tempdir().unwrap();
    let add = picket(dir.path(), &["account", "add", "sandbox", "--name", "alex"]);
    assert!(
        add.status.success(),
        "{}",
        String::from_utf8_lossy(&add.stderr)
    );
    let out = picket(dir.path(), &["account", "list", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let list = v.as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert!(list[0]["id"].is_i64());
    // The default database and its key file were created in the working directory.
    assert!(dir.path().join("picket.db").exists());
    assert!(dir.path().join("picket.db.key").exists());
}

#[test]
fn join_with_a_cadence_finer_than_allowed_is_refused_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let campaigns = Path::new(env!("CARGO_MANIFEST_DIR")).join("campaigns");
    let c = campaigns.to_str().unwrap();
    picket(
        dir.path(),
        &[
            "--campaigns",
            c,
            "account",
            "add",
            "sandbox",
            "--name",
            "alex",
        ],
    );
    let out = picket(
        dir.path(),
        &[
            "--campaigns",
            c,
            "join",
            "social-media-strike",
            "--account",
            "1",
            "--every",
            "1m",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(!String::from_utf8_lossy(&out.stderr).is_empty());
    let ok = picket(
        dir.path(),
        &[
            "--campaigns",
            c,
            "join",
            "social-media-strike",
            "--account",
            "1",
            "--tz",
            "Europe/Berlin",
        ],
    );
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let status = picket(
        dir.path(),
        &["--campaigns", c, "status", "--format", "json"],
    );
    let rows: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert!(!rows.as_array().unwrap().is_empty());
}

#[tokio::test]
async fn serve_answers_health_checks_and_stops_on_sigterm() {
    // Port 0: the server binds a free port itself and logs which.
    let app = TestApp::spawn(Options::default().process()).await;
    let mut body = String::new();
    {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(app.addr).unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        s.read_to_string(&mut body).unwrap();
    }
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(app.stop().status.success());
}

#[test]
fn joining_again_with_other_accounts_says_which_were_added_and_which_stopped_posting() {
    let dir = tempfile::tempdir().unwrap();
    let campaigns = Path::new(env!("CARGO_MANIFEST_DIR")).join("campaigns");
    let c = campaigns.to_str().unwrap();
    for name in ["alex", "sam"] {
        let added = picket(
            dir.path(),
            &[
                "--campaigns",
                c,
                "account",
                "add",
                "sandbox",
                "--name",
                name,
            ],
        );
        assert!(added.status.success(), "{added:?}");
    }
    let join = |accounts: &[&str]| {
        let mut args = vec!["--campaigns", c, "join", "social-media-strike"];
        for a in accounts {
            args.extend(["--account", a]);
        }
        let out = picket(dir.path(), &args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout(&out)
    };
    let first = join(&["1"]);
    assert!(!first.contains("stopped posting"), "{first}");

    let second = join(&["2"]);

    assert!(
        second.contains("added: account 2 (Sandbox sam)"),
        "{second}"
    );
    assert!(
        second.contains("stopped posting: account 1 (Sandbox alex)"),
        "{second}"
    );
    let status = picket(
        dir.path(),
        &["--campaigns", c, "status", "--format", "json"],
    );
    let rows: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let upcoming_of_1 = rows
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["account"] == 1 && r["state"] == "pending")
        .count();
    assert_eq!(upcoming_of_1, 0, "{rows}");
}
