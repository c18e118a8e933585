//! `picket campaign check`: good files load, bad files get located, actionable problems.

use std::path::{Path, PathBuf};

use picket::campaign::{Problem, check_paths, load_dir, load_file};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn fixture(rel: &str) -> PathBuf {
    root().join("tests/fixtures/campaigns").join(rel)
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
