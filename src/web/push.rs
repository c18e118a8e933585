//! Web Push on the participant's page: the service worker (`GET /sw.js`) that shows a
//! reminder and opens `/me` when it is clicked, and the browser's subscription, sent by
//! `static/picket.js` when the participant presses "Remind me in this browser"
//! (`POST /me/push`) or stops it (`POST /me/push/delete`). Both are forms like every other
//! (`form::Form`: write budget, CSRF), for the signed-in participant only; what the
//! browser sends is checked (`network::push::Subscription::parse`) and sealed before it
//! is stored (`participation::push`).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::form::Form;
use super::session::signed_in;
use super::{AppState, WebError};
use crate::network::push::{MAX_ENDPOINT, Subscription};
use crate::participation;

/// The service worker's script: one fixed address (its scope is `/`, so no
/// `Service-Worker-Allowed` is needed), revalidated on every registration check.
pub async fn service_worker() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        crate::render::assets::SERVICE_WORKER,
    )
        .into_response()
}

/// `POST /me/push`: remind the signed-in participant in this browser. Fields: `endpoint`,
/// `p256dh`, `auth` (from `PushSubscription.toJSON()`) and `csrf`. 204 when kept.
pub async fn subscribe(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Form,
) -> Result<Response, WebError> {
    let (me, _) = signed_in(&state, &headers).await?;
    let f = form.checked()?;
    let subscription = Subscription::parse(
        &f.text("endpoint"),
        &f.text("p256dh"),
        &f.text("auth"),
        state.settings.allow_private_addresses,
    )
    .map_err(|e| WebError::Invalid(format!("This browser's push subscription: {e}.")))?;
    participation::push::subscribe(
        state.store.as_ref(),
        &state.vault,
        me.id,
        &subscription,
        state.clock.now(),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /me/push/delete`: stop reminding the signed-in participant in the browser whose
/// subscription has `endpoint`. 204 whether or not it was subscribed (the browser's own
/// subscription is gone either way).
pub async fn unsubscribe(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Form,
) -> Result<Response, WebError> {
    let (me, _) = signed_in(&state, &headers).await?;
    let f = form.checked()?;
    let endpoint = f.text("endpoint");
    if endpoint.is_empty() || endpoint.len() > MAX_ENDPOINT {
        return Err(WebError::Invalid(
            "Say which browser to stop reminding (its push endpoint).".into(),
        ));
    }
    participation::push::unsubscribe(state.store.as_ref(), me.id, &endpoint).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
