//! Turning rendered templates into posts for one network: how long a text is the way that
//! network counts it, and whether it fits.
//!
//! Each network counts differently (NETWORKS.md §1.3, §2.3, §5): Mastodon counts grapheme
//! clusters with every URL as 23 and `@user@domain` as `@user`; Bluesky caps both
//! graphemes (300) and UTF-8 bytes (3,000); X weighs code points (twitter-text v3) with
//! URLs as 23; Threads counts characters with emoji as their UTF-8 bytes; Nostr has no
//! limit. Rendering itself is in `render`; this module never touches tera.

pub mod length;

pub use length::{Limit, Measure, measure};
