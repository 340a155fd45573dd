//! The dashboard (`/dashboard`) in a real headless Chromium, driven over WebDriver
//! (chromedriver, by fantoccini): sign in, open every view on a seeded store, and check that
//! the figures the page shows are the API's for the same query; keyboard navigation, a
//! phone-sized screen, and a member token's single view. Screenshots of every view are saved
//! under `target/dashboard-screenshots/` (the README shows two of them).
//!
//! Runs when `LOYALTY_TEST_CHROMEDRIVER` names a chromedriver (`make unit` installs Debian's
//! `chromium` and `chromium-driver` with `tests/dashboard/browser.sh` and sets it); without
//! it the test says it is skipped. With it set, a browser that does not start is a failure.
mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{Days, Utc};
use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use reqwest::StatusCode;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use support::{ADMIN, ANALYST, AUDITOR, ISSUER, SUPPORT, TestServer};

/// The browser Debian installs (`chromium`), which chromedriver drives.
const CHROMIUM: &str = "/usr/bin/chromium";

/// Where the screenshots go: the workspace's `target/`.
fn screenshots_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/dashboard-screenshots")
}

/// A chromedriver process on a free loopback port, killed when dropped.
struct Driver {
    child: Child,
    url: String,
    // Dropped after the process: the browser's profile lives in it.
    profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    async fn start(chromedriver: &Path) -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{} does not start: {e}", chromedriver.display()));
        let driver = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            profile: tempfile::tempdir().expect("a profile directory"),
        };
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let ready = http
                .get(format!("{}/status", driver.url))
                .send()
                .await
                .ok()
                .filter(|r| r.status().is_success());
            if let Some(response) = ready {
                let status: Value = response.json().await.unwrap_or_default();
                if status["value"]["ready"] == true {
                    return driver;
                }
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not answer /status within 15 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A new browser session: headless, on a fresh profile, without the background traffic
    /// Chromium would otherwise send to the (closed) network.
    async fn browser(&self) -> Client {
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1280,900",
            "--lang=en-US",
        ]
        .map(str::to_owned)
        .into_iter()
        .chain([format!("--user-data-dir={}", self.profile.path().display())])
        .collect::<Vec<_>>();
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
        });
        let serde_json::Value::Object(capabilities) = capabilities else {
            unreachable!("an object")
        };
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .expect("chromium starts under chromedriver")
    }
}

/// A figure as the page shows it ("€1,234.50", "12%", "1,204"), as a decimal: what is left of
/// the text's digits, point and minus sign. The page runs in en-US (`--lang`).
fn shown(text: &str) -> Decimal {
    let kept: String = text
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == '.' || *c == '-')
        .collect();
    kept.parse()
        .unwrap_or_else(|_| panic!("{text:?} shows no number"))
}

/// A decimal string or integer of the API, as a decimal.
fn api(value: &Value) -> Decimal {
    match value {
        Value::String(s) => s.parse().unwrap_or_else(|_| panic!("{s:?}")),
        Value::Number(n) => n.to_string().parse().unwrap(),
        other => panic!("{other} is not a number"),
    }
}

/// A share as the page shows it: a percentage to at most 2 decimals (rounded half away from
/// zero, as Intl.NumberFormat does).
fn percent(value: &Value) -> Decimal {
    (api(value) * Decimal::ONE_HUNDRED)
        .round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero)
        .normalize()
}

/// Runs `script` in the page and answers its value.
async fn js(client: &Client, script: &str) -> Value {
    client
        .execute(script, vec![])
        .await
        .unwrap_or_else(|e| panic!("{script}: {e}"))
}

/// Opens a view by its nav link and waits until it has rendered.
async fn open(client: &Client, view: &str) {
    let link = client
        .find(Locator::Css(&format!("[data-testid=nav-{view}]")))
        .await
        .unwrap_or_else(|e| panic!("no link to {view}: {e}"));
    link.click().await.expect("the link is clicked");
    wait_ready(client, view).await;
}

async fn wait_ready(client: &Client, view: &str) {
    let selector = format!("[data-testid=view][data-view='{view}'][data-ready=true]");
    element(
        client,
        &selector,
        20,
        &format!("the view {view} did not render"),
    )
    .await;
}

