//! One integration-test binary, a module per area (faster to link than one per file).

mod browser;
mod campaign_check;
mod campaign_preview;
mod cli;
mod crash;
mod declaration;
mod delivery;
mod fuzz_corpus;
mod join;
mod mail;
mod net_bluesky;
mod net_mastodon;
mod net_nostr;
mod rehearse;
mod store_contract;
mod support;
mod web;
mod widget;
