//! `picket rehearse`: a compressed strike against the sandbox, with faults, ends with every
//! post accounted for and none duplicated.

use std::path::{Path, PathBuf};

use picket::rehearse::{Options, rehearse};

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/campaigns")
        .join(rel)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rehearsal_with_faults_posts_nothing_twice_and_accounts_for_every_post() {
    // Arrange: a small campaign, a receiver that fails, rate-limits, stalls and loses answers.
    let mut opts = Options::new(fixture("good/minimal.toml"));
    opts.participants = 24;
    opts.speed = 2400.0;
    opts.faults.error_rate = 0.10;
    opts.faults.rate_limit_rate = 0.05;
    opts.faults.slow_rate = 0.03;
    opts.faults.lost_answer_rate = 0.05;
    opts.faults.seed = 7;

    // Act
    let report = rehearse(opts).await.expect("the rehearsal runs");

    // Assert
    assert_eq!(report.duplicates_at_receiver, 0, "{}", report.to_text());
    assert_eq!(report.duplicates_in_store, 0, "{}", report.to_text());
    assert_eq!(report.unfinished, 0, "{}", report.to_text());
    assert!(report.planned > 0);
    assert_eq!(
        report.published + report.failed + report.missed + report.cancelled,
        report.planned,
        "{}",
        report.to_text()
    );
    assert!(
        report.retries > 0,
        "faults were injected, so some sends were retried"
    );
    assert!(
        report.receiver.replays > 0,
        "lost answers are resent and deduplicated"
    );
    assert!(report.passed());
}

#[test]
fn the_rehearse_command_prints_a_json_report_and_exits_0_when_nothing_is_duplicated() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_picket"))
        .args(["rehearse", "--participants", "12", "--speed", "4000"])
        .arg(fixture("good/minimal.toml"))
        .args(["--error-rate", "0.1", "--format", "json"])
        .env("PICKET_LOG", "error")
        .output()
        .expect("picket runs");
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(report["duplicates_at_receiver"], 0);
    assert_eq!(report["duplicates_in_store"], 0);
    assert_eq!(report["unfinished"], 0);
    assert!(report["lateness_real_ms"]["p99"].is_number());
}