/// Audits the view on screen for accessibility, then saves a screenshot of it.
async fn screenshot(client: &Client, name: &str) {
    accessible(client, name).await;
    let png = client.screenshot().await.expect("a screenshot");
    let dir = screenshots_dir();
    std::fs::create_dir_all(&dir).expect("the screenshots' directory");
    std::fs::write(dir.join(format!("{name}.png")), png).expect("the screenshot is written");
}

/// axe-core (Deque's accessibility engine, pinned by tests/dashboard/package-lock.json and
/// installed by tests/dashboard/browser.sh), as a script to run in the page.
fn axe_source() -> &'static str {
    static AXE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    AXE.get_or_init(|| {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/dashboard/node_modules/axe-core/axe.min.js");
        std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (bash tests/dashboard/browser.sh installs it)",
                path.display()
            )
        })
    })
}

/// The page as shown passes axe-core's WCAG 2.1 A and AA rules (labels, names, contrast,
/// landmarks, ARIA): no violation at all. WebDriver's scripts are not subject to the page's
/// Content-Security-Policy, so the checker is injected without loosening it.
async fn accessible(client: &Client, name: &str) {
    let loaded = js(client, "return typeof window.axe === 'object'").await;
    if loaded != true {
        client
            .execute(&format!("{}\nreturn null;", axe_source()), vec![])
            .await
            .expect("axe-core loads in the page");
    }
    let violations = client
        .execute_async(
            "const done = arguments[arguments.length - 1];
             axe.run(document, { runOnly: { type: 'tag',
                 values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } })
               .then(r => done(r.violations.map(v => `${v.id} (${v.impact}): ${v.help}: `
                   + v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(', '))))
               .catch(e => done([`axe failed: ${e}`]));",
            vec![],
        )
        .await
        .expect("axe-core runs");
    assert_eq!(
        violations,
        json!([]),
        "{name}: accessibility violations (axe-core, WCAG 2.1 AA)"
    );
}

/// The rows of `selector`, each as the `data-*` of the row and the text and `data-value` of
/// every cell with a test id.
async fn rows(client: &Client, selector: &str) -> Vec<Value> {
    let script = format!(
        "return [...document.querySelectorAll({selector:?})].map(r => ({{
            data: {{...r.dataset}},
            cells: Object.fromEntries([...r.querySelectorAll('[data-testid]')].map(c =>
                [c.dataset.testid, {{text: c.textContent, value: c.dataset.value ?? null,
                                     data: {{...c.dataset}}}}]))
        }}))"
    );
    js(client, &script)
        .await
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Text and `data-value` of every element with the test id, in page order.
async fn cells(client: &Client, testid: &str) -> Vec<Value> {
    let script = format!(
        "return [...document.querySelectorAll('[data-testid={testid}]')].map(c =>
            ({{text: c.textContent, value: c.dataset.value ?? null, data: {{...c.dataset}}}}))"
    );
    js(client, &script)
        .await
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The element `css` selects, once it appears within `seconds` (`what` names it in the
/// failure).
async fn element(
    client: &Client,
    css: &str,
    seconds: u64,
    what: &str,
) -> fantoccini::elements::Element {
    client
        .wait()
        .at_most(Duration::from_secs(seconds))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// Clicks the element `css` selects (`what` names it in the failure).
async fn click(client: &Client, css: &str, what: &str) {
    client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("{what} is not clicked: {e}"));
}

async fn sign_in(client: &Client, base: &str, credential: &str) {
    client
        .goto(&format!("{base}/dashboard"))
        .await
        .expect("the page opens");
    let field = client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Id("credential"))
        .await
        .expect("the sign-in field");
    field.clear().await.expect("cleared");
    field.send_keys(credential).await.expect("typed");
    click(client, "[data-testid=sign-in]", "the sign-in button").await;
    element(
        client,
        "[data-testid=view][data-ready=true]",
        20,
        "a view after signing in",
    )
    .await;
}

