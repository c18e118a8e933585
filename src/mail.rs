//! E-mail: the [`Mailer`] seam (one small trait, like `Store` and `Network`), its SMTP
//! implementation with `lettre`, and the mails picket sends, each rendered from a template
//! `templates/mail/*.txt` by the renderer (plain text, not escaped).
//!
//! A mail template starts with a `Subject: ...` line and a blank line; the rest is the body.
//!
//! Every mail goes to an address some visitor typed, so no address gets more than a budget
//! of mails an hour, whoever asks ([`Budgeted`], in front of the SMTP mailer): otherwise the
//! join and signing forms are a mail cannon aimed at anyone. The budget is counted in the
//! store (shared by every picket process), keyed by a hash of the normalised address.
//!
//! What this module does not do: decide when to mail (signing does, in `web::signing`),
//! retry (a failed send is reported to the caller, who keeps what it stored and tells the
//! person), or log addresses: errors never carry the recipient, and an SMTP server's answer,
//! which often quotes it, is reduced to its status code.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use lettre::message::header::ContentType;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::Serialize;

use sha2::{Digest, Sha256};

use crate::clock::Clock;
use crate::config::{SmtpTarget, SmtpTls};
use crate::render::RenderError;
use crate::render::pages::Pages;
use crate::store::{Store, StoreError, canonical_email};

/// The longest one delivery to the SMTP server may take: a person waits for the page.
const SEND_TIMEOUT: Duration = Duration::from_secs(15);

/// One message to one person.
#[derive(Clone)]
pub struct Mail {
    /// The address as the person typed it (already checked by the caller).
    pub to: String,
    pub subject: String,
    pub text: String,
    /// An HTML alternative; when given, everything a user typed in it must be escaped.
    pub html: Option<String>,
}

/// Not `derive`d: the recipient must not reach a log through a `{:?}`.
impl std::fmt::Debug for Mail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mail")
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

/// Why a mail was not sent. No variant holds the recipient's address.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// The recipient's address cannot be written into a mail; asking the person again helps.
    #[error("the recipient address cannot be used")]
    Address,
    /// The configured sender (`smtp.from`) is not an address: fix the setting.
    #[error("smtp.from is not an address like \"Name <picket@example.org>\"")]
    From,
    /// The mail could not be put together (a template produced something unusable).
    #[error("building the mail: {0}")]
    Build(String),
    /// The SMTP server could not be reached or did not accept the mail; later may work.
    #[error("sending: {0}")]
    Transport(String),
    /// A mail template failed to render: fix the template.
    #[error("rendering the mail: {0}")]
    Render(#[from] RenderError),
    /// This address has had its mails for the hour; nothing was sent. Callers answer the
    /// visitor as if it had been, so the answer tells nothing about the address.
    #[error("this address has had its mails for the hour")]
    OverBudget,
    /// The budget could not be checked, so nothing was sent.
    #[error("checking the mail budget: {0}")]
    Budget(#[from] StoreError),
}

/// Sends mail. Object-safe: held as `Arc<dyn Mailer>` in the application state (absent when
/// no SMTP server is configured).
#[async_trait]
pub trait Mailer: Send + Sync + 'static {
    async fn send(&self, mail: Mail) -> Result<(), MailError>;
}

/// Mail through an SMTP server.
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl SmtpMailer {
    /// A mailer for `target`. Nothing is connected yet: an unreachable server shows at the
    /// first send, and picket starts anyway.
    pub fn new(target: &SmtpTarget) -> Result<SmtpMailer, MailError> {
        let from: Mailbox = target.from.parse().map_err(|_| MailError::From)?;
        let host = target.host.as_str();
        let builder = match target.tls {
            SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
            SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)
                .map_err(|e| MailError::Build(e.to_string()))?,
            SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(host)
                .map_err(|e| MailError::Build(e.to_string()))?,
        };
        let mut builder = builder.port(target.port).timeout(Some(SEND_TIMEOUT));
        if let Some((user, password)) = &target.credentials {
            builder = builder.credentials(Credentials::new(
                user.clone(),
                password.expose().to_string(),
            ));
        }
        Ok(SmtpMailer {
            transport: builder.build(),
            from,
        })
    }
}

