//! The text of one post: every place that shows or sends a post's text gets it here, so
//! the preview a person approves is what goes out.
//!
//! * [`vars`]: the template variables of one post ([`PostContext::vars`]), including the
//!   rule for which accounts a post names as the participant's [`elsewhere`];
//! * [`text`]: a campaign's templates compiled once ([`Templates`]), one variant
//!   rendered, measured for the account's network, and the next variant taken when it
//!   is too long ([`Templates::compose`]);
//! * [`length`]: how long a text is the way each network counts it, and whether it fits;
//! * [`intent`]: tap-to-post: the prefilled compose link (or the text to copy) of a
//!   rendered notice, and which addresses a post by hand may have;
//! * [`announce`]: the text of an announcement on the campaign's own broadcast channels
//!   (its variables, with live counts), rendered the same way.
//!
//! The dispatcher, the join preview and `picket campaign preview` (through
//! `campaign::preview`) call these; nothing else builds a post's text.
//!
//! Each network counts differently (NETWORKS.md §1.3, §2.3, §5): Mastodon counts grapheme
//! clusters with every URL as 23 and `@user@domain` as `@user`; Bluesky caps both
//! graphemes (300) and UTF-8 bytes (3,000); X weighs code points (twitter-text v3) with
//! URLs as 23; Threads counts characters with emoji as their UTF-8 bytes; Nostr has no
//! limit. Templates are compiled and rendered by `render` (the only user of tera); this
//! module decides what goes into them and which variant is sent. It knows no campaign
//! file and no network adapter: callers pass the values and the measure.

pub mod announce;
pub mod intent;
pub mod length;
pub mod text;
pub mod vars;

pub use length::{Limit, Measure, measure};
pub use text::{ComposeError, Composed, TemplateError, Templates};
pub use vars::{CampaignRef, ParticipantVars, PostContext, PostVars, SlotRef, elsewhere};