async fn nav_views(client: &Client) -> Vec<String> {
    let views = js(
        client,
        "return [...document.querySelectorAll('#nav-list a')].map(a => a.getAttribute('href').slice(1))",
    )
    .await;
    serde_json::from_value(views).expect("a list of views")
}

// ------------------------------------------------------------------ the seeded store

/// How far back the seeded history starts.
const HISTORY_DAYS: u64 = 400;

/// 36 members over the last 400 days, posted live while the server's clock moves forward five
/// days at a time (the as-of reports replay what was recorded by each instant, so history has
/// to be recorded then): some big spenders (tiers), a third who stopped buying after five
/// months (at risk), redemptions, the scheduler's monthly expiries; then, at the machine's
/// time, an enrolment, a purchase, a redemption and goodwill.
async fn seed(server: &TestServer) -> String {
    let mut purchases = 0;
    for d in (0..HISTORY_DAYS).step_by(5) {
        for i in 0..36u64 {
            let member = format!("hist-{i:03}");
            let enrolled = i * 10;
            if d == enrolled {
                let answer = server.enroll(&member).await;
                assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
            }
            let gap = 10 + (i % 4) * 5;
            let stopped = i % 3 == 0 && d > enrolled + 150;
            if d > enrolled && (d - enrolled) % gap == 0 && !stopped {
                let whole = 8 + (i * 7 + d * 3) % 30;
                let whole = if i % 6 == 1 { whole * 5 } else { whole };
                let amount = format!("{whole}.{:02}", (i * 13 + d * 7) % 100);
                let answer = server
                    .purchase(&member, &format!("hist-{i}-{d}"), &amount)
                    .await;
                assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
                purchases += 1;
            }
            if i % 4 == 2 && d > enrolled + 40 && d % 50 == 0 {
                // Spent when the points allow it; refused (409) otherwise.
                let _ = server
                    .redeem_points(&member, &format!("hist-{i}-r{d}"), 60)
                    .await;
            }
        }
        if d % 30 == 0 {
            let swept = server.run_scheduler().await;
            assert_eq!(swept.status, StatusCode::OK, "{:?}", swept.body);
        }
        server.advance(chrono::Duration::days(5));
    }
    assert!(purchases > 200, "{purchases} purchases");
    // The machine's time again: what the browser sends is within the server's window.
    let behind = Utc::now() - server.now();
    if behind > chrono::Duration::zero() {
        server.advance(behind);
    }
    let swept = server.run_scheduler().await;
    assert_eq!(swept.status, StatusCode::OK, "{:?}", swept.body);

    let now = server.now();
    let enrolled = server.enroll("alice").await;
    assert_eq!(enrolled.status, StatusCode::OK, "{:?}", enrolled.body);
    let bought = server.purchase("alice", "dash-0001", "42.00").await;
    assert_eq!(bought.status, StatusCode::OK, "{:?}", bought.body);
    let redeemed = server.redeem_points("alice", "alice-r1", 40).await;
    assert_eq!(redeemed.status, StatusCode::OK, "{:?}", redeemed.body);
    let goodwill = server
        .post(
            SUPPORT,
            "/v1/members/alice/goodwill",
            &json!({"complaint_id": "c-1", "points": 25, "reason_code": "late-order",
                    "note": "the order came late", "occurred_at": now}),
        )
        .await;
    assert_eq!(goodwill.status, StatusCode::OK, "{:?}", goodwill.body);
    let position = goodwill.position();
    let caught_up = server
        .get(AUDITOR, &format!("/v1/totals?min_position={position}"))
        .await;
    assert_eq!(caught_up.status, StatusCode::OK, "{:?}", caught_up.body);
    position
}

