//! The web side: axum routes for pages, forms and the JSON API. It writes to the store
//! and never posts to networks.
