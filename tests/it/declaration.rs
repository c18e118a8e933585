//! Declaration copies end to end, through the real binary: one picket serves the bundled
//! campaign, a blogger's picket forks its declaration over loopback, edits the copy and
//! serves it with the proposed changes.

use std::path::PathBuf;

use crate::support::{
    BUNDLED as ID, HeldPort, Installation, Options, TestApp, bundled_dir as bundled,
    window_campaign,
};

/// A picket installation served on a port of its own that its public URL names.
struct Host {
    inst: Installation,
}

impl Host {
    fn new(options: Options) -> Host {
        Host {
            inst: options.own_address().key([9u8; 32]).install(),
        }
    }

    /// The bundled Social Media Strike, as its organisers host it.
    fn origin() -> Host {
        Host::new(Options::default())
    }

    fn campaigns(&self) -> PathBuf {
        self.inst.campaigns().to_path_buf()
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.inst.fixed_base().unwrap())
    }

    /// `picket serve`, once it listens.
    async fn serve(&self) -> TestApp {
        self.inst.serve().await
    }

    fn picket(&self, args: &[&str]) -> std::process::Output {
        self.inst.command().args(args).output().unwrap()
    }

    async fn get(&self, path: &str) -> (reqwest::StatusCode, String) {
        let r = reqwest::get(self.url(path)).await.unwrap();
        (r.status(), r.text().await.unwrap())
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

/// A blogger's installation: one unrelated campaign of their own already in the folder.
fn blogger() -> Host {
    let start = chrono::Utc::now() + chrono::Duration::days(30);
    Host::new(Options::default().without_bundled().campaign(
        "own-strike",
        &window_campaign(
            "own-strike",
            start,
            start + chrono::Duration::hours(1),
            "[[posts]]\nname = \"n\"\nwhen = \"start\"\ntemplate = \"notice\"\n",
        ),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fork_from_another_host_serves_the_copy_with_its_proposed_changes_escaped() {
    // Arrange: the organisers' host, serving the bundled declaration.
    let origin = Host::origin();
    let _origin_served = origin.serve().await;
    let raw_url = origin.url(&format!("/c/{ID}/declaration.md"));
    let raw = reqwest::get(&raw_url).await.unwrap();
    let announced = raw.headers()["x-content-sha256"]
        .to_str()
        .unwrap()
        .to_string();
    let original = raw.text().await.unwrap();
    let blog = blogger();

    // Act: fork it into the blogger's campaigns folder (the default --out).
    let out = blog.picket(&["declaration", "fork", &raw_url]);

    // Assert: three files, the origin filled in, and what to do next.
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(text(&out.stdout).contains("Next:"), "{}", text(&out.stdout));
    let dir = blog.campaigns();
    let copy_path = dir.join(format!("{ID}.declaration.md"));
    assert_eq!(std::fs::read_to_string(&copy_path).unwrap(), original);
    assert_eq!(
        std::fs::read_to_string(dir.join(format!("{ID}.declaration.origin.md"))).unwrap(),
        original
    );
    let campaign_file = std::fs::read_to_string(dir.join(format!("{ID}.toml"))).unwrap();
    assert!(
        campaign_file.contains(&format!("url = \"{raw_url}\"")),
        "{campaign_file}"
    );
    assert!(
        campaign_file.contains(&format!("sha256 = \"{announced}\"")),
        "{campaign_file}"
    );
    let check = blog.picket(&["campaign", "check", dir.to_str().unwrap()]);
    assert!(
        check.status.success(),
        "{}{}",
        text(&check.stdout),
        text(&check.stderr)
    );
    let hash = blog.picket(&["declaration", "hash", copy_path.to_str().unwrap()]);
    assert_eq!(text(&hash.stdout).trim(), announced);

    // The copy as fetched: no changes yet.
    {
        let _served = blog.serve().await;
        let (status, page) = blog.get(&format!("/c/{ID}/declaration")).await;
        assert_eq!(status, 200);
        assert!(page.contains("Proposed changes"), "{page}");
        assert!(page.contains("No changes from the original"), "{page}");
    }

    // Act: the blogger edits the copy, with markup that must not reach the page as markup.
    let edited = original.replace(
        "We hold these principles to be plain:",
        "We hold these <script>alert(1)</script> principles to be self-evident:",
    );
    assert_ne!(edited, original);
    std::fs::write(&copy_path, &edited).unwrap();
    let _served = blog.serve().await;

    // Assert: both pages list the change, escaped, with the link and both hashes.
    for path in [format!("/c/{ID}"), format!("/c/{ID}/declaration")] {
        let (status, page) = blog.get(&path).await;
        assert_eq!(status, 200, "{path}");
        assert!(!page.contains("No changes from the original"), "{path}");
        assert!(
            page.contains("<ins>&lt;script&gt;alert(1)&lt;&#x2F;script&gt;</ins>"),
            "{path}: {page}"
        );
        assert!(page.contains("<del>plain:</del>"), "{path}: {page}");
        assert!(page.contains("<ins>self-evident:</ins>"), "{path}: {page}");
        assert!(!page.contains("<script>alert"), "{path}");
        assert!(
            page.contains(&raw_url.replace('/', "&#x2F;")),
            "{path} links the original: {page}"
        );
        assert!(
            page.contains(&announced),
            "{path} shows the original's hash"
        );
    }
    let api: serde_json::Value = reqwest::get(blog.url(&format!("/api/v1/campaigns/{ID}")))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(api["declaration_origin"]["url"], raw_url.as_str());
    assert_eq!(api["declaration_origin"]["sha256"], announced.as_str());
    assert_eq!(api["declaration_origin"]["words_inserted"], 2);
    assert_eq!(api["declaration_origin"]["words_deleted"], 1);
    let (_, served_copy) = blog.get(&format!("/c/{ID}/declaration.md")).await;
    assert_eq!(
        api["declaration_sha256"],
        picket::campaign::declaration::content_hash(&served_copy).as_str()
    );
    assert_ne!(api["declaration_sha256"], announced.as_str());
}

#[test]
fn a_fork_of_a_local_campaign_file_takes_a_new_id_and_keeps_the_rest() {
    // Arrange
    let out = tempfile::tempdir().unwrap();
    let blog = blogger();
    let source = bundled().join("social-media-strike.toml");

    // Act
    let run = blog.picket(&[
        "declaration",
        "fork",
        source.to_str().unwrap(),
        "--campaign-id",
        "my-strike",
        "--origin-url",
        "https://picket.example.org/c/social-media-strike/declaration.md",
        "--out",
        out.path().to_str().unwrap(),
    ]);

    // Assert
    assert!(run.status.success(), "{}", text(&run.stderr));
    let campaign = picket::campaign::load_file(&out.path().join("my-strike.toml"))
        .unwrap_or_else(|p| panic!("{p:?}"));
    let original = picket::campaign::load_file(&source).unwrap();
    assert_eq!(campaign.id, "my-strike");
    assert_eq!(campaign.hashtag, original.hashtag);
    assert_eq!(campaign.templates, original.templates);
    let declaration = campaign.declaration.unwrap();
    let origin = declaration.origin.unwrap();
    assert_eq!(
        origin.url.as_deref(),
        Some("https://picket.example.org/c/social-media-strike/declaration.md")
    );
    assert_eq!(origin.sha256, original.declaration.unwrap().sha256);
    assert!(origin.changes.is_empty());
    let hash = blog.picket(&[
        "declaration",
        "hash",
        out.path().join("my-strike.toml").to_str().unwrap(),
    ]);
    assert_eq!(text(&hash.stdout).trim(), declaration.sha256);
}

#[test]
fn a_fork_never_overwrites_and_refuses_an_id_that_is_not_a_slug() {
    // Arrange
    let out = tempfile::tempdir().unwrap();
    let blog = blogger();
    let source = bundled().join("social-media-strike.toml");
    let fork = |id: &str| {
        blog.picket(&[
            "declaration",
            "fork",
            source.to_str().unwrap(),
            "--campaign-id",
            id,
            "--out",
            out.path().to_str().unwrap(),
        ])
    };

    // Act
    let first = fork("copy");
    let again = fork("copy");
    let bad = fork("Not A Slug");

    // Assert
    assert!(first.status.success(), "{}", text(&first.stderr));
    assert_eq!(again.status.code(), Some(2));
    assert!(
        text(&again.stderr).contains("already exists"),
        "{}",
        text(&again.stderr)
    );
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        text(&bad.stdout).contains("is not a slug"),
        "{}",
        text(&bad.stdout)
    );
    let mut left: Vec<String> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    left.sort();
    assert_eq!(
        left,
        [
            "copy.declaration.md",
            "copy.declaration.origin.md",
            "copy.toml"
        ]
    );
}

#[test]
fn a_fork_from_an_address_that_is_not_a_picket_campaign_says_what_to_give() {
    let blog = blogger();
    let not_picket = blog.picket(&[
        "declaration",
        "fork",
        "https://blog.example/my-declaration.md",
    ]);
    assert_eq!(not_picket.status.code(), Some(2));
    assert!(
        text(&not_picket.stderr).contains("/c/social-media-strike/declaration.md"),
        "{}",
        text(&not_picket.stderr)
    );

    let down = HeldPort::new();
    let unreachable = blog.picket(&[
        "declaration",
        "fork",
        &format!("http://{}/c/{ID}/declaration.md", down.addr()),
    ]);
    assert_eq!(unreachable.status.code(), Some(1));
    assert!(
        text(&unreachable.stderr).contains("cannot reach"),
        "{}",
        text(&unreachable.stderr)
    );
}
