//! A visitor's browser over plain HTTP: [`Visitor`] keeps its cookies, follows no
//! redirects (tests look at them) and reads pages as [`Page`]s; and the steps of joining
//! a campaign with a sandbox account, which many tests take on the way to what they test.

use std::collections::BTreeMap;
use std::sync::Mutex;

use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};

use super::BUNDLED;

/// One browser: keeps its cookies, does not follow redirects (tests look at them).
pub struct Visitor {
    pub base: String,
    pub http: reqwest::Client,
    cookies: Mutex<BTreeMap<String, String>>,
}

/// An answer as a browser reads it.
pub struct Page {
    pub status: StatusCode,
    pub location: Option<String>,
    /// With the entities tera writes in attributes decoded, as a browser reads them.
    pub html: String,
}

impl Page {
    /// The magic link shown on the joined page, as a path on the site.
    pub fn magic_path(&self, base: &str) -> String {
        self.html
            .split("id=\"magic-link\" value=\"")
            .nth(1)
            .unwrap_or_else(|| panic!("no magic link in {}", self.html))
            .split('"')
            .next()
            .unwrap()
            .trim_start_matches(base)
            .to_string()
    }

    /// The value of the first hidden/input field `name`.
    pub fn field(&self, name: &str) -> String {
        self.html
            .split(&format!("name=\"{name}\" value=\""))
            .nth(1)
            .unwrap_or_else(|| panic!("no field {name} in {}", self.html))
            .split('"')
            .next()
            .unwrap()
            .to_string()
    }
}

/// The entities tera writes in attributes, decoded.
fn decode(html: &str) -> String {
    html.replace("&#x2F;", "/")
        .replace("&amp;", "&")
        .replace("&#x3D;", "=")
}

impl Visitor {
    /// A browser with no cookies, on the site at `base`.
    pub fn new(base: &str) -> Visitor {
        Visitor {
            base: base.to_string(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: Mutex::new(BTreeMap::new()),
        }
    }

    /// Send `req` with this browser's cookies, and keep the ones the answer sets.
    pub async fn send(&self, req: reqwest::RequestBuilder) -> Page {
        let jar = self
            .cookies
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let resp = req.header(COOKIE, jar).send().await.unwrap();
        for c in resp.headers().get_all(SET_COOKIE) {
            let c = c.to_str().unwrap();
            let (pair, attrs) = c.split_once(';').unwrap_or((c, ""));
            let (k, v) = pair.split_once('=').unwrap();
            let mut jar = self.cookies.lock().unwrap();
            if attrs.contains("Max-Age=0") {
                jar.remove(k);
            } else {
                jar.insert(k.to_string(), v.to_string());
            }
        }
        Page {
            status: resp.status(),
            location: resp
                .headers()
                .get(LOCATION)
                .map(|l| l.to_str().unwrap().to_string()),
            html: decode(&resp.text().await.unwrap()),
        }
    }

    /// `GET` a path on the site.
    pub async fn get(&self, path: &str) -> Page {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    /// `POST` a form to a path on the site.
    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> Page {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        self.send(
            self.http
                .post(format!("{}{path}", self.base))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body),
        )
        .await
    }

    /// Whether this browser holds a session cookie.
    pub fn signed_in(&self) -> bool {
        self.cookies.lock().unwrap().contains_key("picket_me")
    }

    /// The value of this browser's cookie `name`, if it holds one.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.cookies.lock().unwrap().get(name).cloned()
    }

    /// Put `value` in this browser's cookie `name` (a cookie copied from another device).
    pub fn set_cookie(&self, name: &str, value: &str) {
        self.cookies
            .lock()
            .unwrap()
            .insert(name.to_string(), value.to_string());
    }

    /// Join the bundled campaign as `name` with a sandbox account; the magic link shown.
    pub async fn join_as(&self, name: &str, extra: &[(&str, &str)]) -> String {
        let mut fields = vec![("tz", "UTC"), ("name", name)];
        fields.extend_from_slice(extra);
        let step2 = self.join_with_sandbox(BUNDLED, &fields).await;
        let joined = self.confirm(BUNDLED, &step2).await;
        assert_eq!(joined.status, StatusCode::OK, "{}", joined.html);
        joined.magic_path(&self.base)
    }

