//! Small domain types that many rooms name and none owns: which network an account lives
//! on, a value that must not be printed, sealed bytes that show only their length, and
//! the values parsed once at the edge (campaign file, web form, command line) and carried
//! inside as themselves: a campaign's id and hashtag, an account's handle, a time zone.
//! They depend on nothing else in picket, so `campaign`, `store`, `compose`, `network`
//! and `config` can all import them without importing each other.

mod text;

pub mod campaign_id;
pub mod handle;
pub mod hashtag;
pub mod network_kind;
pub mod sealed;
pub mod secret;
pub mod zone;

pub use campaign_id::{CampaignId, InvalidCampaignId};
pub use handle::{Handle, InvalidHandle};
pub use hashtag::{Hashtag, InvalidHashtag};
pub use network_kind::{NetworkKind, UnknownNetwork};
pub use sealed::Sealed;
pub use secret::Secret;
pub use zone::{UnknownZone, Zone};
