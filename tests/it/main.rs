//! One integration-test binary, a module per area (faster to link than one per file).

mod campaign_check;
mod campaign_preview;
mod cli;
mod rehearse;
mod store_contract;