    /// The name `/me` greets this browser with, or `None` when it is not signed in.
    pub async fn me(&self) -> Option<String> {
        let me = self.get("/me").await;
        (me.status == StatusCode::OK).then(|| {
            me.html
                .split("<h1>")
                .nth(1)
                .unwrap()
                .split("</h1>")
                .next()
                .unwrap()
                .to_string()
        })
    }

    /// Step 1 of joining `campaign` with the join form's CSRF token and `fields`; returns
    /// the accounts page (step 2), signed in and with no account yet.
    pub async fn start_joining(&self, campaign: &str, fields: &[(&str, &str)]) -> Page {
        let form = self.get(&format!("/c/{campaign}/join")).await;
        let csrf = form.field("csrf");
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend_from_slice(fields);
        let step1 = self.post(&format!("/c/{campaign}/join"), &all).await;
        assert_eq!(step1.status, StatusCode::SEE_OTHER, "{}", step1.html);
        let step2 = self.get(step1.location.as_deref().unwrap()).await;
        assert_eq!(step2.status, StatusCode::OK, "{}", step2.html);
        step2
    }

    /// Step 1 and a sandbox account; returns the accounts page (step 2).
    pub async fn join_with_sandbox(&self, campaign: &str, extra: &[(&str, &str)]) -> Page {
        let form = self.get(&format!("/c/{campaign}/join")).await;
        assert_eq!(form.status, StatusCode::OK, "{}", form.html);
        let csrf = form.field("csrf");
        let mut fields = vec![("csrf", csrf.as_str())];
        if !extra.iter().any(|(k, _)| *k == "name") {
            fields.push(("name", "Zoë <b>Q</b>"));
        }
        fields.extend_from_slice(extra);
        // Unless told otherwise, send the days the form has ticked, as a browser does.
        let ticked: Vec<String> = form
            .html
            .split("name=\"day\" value=\"")
            .skip(1)
            .map(|p| p.split('"').next().unwrap().to_string())
            .collect();
        if !extra.iter().any(|(k, _)| *k == "day") {
            fields.extend(ticked.iter().map(|d| ("day", d.as_str())));
        }
        let step1 = self.post(&format!("/c/{campaign}/join"), &fields).await;
        assert_eq!(step1.status, StatusCode::SEE_OTHER, "{}", step1.html);
        assert!(self.signed_in());
        let accounts_url = step1.location.unwrap();
        let step2 = self.get(&accounts_url).await;
        assert_eq!(step2.status, StatusCode::OK, "{}", step2.html);
        let connected = self
            .post(
                "/connect/sandbox",
                &[
                    ("csrf", &step2.field("csrf")),
                    ("back", &step2.field("back")),
                    ("name", "zoe-sandbox"),
                ],
            )
            .await;
        assert_eq!(connected.status, StatusCode::SEE_OTHER);
        let back = connected.location.unwrap();
        assert!(back.starts_with(&accounts_url), "{back}");
        let page = self.get(&back).await;
        assert!(
            page.html.contains("Connected your Sandbox account"),
            "{}",
            page.html
        );
        page
    }

    /// Confirm step 2 with every account shown.
    pub async fn confirm(&self, campaign: &str, step2: &Page) -> Page {
        let mut form: Vec<(&str, String)> = vec![
            ("csrf", step2.field("csrf")),
            ("tz", step2.field("tz")),
            ("every", step2.field("every")),
        ];
        for piece in step2.html.split("name=\"day\" value=\"").skip(1) {
            form.push(("day", piece.split('"').next().unwrap().to_string()));
        }
        for piece in step2.html.split("name=\"account\" value=\"").skip(1) {
            form.push(("account", piece.split('"').next().unwrap().to_string()));
        }
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        self.post(&format!("/c/{campaign}/join/confirm"), &form)
            .await
    }
}