/// Whether `address` can be written into a mail's `To:` as it is.
pub fn is_address(address: &str) -> bool {
    address.parse::<lettre::Address>().is_ok()
}

/// The message as it goes on the wire.
fn message(from: &Mailbox, mail: Mail) -> Result<Message, MailError> {
    let to: Mailbox = mail.to.parse().map_err(|_| MailError::Address)?;
    // Header values are encoded by lettre; a line break would still end the subject early.
    let subject: String = mail.subject.chars().filter(|c| !c.is_control()).collect();
    let builder = Message::builder()
        .from(from.clone())
        .to(to)
        .subject(subject);
    let built = match mail.html {
        None => builder.header(ContentType::TEXT_PLAIN).body(mail.text),
        Some(html) => builder.multipart(MultiPart::alternative_plain_html(mail.text, html)),
    };
    built.map_err(|e| MailError::Build(e.to_string()))
}

/// An SMTP failure, said without the server's own words (they often quote the address).
fn describe(e: &lettre::transport::smtp::Error) -> String {
    if let Some(code) = e.status() {
        let kind = if e.is_permanent() {
            "refused the mail"
        } else {
            "could not take the mail now"
        };
        return format!("the SMTP server {kind} ({code})");
    }
    if e.is_timeout() {
        return "the SMTP server did not answer in time".to_string();
    }
    e.to_string()
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, mail: Mail) -> Result<(), MailError> {
        let message = message(&self.from, mail)?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| MailError::Transport(describe(&e)))
    }
}

/// How long a mail budget lasts.
const BUDGET_WINDOW: chrono::Duration = chrono::Duration::hours(1);

/// A mailer that sends at most `per_hour` mails an hour to one address, counted in the
/// store, and hands the rest to `inner`.
pub struct Budgeted {
    pub inner: Arc<dyn Mailer>,
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub per_hour: u32,
}

/// The key an address's budget is counted under: a hash of its normalised form
/// (`Ada+x@Example.org` and `ada@example.org` share one), so the table holds no addresses.
pub fn budget_key(address: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"picket mail budget\0");
    h.update(canonical_email(address).as_bytes());
    hex::encode(h.finalize())
}