// ------------------------------------------------------------------ the test

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_the_apis_figures_in_a_real_browser() {
    let Some(chromedriver) = std::env::var_os("LOYALTY_TEST_CHROMEDRIVER") else {
        println!(
            "skipped: set LOYALTY_TEST_CHROMEDRIVER to a chromedriver (bash tests/dashboard/browser.sh installs Debian's) to run the dashboard in a browser"
        );
        return;
    };
    let started = Instant::now();
    // Given a server on the machine's clock and a seeded store
    let server = TestServer::start_at(Utc::now() - Days::new(HISTORY_DAYS)).await;
    let position = seed(&server).await;
    let base = server.url("");
    let driver = Driver::start(Path::new(&chromedriver)).await;
    let client = driver.browser().await;

    // When an admin signs in, every view is offered, the first one shown
    sign_in(&client, &base, ADMIN).await;
    assert_eq!(
        nav_views(&client).await,
        [
            "liability",
            "flows",
            "tiers",
            "cohorts",
            "concentration",
            "at-risk",
            "member",
            "log"
        ]
    );
    let who = js(
        &client,
        "return document.querySelector('[data-testid=who]').textContent",
    )
    .await;
    assert_eq!(who, "Signed in with a key of role admin");
    // The program's timezone and currency were read: no fallback note
    let note = js(
        &client,
        "return document.getElementById('locale-note').textContent",
    )
    .await;
    assert_eq!(note, "");
    // The credential is in session storage only
    let stored = js(
        &client,
        "return [sessionStorage.length, localStorage.length, document.cookie]",
    )
    .await;
    assert_eq!(stored, json!([1, 0, ""]));

    // And the keyboard reaches the nav: Tab from the top of the page lands on its links
    js(
        &client,
        "document.activeElement.blur(); window.scrollTo(0, 0); return null",
    )
    .await;
    let mut in_nav = false;
    for _ in 0..4 {
        let tab = KeyActions::new("keyboard".into())
            .then(KeyAction::Down {
                value: Key::Tab.into(),
            })
            .then(KeyAction::Up {
                value: Key::Tab.into(),
            });
        client.perform_actions(tab).await.expect("Tab is pressed");
        let focused = js(
            &client,
            "const a = document.activeElement; return a.closest('nav') ? a.getAttribute('href') : null",
        )
        .await;
        if focused == json!("#liability") {
            in_nav = true;
            break;
        }
    }
    assert!(in_nav, "Tab never reached the nav's first link");

    check_liability(&client, &server).await;
    check_flows(&client, &server).await;
    check_tiers(&client, &server).await;
    check_cohorts(&client, &server).await;
    check_concentration(&client, &server).await;
    check_at_risk(&client, &server).await;
    check_member(&client, &server, &position).await;
    check_log(&client, &server).await;

    // On a phone-sized screen no view overflows the page sideways
    client
        .set_window_size(375, 812)
        .await
        .expect("a phone-sized window");
    for view in [
        "liability",
        "flows",
        "tiers",
        "cohorts",
        "concentration",
        "at-risk",
        "member",
        "log",
    ] {
        client
            .goto(&format!("{base}/dashboard#{view}"))
            .await
            .expect("the view opens");
        wait_ready(&client, view).await;
        let fits = js(
            &client,
            "return [document.documentElement.scrollWidth, window.innerWidth]",
        )
        .await;
        assert!(
            fits[0].as_u64() <= fits[1].as_u64(),
            "{view} overflows a {} px wide screen: {}",
            fits[1],
            fits[0]
        );
        if view == "member" {
            screenshot(&client, "phone-member").await;
        }
    }
    client
        .set_window_size(1280, 900)
        .await
        .expect("the window back");

    // An analyst is offered the analytics only, with the program's timezone and currency too
    // (the public document states them)
    click(&client, "[data-testid=sign-out]", "the sign-out button").await;
    let left = js(&client, "return sessionStorage.length").await;
    assert_eq!(left, 0, "sign-out clears session storage");
    sign_in(&client, &base, ANALYST).await;
    assert_eq!(
        nav_views(&client).await,
        ["tiers", "cohorts", "concentration", "at-risk"]
    );
    let note = js(
        &client,
        "return document.getElementById('locale-note').textContent",
    )
    .await;
    assert_eq!(note, "");
    js(&client, "location.hash = 'at-risk'; return null").await;
    wait_ready(&client, "at-risk").await;
    let buttons = js(
        &client,
        "const b = [...document.querySelectorAll('[data-testid=winback]')];
         return [b.length, b.filter(x => x.disabled).length]",
    )
    .await;
    let offered = buttons[0].as_u64().unwrap();
    assert!(offered > 0, "the analyst sees the at-risk members' buttons");
    assert_eq!(buttons[1], offered, "an analyst cannot grant goodwill");

    // And a member token opens only its own member's page, with the balance the API gives
    click(&client, "[data-testid=sign-out]", "the sign-out button").await;
    let token = server
        .post(ISSUER, "/v1/tokens", &json!({"member_id": "alice"}))
        .await;
    assert_eq!(token.status, StatusCode::OK, "{:?}", token.body);
    let token = token.body["token"].as_str().expect("a token").to_owned();
    sign_in(&client, &base, &token).await;
    assert_eq!(nav_views(&client).await, ["member"]);
    wait_ready(&client, "member").await;
    let profile = server.get(&token, "/v1/members/alice").await;
    assert_eq!(profile.status, StatusCode::OK);
    let balance = cells(&client, "member-balance").await;
    assert_eq!(
        shown(balance[0]["text"].as_str().unwrap()),
        api(&profile.body["balance"]["balance"])
    );
    let available = cells(&client, "member-available").await;
    assert_eq!(
        shown(available[0]["text"].as_str().unwrap()),
        api(&profile.body["balance"]["available"])
    );
    // The statement is the member's own; the as-of replay is for auditors and support
    assert!(!cells(&client, "statement-points").await.is_empty());
    let form = js(
        &client,
        "return document.querySelector('[data-testid=as-of-form]')",
    )
    .await;
    assert_eq!(form, Value::Null);
    screenshot(&client, "member-token").await;

    client.close().await.expect("the browser closes");
    drop(driver);
    println!("the dashboard's browser test took {:?}", started.elapsed());
}

