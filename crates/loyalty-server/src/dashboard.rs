//! The dashboard: one web page at `/dashboard` that reads the API with the caller's own key or
//! member token (liability, totals, tiers, the analytics, a member's lots and statement, the
//! log).
//!
//! Its files are embedded in the binary (`include_str!`): nothing is fetched at run time, no
//! CDN, no build step. The page and its assets are public (they hold no data); every figure
//! comes from `/v1` calls the page makes with the credential the user typed, so the API's
//! roles decide what it shows. They are not JSON API operations, so they are routed beside
//! [`crate::routes::api`], not in it, and the OpenAPI document does not list them.
//!
//! Every answer carries a strict Content-Security-Policy (scripts, styles and connections to
//! this origin only, no inline script or style, no framing) and `X-Content-Type-Options:
//! nosniff`, and is revalidated by its ETag (`Cache-Control: no-cache`: the files are not
//! content-hashed, so a new release must not be hidden behind a cached copy).
use std::sync::OnceLock;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};

use crate::error::ApiError;

/// The policy of every dashboard answer. Chart.js sets its canvas's size through the CSSOM
/// (element.style), which `style-src 'self'` allows; inline `<style>` and `style=""` it forbids.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; \
     base-uri 'none'; form-action 'self'";

/// Where the page is served.
pub const PAGE_PATH: &str = "/dashboard";

/// Where its assets are served: `/dashboard/assets/{file}`.
pub const ASSETS_PREFIX: &str = "/dashboard/assets/";

const INDEX: &str = include_str!("../dashboard/index.html");

/// The assets, by file name: content type and body. Only these are served.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../dashboard/app.js"),
    ),
    (
        "api.js",
        "text/javascript; charset=utf-8",
        include_str!("../dashboard/api.js"),
    ),
    (
        "views.js",
        "text/javascript; charset=utf-8",
        include_str!("../dashboard/views.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("../dashboard/style.css"),
    ),
    (
        "chart.umd.js",
        "text/javascript; charset=utf-8",
        include_str!("../dashboard/vendor/chart.umd.js"),
    ),
    (
        "LICENSE.chartjs",
        "text/plain; charset=utf-8",
        include_str!("../dashboard/vendor/LICENSE.chartjs"),
    ),
];

/// The dashboard's routes, to merge beside the API's (they take no state and no key).
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(PAGE_PATH, get(page))
        .route("/dashboard/", get(page))
        .route("/dashboard/assets/{file}", get(asset))
}

async fn page(headers: HeaderMap) -> Response {
    serve(
        &headers,
        INDEX,
        "text/html; charset=utf-8",
        etags().0.as_str(),
    )
}

async fn asset(headers: HeaderMap, Path(file): Path<String>) -> Response {
    match ASSETS.iter().position(|(name, _, _)| *name == file) {
        Some(i) => {
            let (_, content_type, body) = ASSETS[i];
            serve(&headers, body, content_type, etags().1[i].as_str())
        }
        None => {
            let mut response = ApiError::from_status(StatusCode::NOT_FOUND).into_response();
            secure(response.headers_mut());
            response
        }
    }
}

/// The ETags of the page and of each asset, in [`ASSETS`] order: a hash of the embedded bytes,
/// computed once.
fn etags() -> &'static (String, Vec<String>) {
    static ETAGS: OnceLock<(String, Vec<String>)> = OnceLock::new();
    ETAGS.get_or_init(|| {
        let tag = |body: &str| {
            let digest = Sha256::digest(body.as_bytes());
            format!("\"{}\"", hex::encode(&digest[..16]))
        };
        (
            tag(INDEX),
            ASSETS.iter().map(|(_, _, body)| tag(body)).collect(),
        )
    })
}

