//! One integration-test binary, a module per area (faster to link than one per file).

mod browser;
mod campaign_check;
mod campaign_preview;
mod cli;
mod crash;
mod declaration;
mod delivery;
mod fuzz_corpus;
mod hostile;
mod join;
mod mail;
mod net_bluesky;
mod net_facebook;
mod net_linkedin;
mod net_mastodon;
mod net_nostr;
mod net_threads;
mod net_x;
mod rehearse;
mod resilience;
mod ssrf;
mod store_contract;
mod support;
mod web;
mod web_safety;
mod widget;