async fn check_liability(client: &Client, server: &TestServer) {
    open(client, "liability").await;
    screenshot(client, "liability").await;
    let rows = rows(client, "[data-testid=liability-row]").await;
    assert!(rows.len() >= 13, "{} rows", rows.len());
    for row in &rows {
        let at = row["data"]["asOf"].as_str().expect("the row's instant");
        let report = server
            .get(AUDITOR, &format!("/v1/liability?as_of={at}"))
            .await;
        assert_eq!(report.status, StatusCode::OK, "{:?}", report.body);
        let b = &report.body;
        let c = &row["cells"];
        let text = |name: &str| shown(c[name]["text"].as_str().unwrap());
        assert_eq!(
            text("liability-points"),
            api(&b["totals"]["points_outstanding"]),
            "{at}"
        );
        assert_eq!(
            text("liability-value"),
            api(&b["totals"]["liability"]),
            "{at}"
        );
        assert_eq!(
            text("liability-breakage"),
            api(&b["breakage"]["expected_value"]),
            "{at}"
        );
        assert_eq!(
            text("liability-net"),
            api(&b["liability_net_of_breakage"]),
            "{at}"
        );
        assert_eq!(
            text("liability-rate"),
            percent(&b["breakage"]["rate"]),
            "{at}"
        );
        assert!(c["liability-value"]["text"].as_str().unwrap().contains('€'));
    }
    // The store has a history: the oldest months and now differ
    let last = &rows[rows.len() - 1]["cells"]["liability-points"]["text"];
    assert_ne!(shown(last.as_str().unwrap()), Decimal::ZERO);
}

async fn check_flows(client: &Client, server: &TestServer) {
    open(client, "flows").await;
    screenshot(client, "flows").await;
    let rows = rows(client, "[data-testid=flows-row]").await;
    assert!(rows.len() >= 12, "{} rows", rows.len());
    let mut issued = Decimal::ZERO;
    let mut expired = Decimal::ZERO;
    for row in &rows {
        let totals = async |at: &str| {
            let report = server
                .get(AUDITOR, &format!("/v1/liability?as_of={at}"))
                .await;
            assert_eq!(report.status, StatusCode::OK, "{:?}", report.body);
            report.body["totals"].clone()
        };
        let from = totals(row["data"]["from"].as_str().unwrap()).await;
        let to = totals(row["data"]["to"].as_str().unwrap()).await;
        let delta = |field: &str| api(&to[field]) - api(&from[field]);
        let c = &row["cells"];
        let text = |name: &str| shown(c[name]["text"].as_str().unwrap());
        assert_eq!(text("flows-issued"), delta("lifetime_earned"));
        assert_eq!(text("flows-redeemed"), delta("redeemed"));
        assert_eq!(text("flows-expired"), delta("breakage_points"));
        issued += text("flows-issued");
        expired += text("flows-expired");
    }
    assert!(issued > Decimal::ZERO && expired > Decimal::ZERO);
}

