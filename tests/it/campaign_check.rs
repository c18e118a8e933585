//! `picket campaign check`: good files load, bad files get located, actionable problems.

use std::path::{Path, PathBuf};

use picket::campaign::{Problem, check_paths, load_dir, load_file};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn fixture(rel: &str) -> PathBuf {
    root().join("tests/fixtures/campaigns").join(rel)
}

/// Load a bad fixture and assert it has a problem at `line:col` whose message holds `needle`.
fn assert_problem(name: &str, line: usize, col: usize, needle: &str) {
    let path = fixture(&format!("bad/{name}.toml"));
    let problems = load_file(&path).expect_err("a bad file must not load");
    let found = problems
        .iter()
        .any(|p| p.line == line && p.col == col && p.message.contains(needle));
    assert!(
        found,
        "expected {line}:{col} containing {needle:?}, got:\n{}",
        listing(&problems)
    );
}

fn listing(problems: &[Problem]) -> String {
    problems.iter().map(|p| format!("{p}\n")).collect()
}

#[test]
fn the_bundled_social_media_strike_is_valid() {
    // Arrange
    let path = root().join("campaigns/social-media-strike.toml");

    // Act
    let result = load_file(&path);

    // Assert
    let campaign = result.unwrap_or_else(|p| panic!("{}", listing(&p)));
    assert_eq!(campaign.id, "social-media-strike");
    assert_eq!(campaign.hashtag, "SocialMediaStrike");
    assert!(campaign.templates["notice"].len() >= 4);
    assert!(campaign.declaration.is_some());
}

#[test]
fn a_toml_syntax_error_points_at_the_unclosed_string() {
    assert_problem("syntax-error", 2, 21, "expected `\"`");
}

#[test]
fn an_unknown_key_is_named_with_a_suggestion() {
    assert_problem(
        "unknown-key",
        8,
        1,
        "unknown key `min_day`; did you mean \"min_days\"?",
    );
}

#[test]
fn an_unknown_key_in_a_post_is_named() {
    assert_problem("unknown-post-key", 21, 1, "unknown key `templte`");
}

#[test]
fn a_missing_required_key_is_named() {
    assert_problem("missing-title", 1, 1, "missing required key `title`");
}

#[test]
fn an_id_that_is_not_a_slug_gets_a_slug_suggested() {
    assert_problem("bad-id", 1, 6, "e.g. \"test-strike\"");
}

#[test]
fn a_hashtag_written_with_hash_is_rejected() {
    assert_problem("hashtag-with-hash", 3, 11, "without '#'");
}

#[test]
fn a_hashtag_with_spaces_is_rejected() {
    assert_problem("hashtag-with-space", 3, 11, "contains spaces");
}

#[test]
fn february_29_of_a_common_year_is_an_impossible_date() {
    assert_problem(
        "impossible-date",
        7,
        23,
        "date 2027-02-29 does not exist (2027 is not a leap year)",
    );
}

#[test]
fn days_out_of_order_are_reported() {
    assert_problem("days-out-of-order", 7, 23, "days must be in order");
}

#[test]
fn a_day_listed_twice_is_reported() {
    assert_problem("duplicate-day", 7, 23, "2027-07-04 is listed twice");
}

#[test]
fn an_unknown_time_zone_gets_the_nearest_name() {
    assert_problem(
        "unknown-zone",
        6,
        12,
        "unknown time zone \"America/NewYork\"; did you mean \"America/New_York\"?",
    );
}

#[test]
fn min_days_above_the_number_of_days_is_reported() {
    assert_problem(
        "min-days-too-many",
        8,
        12,
        "min_days is 3 but the strike has only 2 days",
    );
}

#[test]
fn min_days_of_zero_is_reported() {
    assert_problem("min-days-zero", 8, 12, "at least 1");
}

#[test]
fn an_unknown_when_lists_the_accepted_forms() {
    assert_problem(
        "unknown-when",
        13,
        8,
        "\"start\", \"end\", \"every 1h\", \"before 7d\" or \"daily 09:00\"",
    );
}

#[test]
fn daily_at_25_00_is_not_a_time_of_day() {
    assert_problem("daily-25", 13, 8, "hours go from 00 to 23");
}

#[test]
fn before_0m_is_not_before_the_strike() {
    assert_problem("before-zero", 13, 8, "must be positive");
}

#[test]
fn a_negative_window_is_reported() {
    assert_problem("negative-window", 21, 10, "\"-30m\" is negative");
}

#[test]
fn a_post_naming_a_missing_template_gets_a_suggestion() {
    assert_problem("missing-template", 19, 12, "did you mean \"hourly\"?");
}

