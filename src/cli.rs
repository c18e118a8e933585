//! The `picket` command line: clap definitions and the code that runs each command.
//! Commands parse their input into domain types, call the library, and print; they
//! exit 0 on success, 2 when the input is invalid, 1 when something else failed.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;

mod add_bluesky;
mod add_mastodon;
mod add_misskey;
mod add_nostr;
mod add_official;
mod admin;
mod db;
mod declaration;
mod participate;
mod peers;
mod stats;
mod widget;

use crate::app::{self, Application};
use crate::campaign::{self, Participation};
use crate::clock::SystemClock;
use crate::config::Settings;
use crate::domain::{NetworkKind, Zone};
use crate::{bench, rehearse};

#[derive(Debug, Parser)]
#[command(
    name = "picket",
    version,
    about = "Self-hosted strike and campaign coordination: pledges, scheduled strike notices on your networks, participation counts.",
    after_help = "Start with:\n  picket campaign check campaigns/\n  picket campaign preview campaigns/social-media-strike.toml --tz Europe/Berlin\n  picket serve"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// Database: sqlite://PATH (default sqlite://picket.db, created on first use), a path to an
    /// existing SQLite file, or postgres://USER@HOST/DB.
    #[arg(long, global = true, env = "PICKET_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Settings file (TOML); see README "Configuration".
    #[arg(long, global = true, env = "PICKET_CONFIG")]
    pub config: Option<PathBuf>,
    /// Folder of campaign files [default: campaigns].
    #[arg(long, global = true, env = "PICKET_CAMPAIGNS")]
    pub campaigns: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the web pages and run the scheduler in one process.
    #[command(after_help = "Example:\n  picket serve --bind 0.0.0.0:8080 --campaigns ./campaigns")]
    Serve {
        /// Address to listen on [default: 127.0.0.1:8080].
        #[arg(long, env = "PICKET_BIND")]
        bind: Option<std::net::SocketAddr>,
    },
    /// Run the scheduler without the web server: the dispatcher, and the hashtag census,
    /// engagement reads and webhooks (one process at a time where it matters): more workers
    /// on a shared PostgreSQL.
    #[command(
        after_help = "Example:\n  PICKET_DATABASE_URL=postgres://picket@db/picket picket worker"
    )]
    Worker,
    /// Check, preview and manage campaign files.
    #[command(subcommand)]
    Campaign(CampaignCommand),
    /// Copy another host's declaration to serve your own version, and hash declarations.
    #[command(subcommand)]
    Declaration(DeclarationCommand),
    /// Connect, list and remove the accounts picket posts from.
    #[command(subcommand)]
    Account(AccountCommand),
    /// The embeddable strike widget (served at /widget.js by `picket serve`).
    #[command(subcommand)]
    Widget(WidgetCommand),
    /// This host's own key for centerless totals (docs/checkpoints.md).
    #[command(subcommand)]
    Host(HostCommand),
    /// Every peer of a campaign (`[[peers]]` in the settings) with its status (verified,
    /// bad_signature, rollback, different_declaration, stale, unreachable), the counts of
    /// its last good checkpoint and when it was last checked, as `picket serve` recorded
    /// them; first a line with the total across this host and its verified peers.
    #[command(
        after_help = "Examples:\n  picket peers social-media-strike\n  picket peers social-media-strike --format json"
    )]
    Peers {
        campaign: String,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Pledge to strike: picket will post the campaign's notices from these accounts.
    #[command(
        after_help = "Examples:\n  picket join social-media-strike --account 1 --tz Europe/Berlin\n  picket join social-media-strike --account 1 --account 2 --tz America/New_York --days 2027-07-04 --every 2h --name Alex\n  picket join social-media-strike --account 3 --tz Pacific/Auckland --email alex@example.org\n  picket join social-media-strike --account 1 --hand-off"
    )]
    Join {
        /// The campaign id (see `picket campaign check campaigns/`).
        campaign: String,
        /// Account ids from `picket account list` (repeat for several).
        #[arg(long = "account", required = true)]
        accounts: Vec<i64>,
        /// Your IANA time zone; strike days are read in it [default: UTC].
        #[arg(long)]
        tz: Option<String>,
        /// Only these strike days (YYYY-MM-DD, comma-separated) [default: all].
        #[arg(long, value_delimiter = ',')]
        days: Option<Vec<chrono::NaiveDate>>,
        /// Post the repeating notices this often (e.g. 1h); no finer than the campaign allows.
        #[arg(long)]
        every: Option<String>,
        /// Your name, as posts and pages show it.
        #[arg(long)]
        name: Option<String>,
        /// Mail the reminders of your tap-to-post accounts to this address, at each slot
        /// (needs the host's [smtp] settings).
        #[arg(long)]
        email: Option<String>,
        /// Hand your Mastodon-API accounts' posts to their server's own scheduler
        /// (`scheduled_at`) ahead of time, so they go out even if picket is down: posts at
        /// least 6 minutes ahead, at most 25 a day and 300 in all; picket sends the rest.
        #[arg(long)]
        hand_off: bool,
    },
    /// Stop: no further post of this pledge goes out once this returns.
    #[command(
        after_help = "Examples:\n  picket withdraw social-media-strike\n  picket withdraw social-media-strike --account 2\n  picket withdraw social-media-strike --delete-posts"
    )]
    Withdraw {
        campaign: String,
        /// Withdraw only this account, keep the pledge for the others.
        #[arg(long)]
        account: Option<i64>,
        /// Also delete the notices already published (from the networks themselves).
        #[arg(long)]
        delete_posts: bool,
    },
    /// Your posts: upcoming, published (with links), failed, missed.
    #[command(
        after_help = "Examples:\n  picket status\n  picket status social-media-strike --format json"
    )]
    Status {
        campaign: Option<String>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Set the password or token that signs the operator in to /admin.
    ///
    /// Without --password-stdin a random token is made and printed once; only its Argon2
    /// hash is stored. Either way, any earlier secret stops working and every /admin
    /// session ends.
    #[command(
        after_help = "Examples:\n  picket admin                         # prints a new token, once\n  printf '%s\\n' \"$PASSWORD\" | picket admin --password-stdin"
    )]
    Admin {
        /// Read a password (at least 12 characters) from the first line of stdin instead.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Export a campaign's signatures or its published-posts ledger.
    ///
    /// Signatures carry an e-mail address only for signers who ticked "the organisers may
    /// e-mail me". Posts list those picket published and those posted by hand. CSV cells
    /// that a spreadsheet would run as a formula start with a quote.
    #[command(
        after_help = "Examples:\n  picket export signatures social-media-strike --format csv > signers.csv\n  picket export posts social-media-strike --format json"
    )]
    Export {
        /// What to export.
        #[arg(value_enum)]
        what: crate::admin::ExportKind,
        /// The campaign id.
        campaign: String,
        #[arg(long, value_enum)]
        format: crate::admin::ExportFormat,
    },
    /// A campaign's figures for its organiser: signatures, strikers (pledged, striking now,
    /// done), accounts by network, posts by outcome, network and UTC hour with the top
    /// reasons of failures, invitations and the invitation tree's depth, strikers by time
    /// zone, reach and engagement, the hashtag census. JSON is exactly what
    /// `GET /api/v1/campaigns/{id}/stats` answers; CSV is one row per network and UTC hour.
    #[command(
        after_help = "Examples:\n  picket stats social-media-strike\n  picket stats social-media-strike --format json\n  picket stats social-media-strike --format csv > posts-by-hour.csv"
    )]
    Stats {
        campaign: String,
        #[arg(long, value_enum, default_value_t = stats::StatsFormat::Text)]
        format: stats::StatsFormat,
    },
    /// Move an installation between SQLite and PostgreSQL, or back up its SQLite file.
    #[command(subcommand)]
    Db(DbCommand),
    /// Rehearse a whole strike, compressed in time, against a built-in sandbox network.
    ///
    /// Nothing of yours is touched: a temporary database, a local fake network on
    /// 127.0.0.1, and simulated strikers in time zones around the world (Kiritimati to
    /// Pago Pago) with 1-2 accounts each, a mix of chosen days and cadences. The real
    /// planner and dispatcher post their notices while rehearsal time runs --speed times
    /// faster than real time; stretches where nothing is due (the week between an
    /// invitation and the strike) are skipped. Faults can be injected to watch retries
    /// work. The report shows posts by network and hour, lateness percentiles, retries,
    /// misses and duplicates. Exits 1 if any post was duplicated or left unfinished.
    #[command(
        after_help = "Examples:\n  picket rehearse campaigns/social-media-strike.toml\n  picket rehearse campaigns/social-media-strike.toml --participants 1000 --speed 1200 --error-rate 0.05 --rate-limit-rate 0.02 --slow-rate 0.01 --format json"
    )]
    Rehearse {
        /// One campaign file.
        path: PathBuf,
        /// Simulated strikers.
        #[arg(long, default_value_t = 200)]
        participants: usize,
        /// Rehearsal time runs this many times faster than real time.
        #[arg(long, default_value_t = crate::rehearse::DEFAULT_SPEED)]
        speed: f64,
        /// Share of requests the sandbox answers 503 (0-1).
        #[arg(long, default_value_t = 0.0)]
        error_rate: f64,
        /// Share answered 429 with Retry-After: 30 s (rehearsal time).
        #[arg(long, default_value_t = 0.0)]
        rate_limit_rate: f64,
        /// Share stored, then answered only after 20 s of rehearsal time.
        #[arg(long, default_value_t = 0.0)]
        slow_rate: f64,
        /// Share stored, then answered 502 (the answer is lost on the way back).
        #[arg(long, default_value_t = 0.0)]
        lost_answer_rate: f64,
        /// Seed of the fault generator (the same seed draws the same faults).
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Measure the scheduler (build with --release): dispatch throughput beside a bare HTTP
    /// client, lateness under a steady load, and planning time and memory.
    ///
    /// Each runs on a temporary SQLite file database (or, with --database, a PostgreSQL
    /// database of its own) against a sandbox receiver on 127.0.0.1 in its own thread, and
    /// prints its figures and targets. `bare-page` is not a benchmark but the baseline
    /// server of scripts/bench-web: it answers every request with the bytes of
    /// --page-file, with no middleware, until stopped.
    #[command(
        after_help = "Examples:\n  cargo build --release\n  ./target/release/picket bench dispatch\n  ./target/release/picket bench lateness --rate 1000 --secs 30\n  ./target/release/picket bench plan --pledges 100000\n  ./target/release/picket bench card\n  ./target/release/picket bench all\n  ./target/release/picket bench dispatch --database postgres://postgres@127.0.0.1:5432/postgres --workers 2"
    )]
    Bench {
        #[arg(value_enum)]
        name: BenchName,
        /// dispatch: posts due at one instant.
        #[arg(long, default_value_t = 100_000)]
        posts: usize,
        /// Posts claimed per database round trip.
        #[arg(long, default_value_t = 1024)]
        batch: u32,
        /// Posts sent at once (the bare-client baseline uses the same).
        #[arg(long, default_value_t = 128)]
        concurrency: usize,
        /// lateness: posts due per second ...
        #[arg(long, default_value_t = 1_000)]
        rate: usize,
        /// ... for this many seconds.
        #[arg(long, default_value_t = 30)]
        secs: u64,
        /// plan: pledges to plan (2 accounts each).
        #[arg(long, default_value_t = 1_000_000)]
        pledges: usize,
        /// plan and card: the campaign file.
        #[arg(long, default_value = "campaigns/social-media-strike.toml")]
        campaign: PathBuf,
        /// dispatch, lateness and plan: run on this PostgreSQL server (postgres://...)
        /// instead of a temporary SQLite file; a database of the benchmark's own is
        /// created there and dropped at the end.
        #[arg(long, value_name = "URL")]
        database: Option<String>,
        /// dispatch: dispatchers sharing the PostgreSQL database, each with its own
        /// connection pool and worker id.
        #[arg(long, default_value_t = 1)]
        workers: usize,
        /// dispatch: runs, each measuring the bare client and picket back to back; the
        /// summary gives medians.
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// bare-page: the file whose bytes every answer carries (as text/html).
        #[arg(long, value_name = "FILE")]
        page_file: Option<PathBuf>,
        /// bare-page: the headers every answer carries, as `curl -D` saved them from the
        /// server's own answer (`Date` and `Content-Length` are made anew), so that both
        /// answers are the same bytes.
        #[arg(long, value_name = "FILE")]
        headers_file: Option<PathBuf>,
        /// bare-page: the address to listen on.
        #[arg(long, default_value = "127.0.0.1:8099")]
        bind: std::net::SocketAddr,
    },
}