async fn check_tiers(client: &Client, server: &TestServer) {
    open(client, "tiers").await;
    screenshot(client, "tiers").await;
    let report = server.get(AUDITOR, "/v1/analytics/tiers?months=12").await;
    assert_eq!(report.status, StatusCode::OK, "{:?}", report.body);
    let counts = cells(client, "tier-count").await;
    let tiers = report.body["tiers"].as_array().unwrap();
    assert_eq!(counts.len(), tiers.len());
    for (cell, tier) in counts.iter().zip(tiers) {
        assert_eq!(cell["data"]["tier"], tier["name"]);
        assert_eq!(shown(cell["text"].as_str().unwrap()), api(&tier["members"]));
    }
    // More than one tier is held: the seed has big spenders
    assert!(
        tiers.iter().filter(|t| t["members"] != 0).count() > 1,
        "{tiers:?}"
    );
    let reached = cells(client, "tier-reached").await;
    let expected: Vec<(Value, Value, Decimal)> = report.body["months"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|m| {
            m["reached"].as_array().unwrap().iter().map(|t| {
                (
                    m["period"]["start"].clone(),
                    t["name"].clone(),
                    api(&t["members"]),
                )
            })
        })
        .collect();
    assert_eq!(reached.len(), expected.len());
    for (cell, (month, tier, members)) in reached.iter().zip(&expected) {
        assert_eq!(&cell["data"]["month"], month);
        assert_eq!(&cell["data"]["tier"], tier);
        assert_eq!(shown(cell["text"].as_str().unwrap()), *members);
    }
}

async fn check_cohorts(client: &Client, server: &TestServer) {
    open(client, "cohorts").await;
    screenshot(client, "cohorts").await;
    let report = server.get(ANALYST, "/v1/analytics/cohorts").await;
    assert_eq!(report.status, StatusCode::OK, "{:?}", report.body);
    let shown_rates = cells(client, "cohort-rate").await;
    let expected: Vec<(Value, Value)> = report.body["cohorts"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| {
            c["rates"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| (c["cohort"]["start"].clone(), r.clone()))
        })
        .collect();
    assert!(!expected.is_empty(), "the seed has cohorts");
    assert_eq!(shown_rates.len(), expected.len());
    for (cell, (cohort, rate)) in shown_rates.iter().zip(&expected) {
        assert_eq!(&cell["data"]["cohort"], cohort);
        assert_eq!(&cell["value"], rate);
        assert_eq!(shown(cell["text"].as_str().unwrap()), percent(rate));
        // Readable without colour: the number is in the cell, the shade is a class
        assert!(cell["text"].as_str().unwrap().ends_with('%'));
    }
    let members = cells(client, "cohort-members").await;
    for (cell, cohort) in members
        .iter()
        .zip(report.body["cohorts"].as_array().unwrap())
    {
        assert_eq!(
            shown(cell["text"].as_str().unwrap()),
            api(&cohort["members"])
        );
    }
}

async fn check_concentration(client: &Client, server: &TestServer) {
    open(client, "concentration").await;
    screenshot(client, "concentration").await;
    let report = server.get(ANALYST, "/v1/analytics/concentration").await;
    assert_eq!(report.status, StatusCode::OK, "{:?}", report.body);
    let b = &report.body;
    let one = async |testid: &str| {
        let cell = cells(client, testid).await;
        assert_eq!(cell.len(), 1, "{testid}");
        shown(cell[0]["text"].as_str().unwrap())
    };
    assert_eq!(one("top20-share").await, percent(&b["top_20"]["share"]));
    assert_eq!(one("top20-spend").await, api(&b["top_20"]["spend"]));
    assert_eq!(one("top20-members").await, api(&b["top_20"]["members"]));
    assert_eq!(one("net-spend").await, api(&b["net_spend"]));
    let curve = rows(client, "[data-testid=concentration-row]").await;
    let points = b["curve"].as_array().unwrap();
    assert_eq!(curve.len(), points.len());
    for (row, point) in curve.iter().zip(points) {
        let text = |name: &str| shown(row["cells"][name]["text"].as_str().unwrap());
        assert_eq!(text("concentration-spend"), api(&point["spend"]));
        assert_eq!(text("concentration-share"), percent(&point["share"]));
        assert_eq!(text("concentration-members"), api(&point["members"]));
    }
}

