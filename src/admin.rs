//! The organiser area's rules, in one room for `/admin` and the command line alike: the
//! operator's secret (set by `picket admin`, kept as an Argon2 hash), admin session tokens,
//! and the exports (`picket export` and the area's download links): signatures and the
//! published-posts ledger, as CSV or JSON.
//!
//! It does not serve pages (see `web::admin`) nor speak SQL (see `store::admin`). E-mail
//! addresses reach an export only for signers who consented: the store blanks the others.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use chrono::{DateTime, SecondsFormat, Utc};

use crate::store::{Store, StoreError};

/// The shortest password `picket admin --password-stdin` accepts, in characters.
pub const MIN_PASSWORD: usize = 12;

/// What went wrong in the organiser area.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The password given is too short; the operator should choose a longer one.
    #[error("the password must have at least {MIN_PASSWORD} characters")]
    WeakPassword,
    /// The secret could not be hashed (should not happen with the default parameters).
    #[error("hashing the secret: {0}")]
    Hash(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An export could not be written out.
    #[error("writing the export: {0}")]
    Write(String),
}

/// A new random token for the operator: 32 bytes, hex (the same shape as a magic link's).
pub fn new_token() -> String {
    crate::participation::new_access_token()
}

/// The Argon2id PHC string of `secret`, with a fresh salt and the crate's default
/// parameters (19 MiB, 2 passes: OWASP's recommendation for a login).
pub fn hash_secret(secret: &str) -> Result<String, AdminError> {
    use rand::Rng;
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| AdminError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(secret.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AdminError::Hash(e.to_string()))
}

/// Whether `secret` is the one hashed in `phc`. The hashes are compared in constant time
/// by the `password-hash` crate; an unreadable PHC string matches nothing.
pub fn verify_secret(phc: &str, secret: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|hash| {
        Argon2::default()
            .verify_password(secret.as_bytes(), &hash)
            .is_ok()
    })
}

/// Set the operator's password (at least [`MIN_PASSWORD`] characters) or token; every
/// admin session ends.
pub async fn set_secret(
    store: &dyn Store,
    secret: &str,
    now: DateTime<Utc>,
) -> Result<(), AdminError> {
    if secret.chars().count() < MIN_PASSWORD {
        return Err(AdminError::WeakPassword);
    }
    let phc = hash_secret(secret)?;
    store.set_admin_secret(&phc, now).await?;
    Ok(())
}

/// What to export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportKind {
    /// The campaign's signatures (addresses only of signers who consented).
    Signatures,
    /// The published-posts ledger: by picket and by hand.
    Posts,
}

/// How an export is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    Csv,
    Json,
}

impl ExportKind {
    pub fn name(self) -> &'static str {
        match self {
            ExportKind::Signatures => "signatures",
            ExportKind::Posts => "posts",
        }
    }
}

impl ExportFormat {
    pub fn extension(self) -> &'static str {
        match self {
            ExportFormat::Csv => "csv",
            ExportFormat::Json => "json",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            ExportFormat::Csv => "text/csv; charset=utf-8",
            ExportFormat::Json => "application/json",
        }
    }
}

/// The export of `kind` for the campaign `campaign_id`, as the bytes of a file.
pub async fn export(
    store: &dyn Store,
    campaign_id: &str,
    kind: ExportKind,
    format: ExportFormat,
) -> Result<Vec<u8>, AdminError> {
    match kind {
        ExportKind::Signatures => {
            let rows = store.export_signatures(campaign_id).await?;
            match format {
                ExportFormat::Json => json(&rows),
                ExportFormat::Csv => csv_of(
                    &[
                        "id",
                        "name",
                        "email",
                        "public",
                        "confirmed",
                        "invited_by",
                        "signed_at",
                    ],
                    rows.iter().map(|s| {
                        vec![
                            s.id.to_string(),
                            s.name.clone(),
                            s.email.clone().unwrap_or_default(),
                            s.public.to_string(),
                            s.confirmed.to_string(),
                            s.invited_by.clone().unwrap_or_default(),
                            when(s.signed_at),
                        ]
                    }),
                ),
            }
        }
        ExportKind::Posts => {
            let rows = store.post_ledger(campaign_id).await?;
            match format {
                ExportFormat::Json => json(&rows),
                ExportFormat::Csv => csv_of(
                    &[
                        "campaign",
                        "network",
                        "account_id",
                        "post",
                        "slot",
                        "slot_at",
                        "published_at",
                        "link",
                        "state",
                    ],
                    rows.iter().map(|p| {
                        vec![
                            p.campaign.clone(),
                            p.network.to_string(),
                            p.account_id.to_string(),
                            p.post.clone(),
                            p.slot.clone(),
                            when(p.slot_at),
                            p.published_at.map(when).unwrap_or_default(),
                            p.link.clone().unwrap_or_default(),
                            p.state.to_string(),
                        ]
                    }),
                ),
            }
        }
    }
}

fn when(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn json<T: serde::Serialize>(rows: &T) -> Result<Vec<u8>, AdminError> {
    let mut out = serde_json::to_vec_pretty(rows).map_err(|e| AdminError::Write(e.to_string()))?;
    out.push(b'\n');
    Ok(out)
}

fn csv_of(header: &[&str], rows: impl Iterator<Item = Vec<String>>) -> Result<Vec<u8>, AdminError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let fail = |e: csv::Error| AdminError::Write(e.to_string());
    w.write_record(header).map_err(fail)?;
    for row in rows {
        w.write_record(row.iter().map(|c| spreadsheet_safe(c).into_owned()))
            .map_err(fail)?;
    }
    w.into_inner().map_err(|e| AdminError::Write(e.to_string()))
}

/// A cell a spreadsheet will not run as a formula: one that starts with `=`, `+`, `-` or
/// `@` (or a tab or carriage return, which some programs skip before looking) gets a `'`
/// in front (OWASP's advice on CSV injection). Signers type their own names.
pub fn spreadsheet_safe(cell: &str) -> std::borrow::Cow<'_, str> {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{cell}").into()
    } else {
        cell.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_that_a_spreadsheet_would_run_are_quoted_and_others_are_left_alone() {
        for bad in ["=1+1", "+33 1", "-2", "@SUM(A1)", "\t=x", "\r=x"] {
            assert_eq!(spreadsheet_safe(bad), format!("'{bad}"), "{bad:?}");
        }
        for fine in ["Alex", "", "a=b", "1-2", "'=x"] {
            assert_eq!(spreadsheet_safe(fine), fine);
        }
    }

    #[test]
    fn a_hashed_secret_verifies_only_with_itself() {
        let phc = hash_secret("correct horse battery").unwrap();
        assert!(phc.starts_with("$argon2id$"), "{phc}");
        assert!(!phc.contains("correct"));
        assert!(verify_secret(&phc, "correct horse battery"));
        assert!(!verify_secret(&phc, "correct horse batterY"));
        assert!(!verify_secret("not a phc string", "correct horse battery"));
        // A new salt each time: the same secret never hashes alike.
        assert_ne!(phc, hash_secret("correct horse battery").unwrap());
    }
}