#[derive(Debug, Subcommand)]
pub enum WidgetCommand {
    /// Write the widget as static files (widget.js with the campaign data inlined, a JSON
    /// snapshot, and embed.html with the tag to copy) for a site with no picket host.
    ///
    /// Links in the widget go to --public-url; counters are those in the database now
    /// (--no-counters hides them).
    #[command(
        after_help = "Examples:\n  picket widget export public/strike --public-url https://strike.example.org\n  picket widget export out --campaign social-media-strike --no-counters"
    )]
    Export {
        /// The folder to write to (created if needed).
        dir: PathBuf,
        /// Only this campaign [default: every campaign in the folder; the first is shown
        /// unless the tag names another].
        #[arg(long)]
        campaign: Option<String>,
        /// Where visitors reach the picket host that has the sign and join pages
        /// [default: the public_url setting].
        #[arg(long)]
        public_url: Option<String>,
        /// Leave the counters out (and do not open the database).
        #[arg(long)]
        no_counters: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchName {
    Dispatch,
    Lateness,
    Plan,
    /// Strike cards drawn, per size (the campaign of `--campaign`).
    Card,
    /// Every benchmark above.
    All,
    /// The baseline server of scripts/bench-web (serves --page-file until stopped).
    BarePage,
}

#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Connect an account.
    #[command(subcommand)]
    Add(AddAccount),
    /// List your accounts.
    #[command(after_help = "Example:\n  picket account list --format json")]
    List {
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Remove an account: its credentials are erased and its unsent posts cancelled.
    #[command(after_help = "Example:\n  picket account remove 3")]
    Remove { id: i64 },
}

#[derive(Debug, Subcommand)]
pub enum AddAccount {
    /// A sandbox account: posts go to a local receiver (rehearsals, demos, tests), by
    /// default the one `picket serve` runs at /sandbox.
    #[command(after_help = "Example:\n  picket account add sandbox --name alice")]
    Sandbox {
        /// A name for the account.
        #[arg(long)]
        name: String,
        /// The receiver's base URL [default: PUBLIC_URL/sandbox].
        #[arg(long)]
        server: Option<String>,
        /// The token to present [default: a random one].
        #[arg(long, allow_hyphen_values = true)]
        token: Option<String>,
    },
    /// A Nostr identity, signing with a remote signer (NIP-46 bunker, recommended: the key
    /// stays with you) or with its secret key (picket then holds it, sealed).
    #[command(
        after_help = "Examples:\n  picket account add nostr --relay wss://relay.example --bunker 'bunker://<pubkey>?relay=wss://relay.example&secret=...'\n  PICKET_NOSTR_NSEC=nsec1... picket account add nostr --relay wss://a.example --relay wss://b.example"
    )]
    Nostr {
        /// A relay to publish to (repeat for several).
        #[arg(long = "relay", required = true)]
        relays: Vec<String>,
        /// The secret key, nsec1... or hex (better from the environment than the command line).
        #[arg(
            long,
            allow_hyphen_values = true,
            env = "PICKET_NOSTR_NSEC",
            hide_env_values = true,
            conflicts_with = "bunker",
            required_unless_present = "bunker"
        )]
        nsec: Option<String>,
        /// A NIP-46 remote signer: bunker://<remote-signer-pubkey>?relay=wss://...&secret=...
        #[arg(long)]
        bunker: Option<String>,
    },
    /// An account on a Mastodon-API server (Mastodon, Pleroma/Akkoma, GoToSocial,
    /// Friendica ...). Without --token picket prints a page to open; you allow picket
    /// there and paste back the code it shows. It asks only to post (and delete) your
    /// statuses and to read who you are.
    #[command(
        after_help = "Examples:\n  picket account add mastodon --server mastodon.social\n  picket account add mastodon --server https://example.social --token TOKEN   (from Preferences > Development)"
    )]
    Mastodon {
        /// The server's address, e.g. mastodon.social or https://example.social.
        #[arg(long)]
        server: String,
        /// An access token with the write:statuses scope, instead of signing in (better
        /// from the environment than the command line, where other users can see it).
        #[arg(
            long,
            allow_hyphen_values = true,
            env = "PICKET_MASTODON_TOKEN",
            hide_env_values = true
        )]
        token: Option<String>,
    },
    /// An account on a Misskey-API server (Misskey, Sharkey, Iceshrimp ...). Without
    /// --token picket prints the server's MiAuth page, where you allow picket to write
    /// notes (it asks for nothing else), then press Enter.
    #[command(
        after_help = "Examples:\n  picket account add misskey --server misskey.io\n  picket account add misskey --server https://sharkey.example --token TOKEN   (a token that also allows read:account)"
    )]
    Misskey {
        /// The server's address, e.g. misskey.io or https://sharkey.example.
        #[arg(long)]
        server: String,
        /// An access token with write:notes and read:account, instead of MiAuth (better
        /// from the environment than the command line).
        #[arg(
            long,
            allow_hyphen_values = true,
            env = "PICKET_MISSKEY_TOKEN",
            hide_env_values = true
        )]
        token: Option<String>,
    },
    /// A Bluesky account, with an app password (Settings → Privacy and security → App
    /// passwords), never your main password. picket signs in once and keeps the session.
    #[command(
        after_help = "Examples:\n  picket account add bluesky --handle alice.bsky.social --app-password xxxx-xxxx-xxxx-xxxx\n  picket account add bluesky --handle alice.test --app-password PW --service http://127.0.0.1:2583"
    )]
    Bluesky {
        /// Your handle, e.g. alice.bsky.social.
        #[arg(long)]
        handle: String,
        /// An app password created for picket.
        #[arg(
            long,
            allow_hyphen_values = true,
            env = "PICKET_BLUESKY_APP_PASSWORD",
            hide_env_values = true
        )]
        app_password: String,
        /// Your PDS (or entryway) URL: skips handle resolution and asks it instead
        /// [default: resolve the handle over HTTPS and its DID document].
        #[arg(long)]
        service: Option<String>,
    },
    /// X, tap-to-post: a prefilled compose link at each slot (X forbids coordinated
    /// automated posting, so picket does not post there for you). With `--oauth`, through
    /// this host's X API app (`[x]`) instead: X's rules forbid posting the same or similar
    /// content across accounts and coordinated hashtag posting, so picket posts through
    /// the API only for campaigns that say `x_api = true`; picket prints X's page, you
    /// allow picket there and paste back the address your browser lands on.
    #[command(
        after_help = "Examples:\n  picket account add x --handle @alex\n  picket account add x --oauth"
    )]
    X(TapOrApi),
    /// A Facebook profile, tap-to-post: the notice to copy at each slot (profiles have no
    /// posting API). With `--oauth`, Facebook Pages you manage, through this host's Meta
    /// app (`[facebook]`): each Page you share with picket becomes an account.
    #[command(
        after_help = "Examples:\n  picket account add facebook --handle alex.doe\n  picket account add facebook --oauth"
    )]
    Facebook(TapOrApi),
    /// Instagram, tap-to-post: the notice to copy and a strike card to post.
    #[command(after_help = "Example:\n  picket account add instagram --handle @alex")]
    Instagram(TapAccount),
    /// TikTok, tap-to-post: the notice to copy and a strike card to post.
    #[command(after_help = "Example:\n  picket account add tiktok --handle @alex")]
    Tiktok(TapAccount),
    /// YouTube, tap-to-post: the notice to copy (a community post).
    #[command(after_help = "Example:\n  picket account add youtube --handle @alex")]
    Youtube(TapAccount),
    /// LinkedIn, tap-to-post: a share link for the notice's address and its words to copy.
    /// With `--oauth`, through this host's LinkedIn app (`[linkedin]`): it asks only to
    /// post and for your member id and name; the permission lasts 60 days.
    #[command(
        after_help = "Examples:\n  picket account add linkedin --handle alex-doe\n  picket account add linkedin --oauth"
    )]
    Linkedin(TapOrApi),
    /// Threads, tap-to-post: a prefilled compose link at each slot. With `--oauth`,
    /// through this host's Meta app (`[threads]`): it asks only to publish and to read who
    /// you are; the permission lasts 60 days and is renewed while picket posts.
    #[command(
        after_help = "Examples:\n  picket account add threads --handle @alex\n  picket account add threads --oauth"
    )]
    Threads(TapOrApi),
}