async fn check_at_risk(client: &Client, server: &TestServer) {
    open(client, "at-risk").await;
    screenshot(client, "at-risk").await;
    let report = server.get(ANALYST, "/v1/analytics/at-risk?limit=20").await;
    assert_eq!(report.status, StatusCode::OK, "{:?}", report.body);
    let members = report.body["members"].as_array().unwrap();
    assert!(!members.is_empty(), "the seed has members at risk");
    let rows = rows(client, "[data-testid=atrisk-row]").await;
    assert_eq!(rows.len(), members.len());
    for (row, member) in rows.iter().zip(members) {
        assert_eq!(row["data"]["member"], member["member_id"]);
        let text = |name: &str| shown(row["cells"][name]["text"].as_str().unwrap());
        assert_eq!(text("atrisk-value"), api(&member["value_at_risk"]));
        assert_eq!(text("atrisk-expected"), api(&member["expected_value"]));
        assert_eq!(row["cells"]["atrisk-palive"]["value"], member["p_alive"]);
    }
    // A win-back grants goodwill points to the first of them, through the support endpoint.
    // The browser sends its own clock's time: the server's is brought to it first, however
    // long the run took since seeding.
    let behind = Utc::now() - server.now();
    if behind > chrono::Duration::zero() {
        server.advance(behind);
    }
    let first = members[0]["member_id"].as_str().unwrap().to_owned();
    let before = server
        .get(AUDITOR, &format!("/v1/members/{first}"))
        .await
        .body["balance"]["balance"]
        .clone();
    let points = client
        .find(Locator::Id("winback-points"))
        .await
        .expect("the points field");
    points.clear().await.expect("cleared");
    points.send_keys("75").await.expect("typed");
    click(
        client,
        &format!("[data-testid=winback][data-member='{first}']"),
        "the member's win-back button",
    )
    .await;
    let selector = format!(
        "[data-testid=atrisk-row][data-member='{first}'] [data-testid=winback-result][data-position]"
    );
    let result = element(client, &selector, 10, "the grant's result").await;
    assert_eq!(result.text().await.unwrap(), "Granted 75 points");
    let position = result.attr("data-position").await.unwrap().unwrap();
    let after = server
        .get(
            AUDITOR,
            &format!("/v1/members/{first}?min_position={position}"),
        )
        .await;
    assert_eq!(
        api(&after.body["balance"]["balance"]),
        api(&before) + Decimal::from(75)
    );
}