#[test]
fn a_template_without_variants_is_reported() {
    assert_problem(
        "empty-variant-list",
        27,
        10,
        "template \"hourly\" has no variants",
    );
}

#[test]
fn an_empty_variant_is_reported_on_its_own_line() {
    assert_problem(
        "empty-variant",
        25,
        3,
        "variant 2 of template \"notice\" is empty",
    );
}

#[test]
fn a_variant_using_an_unknown_variable_is_reported_on_its_own_line() {
    assert_problem("unknown-variable", 25, 3, "unknown variable `invite_url`");
}

#[test]
fn a_variant_that_does_not_parse_says_where() {
    assert_problem(
        "unparsable-variant",
        25,
        3,
        "does not parse at line 1, column 29",
    );
}

#[test]
fn a_variant_over_the_bluesky_limit_says_by_how_much() {
    assert_problem(
        "too-long-for-bluesky",
        25,
        3,
        "variant 2 of template \"notice\" is 326/300 graphemes on bluesky: shorten it by 26",
    );
}

#[test]
fn a_cadence_finer_than_min_interval_says_what_to_raise() {
    assert_problem(
        "cadence-below-min-interval",
        18,
        8,
        "post \"hourly\" runs every 10m but the campaign's min_interval is 15m: raise it to at least 15m or lower min_interval",
    );
}

#[test]
fn a_missing_declaration_file_is_reported_relative_to_the_campaign() {
    assert_problem(
        "missing-declaration",
        4,
        15,
        "declaration file \"nowhere.md\" not found",
    );
}

#[test]
fn an_unknown_network_gets_a_suggestion() {
    assert_problem(
        "unknown-network",
        4,
        25,
        "unknown network \"mastadon\"; did you mean \"mastodon\"?",
    );
}

#[test]
fn two_posts_with_one_name_are_reported() {
    assert_problem(
        "duplicate-post-name",
        17,
        8,
        "post name \"notice\" is used twice",
    );
}

#[test]
fn overlapping_windows_are_reported() {
    assert_problem("windows-overlap", 8, 13, "windows must not overlap");
}

#[test]
fn a_window_ending_before_it_starts_is_reported() {
    assert_problem("window-ends-before-start", 6, 52, "not after its start");
}

#[test]
fn days_without_a_timezone_ask_for_one() {
    assert_problem(
        "days-without-timezone",
        5,
        1,
        "add timezone = \"participant\"",
    );
}

#[test]
fn optional_on_a_start_post_is_reported() {
    assert_problem(
        "optional-on-start",
        15,
        12,
        "optional = true only works on `every` posts",
    );
}

#[test]
fn a_threshold_deadline_after_the_strike_starts_is_reported() {
    assert_problem(
        "threshold-after-start",
        13,
        12,
        "is after the strike starts",
    );
}

#[test]
fn the_good_fixtures_load() {
    // Act
    let (campaigns, problems) = check_paths(&[fixture("good")]);

    // Assert
    assert!(problems.is_empty(), "{}", listing(&problems));
    let ids: Vec<&str> = campaigns.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "copy-strike",
            "test-strike",
            "window-strike",
            "zoned-strike"
        ]
    );
}

#[test]
fn every_bad_fixture_is_rejected_and_each_problem_is_located() {
    // Act
    let (campaigns, problems) = check_paths(&[fixture("bad")]);

    // Assert
    assert!(
        campaigns.is_empty(),
        "{:?}",
        campaigns.iter().map(|c| &c.id).collect::<Vec<_>>()
    );
    let files = std::fs::read_dir(fixture("bad")).unwrap().count();
    let mut with_problems: Vec<&PathBuf> = problems.iter().map(|p| &p.path).collect();
    with_problems.dedup();
    assert_eq!(with_problems.len(), files);
    assert!(problems.iter().all(|p| p.line >= 1 && p.col >= 1));
}

#[test]
fn a_file_can_hold_several_problems_and_all_are_reported() {
    // Arrange
    let src = std::fs::read_to_string(fixture("good/minimal.toml"))
        .unwrap()
        .replace("\"participant\"", "\"Europe/Berln\"")
        .replace("min_days = 1", "min_days = 5")
        .replace("hourly = [", "hourlyy = [");

    // Act
    let problems = picket::campaign::parse_str(&src, &fixture("good/inline.toml")).unwrap_err();

    // Assert
    let messages: Vec<&str> = problems.iter().map(|p| p.message.as_str()).collect();
    assert!(
        messages.iter().any(|m| m.contains("Europe/Berlin")),
        "{messages:?}"
    );
    assert!(
        messages.iter().any(|m| m.contains("hourlyy")),
        "{messages:?}"
    );
}