/// Whether `address` may get one more mail now under a budget of `per_hour`; counts
/// nothing. For a caller that would otherwise replace a link already mailed with one that
/// the budget then holds back.
pub async fn budget_left(
    store: &dyn Store,
    address: &str,
    per_hour: u32,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<bool, StoreError> {
    store
        .mail_budget_left(&budget_key(address), per_hour, BUDGET_WINDOW, now)
        .await
}

#[async_trait]
impl Mailer for Budgeted {
    async fn send(&self, mail: Mail) -> Result<(), MailError> {
        let allowed = self
            .store
            .spend_mail_budget(
                &budget_key(&mail.to),
                self.per_hour,
                BUDGET_WINDOW,
                self.clock.now(),
            )
            .await?;
        if !allowed {
            return Err(MailError::OverBudget);
        }
        self.inner.send(mail).await
    }
}

/// The mailer the settings ask for: `None` without an `[smtp]` section.
pub fn from_settings(
    smtp: Option<&crate::config::SmtpSettings>,
) -> anyhow::Result<Option<Arc<dyn Mailer>>> {
    let Some(smtp) = smtp else { return Ok(None) };
    let target = smtp.resolve()?;
    let mailer = SmtpMailer::new(&target)?;
    tracing::info!(host = %target.host, port = target.port, tls = ?target.tls, "mail goes out through SMTP");
    Ok(Some(Arc::new(mailer)))
}

/// Render `template` (`mail/NAME.txt`) and split off its `Subject:` line.
pub fn render(
    pages: &Pages,
    template: &str,
    to: &str,
    vars: &impl Serialize,
) -> Result<Mail, MailError> {
    let rendered = pages.render(template, vars)?;
    let (first, body) = rendered.split_once('\n').unwrap_or((&rendered, ""));
    let subject = first
        .strip_prefix("Subject:")
        .ok_or_else(|| {
            MailError::Build(format!(
                "{template} must start with a \"Subject: ...\" line"
            ))
        })?
        .trim();
    Ok(Mail {
        to: to.to_string(),
        subject: subject.to_string(),
        text: format!("{}\n", body.trim()),
        html: None,
    })
}

/// Ask a signer to confirm their signature by following `confirm_link`.
pub async fn confirm_signature(
    mailer: &dyn Mailer,
    pages: &Pages,
    to: &str,
    name: &str,
    campaign: &crate::campaign::Campaign,
    confirm_link: &str,
) -> Result<(), MailError> {
    let mail = render(
        pages,
        "mail/confirm.txt",
        to,
        &serde_json::json!({
            "name": name,
            "campaign": { "id": campaign.id, "title": campaign.title, "hashtag": campaign.hashtag },
            "confirm_link": confirm_link,
        }),
    )?;
    mailer.send(mail).await
}

/// Mail a participant the magic link `url` that opens their own page (`/me`) and works
/// until `until` (said in words).
pub async fn magic_link(
    mailer: &dyn Mailer,
    pages: &Pages,
    to: &str,
    name: &str,
    url: &str,
    until: &str,
) -> Result<(), MailError> {
    let mail = render(
        pages,
        "mail/magic_link.txt",
        to,
        &serde_json::json!({ "name": name, "url": url, "until": until }),
    )?;
    mailer.send(mail).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn formatted(mail: Mail) -> String {
        let from: Mailbox = "Strike <picket@example.org>".parse().unwrap();
        String::from_utf8(message(&from, mail).unwrap().formatted()).unwrap()
    }

    #[test]
    fn a_mail_template_gives_its_subject_and_a_plain_text_body() {
        let pages = Pages::load(None).unwrap();
        let mail = render(
            &pages,
            "mail/magic_link.txt",
            "ada@example.org",
            &serde_json::json!({"name": "Ada", "url": "https://picket.test/me?t=abc", "until": "Monday 5 July 2027, 10:00 UTC"}),
        )
        .unwrap();
        assert_eq!(mail.subject, "Your picket link");
        assert!(mail.text.starts_with("Hello Ada,"), "{}", mail.text);
        assert!(mail.text.contains("https://picket.test/me?t=abc"));
        assert!(
            mail.text.contains("until Monday 5 July 2027, 10:00 UTC"),
            "{}",
            mail.text
        );
        let wire = formatted(mail);
        assert!(wire.contains("Content-Type: text/plain"), "{wire}");
        assert!(wire.contains("To: ada@example.org"), "{wire}");
    }

    #[test]
    fn a_line_break_in_a_subject_cannot_add_a_header() {
        let wire = formatted(Mail {
            to: "ada@example.org".into(),
            subject: "Hi\r\nBcc: everyone@example.org".into(),
            text: "x".into(),
            html: None,
        });
        assert!(!wire.contains("\r\nBcc:"), "{wire}");
    }

    #[test]
    fn an_unusable_recipient_is_an_error_that_does_not_repeat_it() {
        let from: Mailbox = "picket@example.org".parse().unwrap();
        let err = message(
            &from,
            Mail {
                to: "not an address <".into(),
                subject: "s".into(),
                text: "t".into(),
                html: None,
            },
        )
        .unwrap_err();
        assert!(matches!(err, MailError::Address));
        assert!(!err.to_string().contains("not an address"));
    }

    #[test]
    fn an_address_is_budgeted_under_a_hash_of_its_normal_form() {
        let key = budget_key("Ada+strike@Example.org");
        assert_eq!(key, budget_key(" ada@example.org"));
        assert_ne!(key, budget_key("bob@example.org"));
        assert!(!key.contains("ada") && key.len() == 64, "{key}");
    }

    #[test]
    fn the_debug_form_of_a_mail_hides_the_recipient() {
        let shown = format!(
            "{:?}",
            Mail {
                to: "ada@example.org".into(),
                subject: "s".into(),
                text: "t".into(),
                html: None
            }
        );
        assert!(!shown.contains("ada@"), "{shown}");
    }
}