impl AddAccount {
    /// The network and handle of a tap-to-post account, if this adds one.
    fn tap(&self) -> Option<(crate::domain::NetworkKind, &str)> {
        use crate::domain::NetworkKind as N;
        let (network, handle) = match self {
            AddAccount::X(a) => (N::X, a.handle.as_deref()?),
            AddAccount::Facebook(a) => (N::Facebook, a.handle.as_deref()?),
            AddAccount::Instagram(a) => (N::Instagram, a.handle.as_str()),
            AddAccount::Tiktok(a) => (N::TikTok, a.handle.as_str()),
            AddAccount::Youtube(a) => (N::YouTube, a.handle.as_str()),
            AddAccount::Linkedin(a) => (N::LinkedIn, a.handle.as_deref()?),
            AddAccount::Threads(a) => (N::Threads, a.handle.as_deref()?),
            _ => return None,
        };
        Some((network, handle))
    }

    /// The network of an account to connect through the host's official API
    /// (`--oauth`), if this adds one.
    fn official(&self) -> Option<crate::domain::NetworkKind> {
        use crate::domain::NetworkKind as N;
        match self {
            AddAccount::X(a) if a.oauth => Some(N::X),
            AddAccount::Facebook(a) if a.oauth => Some(N::Facebook),
            AddAccount::Linkedin(a) if a.oauth => Some(N::LinkedIn),
            AddAccount::Threads(a) if a.oauth => Some(N::Threads),
            _ => None,
        }
    }
}