fn serve(request: &HeaderMap, body: &'static str, content_type: &str, etag: &str) -> Response {
    let unchanged = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut response = if unchanged {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        body.into_response()
    };
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(content_type) {
        headers.insert(header::CONTENT_TYPE, v);
    }
    if let Ok(v) = HeaderValue::from_str(etag) {
        headers.insert(header::ETAG, v);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    secure(headers);
    response
}

fn secure(headers: &mut HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;

    async fn get(path: &str, headers: &[(&str, &str)]) -> (StatusCode, HeaderMap, String) {
        let mut request = Request::builder().uri(path);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = router::<()>()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            headers,
            String::from_utf8_lossy(&bytes).into_owned(),
        )
    }

    #[tokio::test]
    async fn the_page_is_served_without_a_key_with_a_strict_policy() {
        let (status, headers, body) = get("/dashboard", &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
        assert_eq!(
            headers[header::CONTENT_SECURITY_POLICY],
            CONTENT_SECURITY_POLICY
        );
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(headers[header::CACHE_CONTROL], "no-cache");
        assert!(body.contains("<html lang=\"en\">"));
        // Revalidation: the same ETag answers 304 without a body.
        let etag = headers[header::ETAG].to_str().unwrap().to_owned();
        let (status, headers, body) = get("/dashboard", &[("if-none-match", &etag)]).await;
        assert_eq!(status, StatusCode::NOT_MODIFIED);
        assert!(body.is_empty());
        assert_eq!(headers[header::ETAG], etag.as_str());
    }

    #[tokio::test]
    async fn every_asset_is_served_with_its_type_and_nothing_else_is() {
        for (name, content_type, body) in ASSETS {
            let (status, headers, served) = get(&format!("{ASSETS_PREFIX}{name}"), &[]).await;
            assert_eq!(status, StatusCode::OK, "{name}");
            assert_eq!(headers[header::CONTENT_TYPE], *content_type, "{name}");
            assert_eq!(
                headers[header::CONTENT_SECURITY_POLICY],
                CONTENT_SECURITY_POLICY
            );
            assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
            assert_eq!(served, *body, "{name}");
        }
        for path in [
            "/dashboard/assets/nothing.js",
            "/dashboard/assets/..%2Fsrc%2Flib.rs",
            "/dashboard/assets/index.html",
        ] {
            let (status, headers, _) = get(path, &[]).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
            assert_eq!(headers[header::CONTENT_TYPE], crate::error::PROBLEM_JSON);
        }
    }

    /// The policy forbids inline scripts and styles: the page must not need any, and every
    /// file it names must be one that is served.
    #[test]
    fn the_page_uses_no_inline_script_or_style_and_only_served_assets() {
        let lower = INDEX.to_ascii_lowercase();
        assert!(!lower.contains("<style"), "an inline <style>");
        assert!(!lower.contains(" style="), "a style attribute");
        for (i, _) in lower.match_indices(" on") {
            let name: String = lower[i + 1..]
                .chars()
                .take_while(char::is_ascii_lowercase)
                .collect();
            assert!(
                !lower[i + 1 + name.len()..].starts_with('='),
                "an inline event handler: {name}"
            );
        }
        for (i, _) in lower.match_indices("<script") {
            let tag = &lower[i..i + lower[i..].find('>').unwrap()];
            assert!(tag.contains(" src="), "an inline script: {tag}");
        }
        let mut named = 0;
        for (i, _) in INDEX.match_indices(ASSETS_PREFIX) {
            let rest = &INDEX[i + ASSETS_PREFIX.len()..];
            let name = &rest[..rest.find('"').unwrap()];
            assert!(
                ASSETS.iter().any(|(n, _, _)| *n == name),
                "{name} is not served"
            );
            named += 1;
        }
        assert!(named >= 3, "the page names {named} assets");
        // The modules import each other by relative path: each one imported is served.
        for (_, _, body) in ASSETS.iter().filter(|(n, _, _)| n.ends_with(".js")) {
            for (i, _) in body.match_indices(" from './") {
                let rest = &body[i + " from './".len()..];
                let name = &rest[..rest.find('\'').unwrap()];
                assert!(ASSETS.iter().any(|(n, _, _)| *n == name), "{name}");
            }
        }
    }

    /// The vendored Chart.js is the version package.json and package-lock.json pin (`make
    /// dashboard-vendor` checks it byte for byte against the package's own file).
    #[test]
    fn the_vendored_chart_js_is_the_pinned_version() {
        let lock: serde_json::Value =
            serde_json::from_str(include_str!("../dashboard/package-lock.json")).unwrap();
        let version = lock["packages"]["node_modules/chart.js"]["version"]
            .as_str()
            .expect("chart.js is locked");
        let manifest: serde_json::Value =
            serde_json::from_str(include_str!("../dashboard/package.json")).unwrap();
        assert_eq!(
            manifest["dependencies"]["chart.js"], version,
            "an exact pin"
        );
        let (_, _, vendored) = ASSETS
            .iter()
            .find(|(n, _, _)| *n == "chart.umd.js")
            .unwrap();
        assert!(
            vendored.starts_with(&format!("/*!\n * Chart.js v{version}\n")),
            "vendor/chart.umd.js is not Chart.js {version}"
        );
    }
}