async fn check_member(client: &Client, server: &TestServer, position: &str) {
    client
        .execute("location.hash = 'member/alice'; return null", vec![])
        .await
        .expect("the member's page");
    wait_ready(client, "member").await;
    screenshot(client, "member").await;
    let profile = server
        .get(
            AUDITOR,
            &format!("/v1/members/alice?min_position={position}"),
        )
        .await;
    assert_eq!(profile.status, StatusCode::OK, "{:?}", profile.body);
    let b = &profile.body["balance"];
    for (testid, field) in [
        ("member-available", "available"),
        ("member-pending", "pending"),
        ("member-balance", "balance"),
        ("member-lifetime", "lifetime_earned"),
        ("member-redeemed", "redeemed"),
    ] {
        let cell = cells(client, testid).await;
        assert_eq!(
            shown(cell[0]["text"].as_str().unwrap()),
            api(&b[field]),
            "{testid}"
        );
    }
    let tier = cells(client, "member-tier").await;
    assert_eq!(tier[0]["text"], profile.body["tier"]["current"]["name"]);
    // The lots: the welcome points, the purchase's and the goodwill's; the redemption drew
    // from the welcome lot
    let lots = rows(client, "[data-testid=lot-row]").await;
    assert_eq!(lots.len(), 3, "{lots:?}");
    let drawn: Vec<&str> = lots
        .iter()
        .filter_map(|l| l["cells"]["lot-draws"]["value"].as_str())
        .filter(|d| !d.is_empty())
        .collect();
    assert_eq!(drawn.len(), 1, "{lots:?}");
    assert!(drawn[0].contains("alice-r1:40"), "{drawn:?}");
    let left: Decimal = lots
        .iter()
        .map(|l| shown(l["cells"]["lot-left"]["text"].as_str().unwrap()))
        .sum();
    assert_eq!(left, api(&b["available"]) + api(&b["pending"]));
    // The statement: every line of the member's history
    let history = server
        .get(AUDITOR, "/v1/members/alice/history?limit=100")
        .await;
    let lines = history.body["lines"].as_array().unwrap();
    let statement = cells(client, "statement-points").await;
    assert_eq!(statement.len(), lines.len());
    // As of today: the replay agrees with the page
    click(
        client,
        "[data-testid=as-of-form] button",
        "the as-of button",
    )
    .await;
    let out = element(
        client,
        "[data-testid=as-of-result][data-as-of] dl",
        10,
        "the as-of balance",
    )
    .await;
    let at = client
        .find(Locator::Css("[data-testid=as-of-result]"))
        .await
        .unwrap()
        .attr("data-as-of")
        .await
        .unwrap()
        .unwrap();
    drop(out);
    let replay = server
        .get(AUDITOR, &format!("/v1/members/alice/as-of?as_of={at}"))
        .await;
    assert_eq!(replay.status, StatusCode::OK, "{:?}", replay.body);
    for (testid, field) in [("asof-available", "available"), ("asof-balance", "balance")] {
        let cell = cells(client, testid).await;
        assert_eq!(
            shown(cell[0]["text"].as_str().unwrap()),
            api(&replay.body["balance"][field]),
            "{testid}"
        );
    }
}

async fn check_log(client: &Client, server: &TestServer) {
    open(client, "log").await;
    screenshot(client, "log").await;
    let page = server.get(AUDITOR, "/v1/log?limit=20").await;
    let expected: Vec<Value> = page.body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| json!([e["position"], e["event_type"]]))
        .collect();
    let shown_rows = rows(client, "[data-testid=log-row]").await;
    let shown_rows: Vec<Value> = shown_rows
        .iter()
        .map(|r| json!([r["data"]["position"], r["data"]["type"]]))
        .collect();
    assert_eq!(shown_rows, expected);
    // The next page continues where this one ended
    click(client, "[data-testid=log-next]", "[data-testid=log-next]").await;
    element(
        client,
        "[data-testid=log-results][data-page='2']",
        10,
        "the second page",
    )
    .await;
    let last = expected.last().unwrap()[0].as_str().unwrap().to_owned();
    let next = server
        .get(AUDITOR, &format!("/v1/log?limit=20&after={last}"))
        .await;
    let second: Vec<Value> = rows(client, "[data-testid=log-row]")
        .await
        .iter()
        .map(|r| r["data"]["position"].clone())
        .collect();
    let expected: Vec<Value> = next.body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["position"].clone())
        .collect();
    assert_eq!(second, expected);
    // Filtered by type: every goodwill grant of the log, and nothing else
    client
        .find(Locator::Id("log-type"))
        .await
        .unwrap()
        .select_by_value("GoodwillGranted")
        .await
        .unwrap();
    click(
        client,
        "[data-testid=log-filters] button[type=submit]",
        "[data-testid=log-filters] button[type=submit]",
    )
    .await;
    element(client, "[data-testid=view][data-view='log'][data-ready=true] [data-testid=log-results][data-page='1']", 20, "the filtered page").await;
    let types: Vec<Value> = rows(client, "[data-testid=log-row]")
        .await
        .iter()
        .map(|r| r["data"]["type"].clone())
        .collect();
    // alice's goodwill and the win-back's grant
    assert_eq!(types, [json!("GoodwillGranted"), json!("GoodwillGranted")]);
}