#[test]
fn two_files_with_the_same_id_are_reported_at_the_second_id() {
    // Arrange
    let dir = tempfile::tempdir().unwrap();
    let minimal = std::fs::read_to_string(fixture("good/minimal.toml")).unwrap();
    std::fs::write(dir.path().join("a.toml"), &minimal).unwrap();
    std::fs::write(dir.path().join("b.toml"), &minimal).unwrap();
    std::fs::write(dir.path().join("notes.md"), "not a campaign").unwrap();

    // Act
    let (campaigns, problems) = check_paths(&[dir.path().to_path_buf()]);

    // Assert
    assert_eq!(campaigns.len(), 1);
    assert_eq!(problems.len(), 1, "{}", listing(&problems));
    assert_eq!(problems[0].path, dir.path().join("b.toml"));
    assert_eq!((problems[0].line, problems[0].col), (1, 6));
    assert!(problems[0].message.contains("already used by"));
}

#[test]
fn the_server_loads_the_bundled_campaigns_folder() {
    // Act
    let campaigns =
        load_dir(&root().join("campaigns")).unwrap_or_else(|p| panic!("{}", listing(&p)));

    // Assert
    assert_eq!(campaigns.len(), 1);
    assert_eq!(campaigns[0].networks.len(), 6);
}

#[test]
fn the_server_refuses_a_folder_with_a_bad_campaign() {
    // Act
    let result = load_dir(&fixture("bad"));

    // Assert
    assert!(result.is_err());
}

#[test]
fn a_copy_of_a_declaration_loads_with_its_origin_hashes_and_changes() {
    // Act
    let campaign =
        load_file(&fixture("good/copy.toml")).unwrap_or_else(|p| panic!("{}", listing(&p)));

    // Assert
    let declaration = campaign.declaration.unwrap();
    let origin = declaration.origin.unwrap();
    assert_eq!(
        origin.url.as_deref(),
        Some("https://picket.example.org/c/test-strike/declaration.md")
    );
    assert_eq!(
        origin.sha256,
        picket::campaign::declaration::content_hash("# A declaration\n")
    );
    assert_ne!(declaration.sha256, origin.sha256);
    assert_eq!(origin.changes.hunks.len(), 1);
    assert_eq!(origin.changes.inserted, 4);
}

#[test]
fn an_origin_url_that_is_not_http_is_rejected() {
    assert_problem("origin-not-a-url", 9, 7, "is not an http(s) address");
}

#[test]
fn an_origin_sha256_that_is_not_a_hash_says_how_to_get_one() {
    assert_problem(
        "origin-bad-sha256",
        10,
        10,
        "is not a SHA-256: write the 64 hex digits that `picket declaration hash ../good/declaration.md` prints",
    );
}

#[test]
fn a_saved_original_that_does_not_match_its_hash_is_rejected() {
    assert_problem(
        "origin-hash-mismatch",
        10,
        10,
        "hashes to 1aed1fc0eb2df21483f375023538af51072ecbb130d8c94209d8bc1af7adacb9, not to this sha256",
    );
}

#[test]
fn a_missing_saved_original_is_named() {
    assert_problem(
        "origin-missing-file",
        11,
        8,
        "origin file \"declaration.origin.md\" not found",
    );
}

#[test]
fn an_unknown_key_in_the_origin_gets_a_suggestion() {
    assert_problem(
        "origin-unknown-key",
        10,
        1,
        "unknown key `sha265`; did you mean \"sha256\"?",
    );
}

#[test]
fn a_declaration_table_needs_a_file() {
    assert_problem(
        "declaration-table-without-file",
        5,
        1,
        "missing required key `file`",
    );
}

#[test]
fn a_declaration_that_is_neither_a_file_name_nor_a_table_is_rejected() {
    assert_problem(
        "declaration-not-text",
        5,
        15,
        "expected a file name such as \"declaration.md\", or a [declaration] table",
    );
}

#[test]
fn a_channel_token_in_a_campaign_file_is_refused_with_where_it_belongs_and_not_repeated() {
    assert_problem(
        "channel-token",
        21,
        9,
        "a secret is never in a campaign file (files are shared and copied): put it in the host settings ([[channels]] with name = \"strike-news\" and token = \"...\") or in PICKET_CHANNEL_STRIKE_NEWS_TOKEN",
    );
    let problems = load_file(&fixture("bad/channel-token.toml")).unwrap_err();
    assert_eq!(problems.len(), 1, "{}", listing(&problems));
    assert!(!problems[0].message.contains("ABC-DEF1234"));
}
