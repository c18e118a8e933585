//! picket: a self-hosted strike and campaign coordination bot.
//!
//! # Layout
//!
//! | module        | what it is for |
//! |---------------|----------------|
//! | [`cli`]       | the `picket` command line (clap); each subcommand calls into the modules below |
//! | [`config`]    | settings: defaults -> file -> `PICKET_*` env -> flags; secrets redacted |
//! | [`crypto`]    | credentials encrypted at rest; the key lives outside the database |
//! | [`app`]       | wires store, renderer, scheduler and web together; supervised shutdown |
//! | [`clock`]     | the `Clock` trait: system, manual (tests) and scaled (rehearsals) time |
//! | [`campaign`]  | campaign files: raw spec -> validated `Campaign`; slots in time zones; declaration hashes and copies |
//! | [`compose`]   | rendered text -> a post for one network: length rules per network |
//! | [`render`]    | the only user of `tera`: post bodies (plain) and pages (escaped) |
//! | [`network`]   | network kinds and adapters; the only user of `reqwest` |
//! | [`scheduler`] | planner (pledges -> outbox rows), dispatcher (claim, publish, record), retry, pacing, account checks |
//! | [`store`]     | the `Store` trait, SQLite and PostgreSQL; the only user of `sqlx` |
//! | [`web`]       | axum routes: pages, forms, JSON API, health |
//! | [`widget`]    | the embeddable strike widget (`/widget.js`, `picket widget export`): campaign data inlined into `widget/widget.js` |
//! | [`mail`]      | the `Mailer` trait, SMTP with `lettre`, mails rendered from `templates/mail/*.txt` |
//! | [`sandbox`]   | the sandbox receiver: a local fake network with fault injection (rehearsals, tests) |
//! | [`bench`]     | `picket bench`: dispatch throughput (beside a bare HTTP client), lateness, planning |
//! | [`rehearse`]  | `picket rehearse`: a whole strike in compressed time against the sandbox, with a report |
//! | `fuzzing`     | (hidden) the checks of the fuzz targets in `fuzz/`, shared with the corpus replay test |
//!
//! Data flows one way: campaign files and web/CLI input are written to the store; the
//! scheduler turns pledges into outbox rows and only it posts to networks.

pub mod app;
pub mod bench;
pub mod campaign;
pub mod cli;
pub mod clock;
pub mod compose;
pub mod config;
pub mod crypto;
#[doc(hidden)]
pub mod fuzzing;
pub mod mail;
pub mod network;
pub mod participation;
pub mod rehearse;
pub mod render;
pub mod sandbox;
pub mod scheduler;
pub mod store;
pub mod web;
pub mod widget;
