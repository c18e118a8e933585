//! Views the join steps and `/me` both show: a connected account, and an instant in the
//! participant's own zone.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::domain::Handle;
use crate::store::AccountStatus;

/// An account as the join and `/me` pages show it.
#[derive(Serialize)]
pub(crate) struct AccountView {
    id: i64,
    network: &'static str,
    handle: Handle,
    server: Option<String>,
    active: bool,
    status: String,
    /// The day picket's access ends unless reconnected (or renewed) before: "reconnect
    /// before" it.
    reconnect_before: Option<String>,
}

pub(crate) fn account_view(a: &crate::store::Account, vault: &crate::crypto::Vault) -> AccountView {
    AccountView {
        reconnect_before: crate::participation::connect::grant_ends(vault, a)
            .map(|at| at.format("%Y-%m-%d").to_string()),
        id: a.id.0,
        network: a.network.label(),
        handle: a.handle.clone(),
        server: a.server.clone(),
        active: a.status == AccountStatus::Active,
        status: match &a.status_reason {
            Some(r) if a.status != AccountStatus::Active => format!("{}: {r}", a.status),
            _ => a.status.to_string(),
        },
    }
}

pub(crate) fn local_label(at: DateTime<Utc>, tz: impl Into<chrono_tz::Tz>) -> String {
    at.with_timezone(&tz.into())
        .format("%a %-d %b %Y, %H:%M %Z")
        .to_string()
}
