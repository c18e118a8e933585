//! The one test harness every module of the integration tests uses:
//!
//! - [`TestApp::spawn`] with [`Options`]: picket for one test, the same `Application`
//!   `picket serve` runs (or the binary itself, [`Options::process`]) on a port of its own
//!   with a fresh database; helpers to talk to it over HTTP, and [`Visitor`], a browser
//!   that keeps its cookies and can join a campaign.
//! - [`eventually`]: the one way to wait for a state, with a deadline and a failure that
//!   says what was awaited. No fixed sleeps.
//! - [`require_server`]: the one way to ask for a real server (PostgreSQL, a Nostr relay,
//!   ...): its address, or "skipped" without it, or a failure under
//!   `PICKET_REQUIRE_SERVERS=1`.
//! - [`World`]: the scheduler without the web server, for the delivery guarantees;
//!   [`Installation`]: the binary's folder for CLI steps before `picket serve`; campaign
//!   files; loopback ports.

mod app;
mod campaigns;
mod discord_fake;
mod facebook_fake;
mod install;
mod linkedin_fake;
mod misskey_fake;
mod ports;
mod postgres;
mod servers;
mod telegram_fake;
mod threads_fake;
mod visitor;
mod wait;
mod world;
mod x_fake;

pub use app::{Options, TestApp};
pub use campaigns::{BUNDLED, bundled_dir, bundled_files, posts_at_start, rfc, window_campaign};
pub use discord_fake::{DiscordFake, DiscordInner};
pub use facebook_fake::{FB_CLIENT_ID, FB_CLIENT_SECRET, FB_PAGE_ID, FB_PAGE_NAME, FacebookFake};
pub use install::Installation;
pub use linkedin_fake::{LI_CLIENT_ID, LI_CLIENT_SECRET, LI_NAME, LI_SUB, LinkedInFake};
pub use misskey_fake::{MISSKEY_USER_ID, MISSKEY_USERNAME, MisskeyFake};
pub use ports::{HeldPort, unused_port};
pub use postgres::FreshPostgres;
pub use servers::require_server;
pub use telegram_fake::{TELEGRAM_TOKEN, TelegramFake, TelegramInner};
pub use threads_fake::{
    FAKE_CLIENT_ID, FAKE_CLIENT_SECRET, FAKE_USER_ID, FAKE_USERNAME, ThreadsFake,
};
pub use visitor::{Page, Visitor};
pub use wait::eventually;
pub use world::{WORLD_KEY, World, fast_settings, networks, token};
pub use x_fake::{X_CLIENT_ID, X_CLIENT_SECRET, X_USERNAME, XFake};
