//! picket: a self-hosted strike and campaign coordination bot.
//!
//! # Layout
//!
//! | module        | what it is for |
//! |---------------|----------------|
//! | [`cli`]       | the `picket` command line (clap); each subcommand calls into the modules below |
//! | [`config`]    | settings: defaults -> file -> `PICKET_*` env -> flags; secrets redacted |
//! | [`crypto`]    | credentials encrypted at rest; the key lives outside the database |
//! | [`domain`]    | small types every room names and none owns, importing nothing from picket: `NetworkKind`, `Secret`, `Sealed`, and the values parsed at the edge and carried inside: `CampaignId`, `Hashtag`, `Handle`, `Zone` |
//! | [`admin`]     | the organiser area's rules for `/admin` and the CLI: the operator's Argon2-hashed secret (`picket admin`), exports of signatures and the published-posts ledger as CSV (spreadsheet-safe) or JSON (`picket export`) |
//! | [`federation`] | centerless totals: the host key (`picket host key`), signed checkpoints (`GET /c/{id}/checkpoint`, C2SP signed notes), judging peers' checkpoints, the `hosts` of the stats, the opt-in distinct-signers sketch |
//! | [`app`]       | wires store, renderer, scheduler and web together; supervised shutdown |
//! | [`clock`]     | the `Clock` trait: system, manual (tests) and scaled (rehearsals) time |
//! | [`campaign`]  | campaign files: raw spec -> validated `Campaign`; the values in them; slots in time zones; previews; declaration hashes and copies |
//! | [`card`]      | strike cards: the notice as a PNG (square and story), drawn from SVG with `resvg` and the bundled DejaVu fonts; alt text; an in-memory cache that draws each card once, off the async threads |
//! | [`compose`]   | the text of one post: its template variables, the variant that fits, its length as each network counts; tap-to-post compose links (`intent`); announcements' texts (`announce`) |
//! | [`render`]    | the only user of `tera`: post bodies (plain) and pages (escaped), the pages' static files |
//! | [`network`]   | the `Network` trait and one adapter per network, each with its enrolment functions (an `Enrolled` handle and credentials), the official APIs for hosts that register an app (Threads, LinkedIn, X, Facebook Pages), the guarded client they all use, Web Push (`push`), signed webhook attempts (`webhook`) and the campaign's broadcast channels (`broadcast`: Matrix, Telegram, Discord); the only user of `reqwest` |
//! | [`scheduler`] | planner (pledges -> outbox rows), dispatcher (claim, publish or render a tap-to-post reminder, record; hand-off to a Mastodon server's own scheduler), retry, pacing, account checks, reminder mails and Web Push (`remind`), organisers' webhooks (`webhooks`), the campaign's announcements on its broadcast channels (`broadcast`) |
//! | [`participation`] | the only place for what a participant does (the CLI and the web translate): pledge, change, withdraw, connect and remove accounts, tap-to-post accounts and "I posted it", delete published notices, delete everything; a typed `ParticipationError` |
//! | [`store`]     | the `Store` trait (one trait per area; `StoreTooling` for bench, rehearse and tests), SQLite and PostgreSQL; the only user of `sqlx` |
//! | [`web`]       | axum routes: pages, forms, JSON API, health; the server loop with its timeouts |
//! | [`widget`]    | the embeddable strike widget (`/widget.js`, `picket widget export`): campaign data inlined into `widget/widget.js` |
//! | [`mail`]      | the `Mailer` trait, SMTP with `lettre`, mails rendered from `templates/mail/*.txt` |
//! | [`sandbox`]   | the sandbox receiver: a local fake network with fault injection (rehearsals, tests) |
//! | [`stats`]     | a campaign's figures for organisers, one aggregation for `picket stats`, the stats API and the stats page (with its SVG charts) |
//! | [`sync`]      | `sync::lock`: the one way a `std::sync::Mutex` is locked (a poisoned lock is recovered) |
//! | [`bench`]     | `picket bench`: dispatch throughput (beside a bare HTTP client), lateness, planning |
//! | [`rehearse`]  | `picket rehearse`: a whole strike in compressed time against the sandbox, with a report |
//! | `fuzzing`     | (hidden) the checks of the fuzz targets in `fuzz/`, shared with the corpus replay test |
//!
//! Data flows one way: campaign files and web/CLI input are written to the store; the
//! scheduler turns pledges into outbox rows and only it posts to networks. Imports flow
//! one way too: `domain` imports nothing, `store` only `domain`; `compose` uses `domain`,
//! `render` and the store's account rows; `campaign` builds on `compose`; `network` uses
//! `compose` for lengths. `campaign`, `store` and `compose` import nothing from `network`.
//! `card` imports only `sync`; `campaign` (a campaign's card), `network` (a post's image),
//! the dispatcher and the web use it.

pub mod admin;
pub mod app;
pub mod bench;
pub mod campaign;
pub mod card;
pub mod cli;
pub mod clock;
pub mod compose;
pub mod config;
pub mod crypto;
pub mod domain;
pub mod federation;
#[doc(hidden)]
pub mod fuzzing;
pub mod mail;
pub mod network;
pub mod participation;
pub mod rehearse;
pub mod render;
pub mod sandbox;
pub mod scheduler;
pub mod stats;
pub mod store;
pub mod sync;
pub mod web;
pub mod widget;