/// A tap-to-post account: picket reminds you at each slot with the notice ready to post
/// (a prefilled compose link, or the text to copy); you make the final tap. No
/// credentials are asked or stored.
#[derive(Debug, clap::Args)]
pub struct TapAccount {
    /// Your handle there, e.g. @alex (shown on your page and in reminders).
    #[arg(long)]
    pub handle: String,
}

/// A network that is tap-to-post by default and has an official API a host may register
/// an app with: `--handle` for tap-to-post, or `--oauth` for the API.
#[derive(Debug, Args)]
pub struct TapOrApi {
    /// Your handle there, e.g. @alex (tap-to-post: shown on your page and in reminders).
    #[arg(long, required_unless_present = "oauth", conflicts_with = "oauth")]
    pub handle: Option<String>,
    /// Connect through the network's official API with this host's app instead (its
    /// settings table must be set): picket prints the network's page to open.
    #[arg(long)]
    pub oauth: bool,
}

#[derive(Debug, Subcommand)]
pub enum CampaignCommand {
    /// Check campaign files; print one `file:line:col: message` line per problem.
    ///
    /// Exits 0 when every file is valid, 2 otherwise.
    #[command(
        after_help = "Examples:\n  picket campaign check campaigns/\n  picket campaign check campaigns/social-media-strike.toml my-campaign.toml"
    )]
    Check {
        /// Campaign files, or folders of them.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Show every post picket would make for one participant: when (local and UTC), which
    /// template and variant, the text per network and its length against that network's limit.
    ///
    /// Sample values stand in for the participant's own name and links.
    #[command(
        after_help = "Examples:\n  picket campaign preview campaigns/social-media-strike.toml --tz Asia/Kolkata\n  picket campaign preview campaigns/social-media-strike.toml --tz Pacific/Chatham --network bluesky --every 1h --format json"
    )]
    Preview {
        /// One campaign file.
        path: PathBuf,
        /// The participant's IANA time zone [default: $TZ if it names one, else UTC].
        #[arg(long)]
        tz: Option<String>,
        /// Only this network (repeat for several) [default: the campaign's networks].
        #[arg(long = "network")]
        networks: Vec<NetworkKind>,
        /// Only these strike days (YYYY-MM-DD, comma-separated) [default: all].
        #[arg(long, value_delimiter = ',')]
        days: Option<Vec<chrono::NaiveDate>>,
        /// Cadence for repeating posts, e.g. 1h; also opts into optional repeating posts.
        #[arg(long)]
        every: Option<String>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Cancel a campaign everywhere: none of its unsent posts will go out.
    #[command(
        after_help = "Example:\n  picket campaign cancel social-media-strike --reason \"postponed to August\""
    )]
    Cancel {
        id: String,
        /// Shown to participants beside each cancelled post.
        #[arg(long, default_value = "cancelled by the organiser")]
        reason: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum DeclarationCommand {
    /// Make your own copy of a declaration: writes a campaign file, the copy (to edit) and
    /// the original (kept to show your changes as "Proposed changes"), then says what next.
    ///
    /// SOURCE is another picket host's declaration (https://HOST/c/ID/declaration.md, or its
    /// campaign page https://HOST/c/ID) or a local campaign file. Never overwrites a file.
    #[command(
        after_help = "Examples:\n  picket declaration fork https://picket.example.org/c/social-media-strike/declaration.md\n  picket declaration fork campaigns/social-media-strike.toml --campaign-id my-strike --origin-url https://picket.example.org/c/social-media-strike/declaration.md"
    )]
    Fork {
        /// A declaration URL or a campaign file.
        source: String,
        /// The new campaign's id [default: the source's].
        #[arg(long)]
        campaign_id: Option<String>,
        /// Folder to write into [default: the campaigns folder].
        #[arg(long)]
        out: Option<PathBuf>,
        /// For a local SOURCE: where readers can find the original text.
        #[arg(long)]
        origin_url: Option<String>,
    },
    /// Print a declaration's content hash: SHA-256 of the normalised text (LF line ends,
    /// no trailing whitespace; see campaigns/README.md), as hex.
    #[command(after_help = "Example:\n  picket declaration hash campaigns/declaration.md")]
    Hash {
        /// A Markdown file, or a campaign file (for its declaration).
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum HostCommand {
    /// Print this host's public key in one line (`name+hash+key`), to paste as `key` into
    /// another host's `[[peers]]` entry for this host. The key is made on first use beside
    /// the database (readable only by its owner), or given by `host_key` /
    /// `PICKET_HOST_KEY`. Its name is this host's `public_url`, so set that first.
    #[command(
        after_help = "Example:\n  picket host key\n  strike.example.org+1a2b3c4d+AXk...=\n\nOn the other host, in picket.toml:\n  [[peers]]\n  url = \"https://strike.example.org\"\n  key = \"strike.example.org+1a2b3c4d+AXk...=\""
    )]
    Key,
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Copy every table from one database to another (SQLite to PostgreSQL or back), then
    /// verify each table's row count and checksum on both sides. The source is read as one
    /// consistent snapshot; stop picket on it first so nothing is written after the copy.
    /// Run it again after an interruption: it goes on where it stopped and never writes a
    /// row twice.
    #[command(
        after_help = "Example:\n  picket db copy --from sqlite://picket.db --to postgres://picket@db/picket"
    )]
    Copy {
        /// The database to read: sqlite://PATH (must exist) or postgres://...
        #[arg(long)]
        from: String,
        /// The database to write, created and migrated if new; it should be empty.
        #[arg(long)]
        to: String,
    },
    /// Write a consistent copy of the SQLite database (--database-url) to a new file while
    /// picket keeps running on it (SQLite's VACUUM INTO), and check the copy. To restore,
    /// stop picket and put the file in the database's place.
    #[command(after_help = "Example:\n  picket db backup /var/backups/picket-2027-07-04.db")]
    Backup {
        /// The new file to write (it must not exist).
        path: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// Run a parsed command line; the exit code says how it went.
pub fn run(cli: Cli) -> ExitCode {
    init_tracing();
    if !matches!(cli.command, Command::Serve { .. } | Command::Worker) {
        end_quietly_on_closed_pipe();
    }
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Rust starts with SIGPIPE ignored, so `picket campaign preview ... | head` made every later
/// `println!` fail and panic ("failed printing to stdout") once `head` had read enough.
/// Commands that print to a pipe take the Unix default instead and end quietly. The server
/// keeps it ignored (its sockets never raise it, but a child's pipe might).
fn end_quietly_on_closed_pipe() {
    use nix::sys::signal::{SigHandler, Signal, signal};
    // SAFETY: called in `run` before any thread or runtime exists, and SIG_DFL installs no
    // handler code.
    if let Err(e) = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) } {
        tracing::debug!(error = %e, "SIGPIPE left ignored");
    }
}

fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    let settings = || settings(&cli.global);
    match cli.command {
        Command::Campaign(CampaignCommand::Check { paths }) => Ok(check(&paths)),
        Command::Declaration(DeclarationCommand::Hash { file }) => declaration::hash(&file),
        Command::Declaration(DeclarationCommand::Fork {
            source,
            campaign_id,
            out,
            origin_url,
        }) => declaration::fork(declaration::ForkArgs {
            source,
            campaign_id,
            out: match out {
                Some(out) => out,
                None => settings()?.campaigns_dir,
            },
            origin_url,
        }),
        Command::Campaign(CampaignCommand::Cancel { .. }) => {
            let settings = settings()?;
            runtime()?.block_on(async move {
                let ctx = participate::Ctx::open(settings).await?;
                participant_command(&ctx, cli.command).await
            })
        }
        Command::Campaign(CampaignCommand::Preview {
            path,
            tz,
            networks,
            days,
            every,
            format,
        }) => preview(path, tz, networks, days, every, format),
        Command::Serve { bind } => {
            let mut settings = settings()?;
            if let Some(bind) = bind {
                settings.bind = bind;
            }
            runtime()?.block_on(serve(settings))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Host(HostCommand::Key) => {
            peers::host_key(&settings()?)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Worker => {
            runtime()?.block_on(app::run_worker(settings()?))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Db(DbCommand::Copy { from, to }) => runtime()?.block_on(db::copy(&from, &to)),
        Command::Db(DbCommand::Backup { path }) => {
            let url = settings()?.database_url;
            runtime()?.block_on(db::backup(&url, &path))
        }
        Command::Widget(WidgetCommand::Export {
            dir,
            campaign,
            public_url,
            no_counters,
        }) => {
            let settings = settings()?;
            runtime()?.block_on(widget::export(
                settings,
                &dir,
                campaign.as_deref(),
                public_url,
                no_counters,
            ))
        }
        Command::Bench {
            name,
            posts,
            batch,
            concurrency,
            rate,
            secs,
            pledges,
            campaign,
            database,
            workers,
            runs,
            page_file,
            headers_file,
            bind,
        } => {
            if name == BenchName::BarePage {
                let file = page_file.context("bench bare-page needs --page-file")?;
                return runtime()?.block_on(async move {
                    bench::bare_page(&file, headers_file.as_deref(), bind).await?;
                    Ok(ExitCode::SUCCESS)
                });
            }
            let opts = bench::Options {
                posts,
                batch,
                concurrency,
                rate,
                secs,
                pledges,
                campaign,
                database,
                workers,
                runs,
            };
            runtime()?.block_on(async move {
                if matches!(name, BenchName::Dispatch | BenchName::All) {
                    bench::dispatch(&opts).await?;
                }
                if matches!(name, BenchName::Lateness | BenchName::All) {
                    bench::lateness(&opts).await?;
                }
                if matches!(name, BenchName::Plan | BenchName::All) {
                    bench::plan(&opts).await?;
                }
                if matches!(name, BenchName::Card | BenchName::All) {
                    bench::card(&opts)?;
                }
                anyhow::Ok(())
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Rehearse {
            path,
            participants,
            speed,
            error_rate,
            rate_limit_rate,
            slow_rate,
            lost_answer_rate,
            seed,
            format,
        } => {
            let mut opts = rehearse::Options::new(path);
            opts.participants = participants;
            opts.speed = speed;
            opts.faults.error_rate = error_rate;
            opts.faults.rate_limit_rate = rate_limit_rate;
            opts.faults.slow_rate = slow_rate;
            opts.faults.lost_answer_rate = lost_answer_rate;
            opts.faults.seed = seed;
            opts.scheduler = settings()?.scheduler;
            opts.progress = format == Format::Text;
            let report = runtime()?.block_on(rehearse::rehearse(opts))?;
            match format {
                Format::Text => println!("{}", report.to_text()),
                Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
            }
            Ok(if report.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        command => {
            let settings = settings()?;
            runtime()?.block_on(async move {
                let ctx = participate::Ctx::open(settings).await?;
                participant_command(&ctx, command).await
            })
        }
    }
}

async fn participant_command(ctx: &participate::Ctx, command: Command) -> anyhow::Result<ExitCode> {
    if let Command::Account(AccountCommand::Add(add)) = &command
        && let Some((network, handle)) = add.tap()
    {
        return participate::add_tap(ctx, network, handle).await;
    }
    if let Command::Account(AccountCommand::Add(add)) = &command
        && let Some(network) = add.official()
    {
        add_official::add_with_oauth(ctx, network).await?;
        return Ok(ExitCode::SUCCESS);
    }
    match command {
        Command::Account(AccountCommand::Add(AddAccount::Sandbox {
            name,
            server,
            token,
        })) => participate::add_sandbox(ctx, &name, server, token).await?,
        Command::Account(AccountCommand::Add(AddAccount::Nostr {
            relays,
            nsec,
            bunker,
        })) => return add_nostr::add_nostr(ctx, &relays, nsec, bunker).await,
        Command::Account(AccountCommand::Add(AddAccount::Mastodon { server, token })) => {
            add_mastodon::add_mastodon(ctx, &server, token).await?
        }
        Command::Account(AccountCommand::Add(AddAccount::Misskey { server, token })) => {
            add_misskey::add_misskey(ctx, &server, token).await?
        }
        Command::Account(AccountCommand::Add(AddAccount::Bluesky {
            handle,
            app_password,
            service,
        })) => add_bluesky::add_bluesky(ctx, &handle, &app_password, service.as_deref()).await?,
        Command::Account(AccountCommand::Add(_)) => unreachable!("tap-to-post: handled above"),
        Command::Account(AccountCommand::List { format }) => {
            participate::list_accounts(ctx, format).await?
        }
        Command::Account(AccountCommand::Remove { id }) => {
            return participate::remove_account(ctx, id).await;
        }
        Command::Join {
            campaign,
            accounts,
            tz,
            days,
            every,
            name,
            email,
            hand_off,
        } => {
            return participate::join(
                ctx,
                participate::JoinArgs {
                    campaign,
                    accounts,
                    tz,
                    days,
                    every,
                    name,
                    email,
                    hand_off,
                },
            )
            .await;
        }
        Command::Withdraw {
            campaign,
            account,
            delete_posts,
        } => return participate::withdraw(ctx, &campaign, account, delete_posts).await,
        Command::Status { campaign, format } => {
            participate::status(ctx, campaign.as_deref(), format).await?
        }
        Command::Campaign(CampaignCommand::Cancel { id, reason }) => {
            participate::cancel_campaign(ctx, &id, &reason).await?
        }
        Command::Admin { password_stdin } => return admin::set(ctx, password_stdin).await,
        Command::Export {
            what,
            campaign,
            format,
        } => return admin::export(ctx, what, &campaign, format).await,
        Command::Stats { campaign, format } => stats::stats(ctx, &campaign, format).await?,
        Command::Peers { campaign, format } => peers::peers(ctx, &campaign, format).await?,
        Command::Serve { .. }
        | Command::Worker
        | Command::Widget(_)
        | Command::Host(_)
        | Command::Campaign(_)
        | Command::Declaration(_)
        | Command::Rehearse { .. }
        | Command::Db(_)
        | Command::Bench { .. } => {
            unreachable!("handled by dispatch")
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn settings(global: &Global) -> anyhow::Result<Settings> {
    let mut s = Settings::load(global.config.as_deref())?;
    if let Some(url) = &global.database_url {
        s.database_url = url.clone();
    }
    if let Some(dir) = &global.campaigns {
        s.campaigns_dir = dir.clone();
    }
    Ok(s)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("PICKET_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    // Logs go to stderr so command output on stdout stays machine-readable.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let app = Application::build(settings, Arc::new(SystemClock)).await?;
    let shutdown = CancellationToken::new();
    app::cancel_on_signals(shutdown.clone());
    app.run(shutdown).await?;
    tracing::info!("stopped");
    Ok(())
}

fn check(paths: &[PathBuf]) -> ExitCode {
    let (campaigns, problems) = campaign::check_paths(paths);
    for p in &problems {
        println!("{p}");
    }
    if problems.is_empty() {
        eprintln!("{} campaign(s) OK", campaigns.len());
        ExitCode::SUCCESS
    } else {
        eprintln!("{} problem(s)", problems.len());
        ExitCode::from(2)
    }
}

fn preview(
    path: PathBuf,
    tz: Option<String>,
    networks: Vec<NetworkKind>,
    days: Option<Vec<chrono::NaiveDate>>,
    every: Option<String>,
    format: Format,
) -> anyhow::Result<ExitCode> {
    let campaign = match campaign::load_file(&path) {
        Ok(c) => c,
        Err(problems) => {
            for p in &problems {
                println!("{p}");
            }
            return Ok(ExitCode::from(2));
        }
    };
    let tz = match tz.or_else(|| std::env::var("TZ").ok().filter(|z| Zone::parse(z).is_ok())) {
        Some(z) => match Zone::parse(&z) {
            Ok(tz) => tz,
            Err(_) => {
                eprintln!(
                    "error: unknown time zone `{z}`: use an IANA name such as Europe/Berlin or America/New_York"
                );
                return Ok(ExitCode::from(2));
            }
        },
        None => Zone::UTC,
    };
    let every = match every.as_deref().map(campaign::parse_duration).transpose() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: --every: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let participation = Participation { tz, days, every };
    if let Err(msg) = campaign.check_participation(&participation) {
        eprintln!("error: {msg}");
        return Ok(ExitCode::from(2));
    }
    let networks = if networks.is_empty() {
        campaign.networks.clone()
    } else {
        networks
    };
    let preview = campaign::preview(&campaign, &participation, &networks);
    match format {
        Format::Text => println!("{}", preview.to_text().trim_end()),
        Format::Json => println!("{}", serde_json::to_string_pretty(&preview)?),
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> AddAccount {
        let cli = Cli::try_parse_from(["picket", "account", "add"].iter().chain(args))
            .unwrap_or_else(|e| panic!("{args:?}: {e}"));
        match cli.command {
            Command::Account(AccountCommand::Add(add)) => add,
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn networks_with_an_official_api_take_a_handle_to_tap_or_oauth_for_the_api_not_both() {
        use crate::domain::NetworkKind as N;
        for (name, kind) in [
            ("threads", N::Threads),
            ("linkedin", N::LinkedIn),
            ("x", N::X),
            ("facebook", N::Facebook),
        ] {
            let tap = parse(&[name, "--handle", "@alex"]);
            assert_eq!(tap.tap(), Some((kind, "@alex")));
            assert_eq!(tap.official(), None);
            let api = parse(&[name, "--oauth"]);
            assert_eq!(api.tap(), None);
            assert_eq!(api.official(), Some(kind));
            let both = ["picket", "account", "add", name, "--handle", "a", "--oauth"];
            assert!(Cli::try_parse_from(both).is_err(), "{name}: both");
            assert!(
                Cli::try_parse_from(["picket", "account", "add", name]).is_err(),
                "{name}: neither"
            );
        }
    }

    // Tokens and passwords are random base64url or base58 text: about one in 64 starts
    // with '-', which clap would otherwise read as the next flag and refuse.
    #[test]
    fn secrets_that_start_with_a_dash_are_taken_as_values() {
        match parse(&["mastodon", "--server", "x.example", "--token", "-GfCz_0F"]) {
            AddAccount::Mastodon { token, .. } => assert_eq!(token.as_deref(), Some("-GfCz_0F")),
            other => panic!("{other:?}"),
        }
        match parse(&[
            "bluesky",
            "--handle",
            "a.test",
            "--app-password",
            "-abc-def",
        ]) {
            AddAccount::Bluesky { app_password, .. } => assert_eq!(app_password, "-abc-def"),
            other => panic!("{other:?}"),
        }
        match parse(&["nostr", "--relay", "ws://127.0.0.1:1", "--nsec", "-00ff"]) {
            AddAccount::Nostr { nsec, .. } => assert_eq!(nsec.as_deref(), Some("-00ff")),
            other => panic!("{other:?}"),
        }
        match parse(&["sandbox", "--name", "a", "--token", "--x"]) {
            AddAccount::Sandbox { token, .. } => assert_eq!(token.as_deref(), Some("--x")),
            other => panic!("{other:?}"),
        }
    }
}
