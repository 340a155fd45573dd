//! `loyalty demo`: enrolls members and posts a realistic stream of purchases, refunds and
//! redemptions to a running server over HTTP, as terminals and the member app would.
use anyhow::{Context, bail};
use chrono::{Duration, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::cli::DemoArgs;

/// What the stream looks like: a few categories, one of them earning nothing (gift cards).
const CATALOG: &[(&str, &str, i64)] = &[
    ("ESPRESSO", "coffee", 220),
    ("LATTE", "coffee", 420),
    ("CROISSANT", "pastry", 150),
    ("PAIN-CHOC", "pastry", 170),
    ("BEANS-ETHIOPIA-250G", "coffee-beans", 1_290),
    ("MUG-REUSABLE", "merchandise", 1_500),
    ("GIFT-CARD-25", "gift-card", 2_500),
];

/// A small deterministic generator (SplitMix64): the same seed posts the same stream.
struct Stream(u64);

impl Stream {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Cents as a money string ("12.90").
fn money(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

#[derive(Debug, Default)]
struct Tally {
    enrolled: u32,
    purchases: u32,
    refunds: u32,
    redemptions: u32,
    refused: u32,
}

/// Longest the demo waits in all for one request that is over the key's rate.
const MAX_RATE_WAIT_SECS: u64 = 60;

/// How many of the members' ids the summary lists.
const MEMBERS_SHOWN: usize = 5;

struct Client {
    http: reqwest::Client,
    url: String,
}

impl Client {
    async fn post(
        &self,
        key: &str,
        path: &str,
        body: &Value,
    ) -> anyhow::Result<(StatusCode, Value)> {
        let mut waited = 0;
        let response = loop {
            let response = self
                .http
                .post(format!("{}{path}", self.url))
                .bearer_auth(key)
                .json(body)
                .send()
                .await
                .with_context(|| format!("POST {path}"))?;
            // Over the key's rate (`limits.rate_per_sec`): wait as told and send it again (the
            // request's id makes the retry safe).
            if response.status() != StatusCode::TOO_MANY_REQUESTS || waited >= MAX_RATE_WAIT_SECS {
                break response;
            }
            let seconds = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                .unwrap_or(1)
                .clamp(1, MAX_RATE_WAIT_SECS);
            waited += seconds;
            tokio::time::sleep(std::time::Duration::from_secs(seconds)).await;
        };
        let status = response.status();
        let body = response.json::<Value>().await.unwrap_or(Value::Null);
        if status.is_server_error() || status == StatusCode::UNAUTHORIZED {
            bail!("POST {path}: {status}: {body}");
        }
        Ok((status, body))
    }
}

pub async fn run(args: &DemoArgs) -> anyhow::Result<()> {
    let client = Client {
        http: reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()?,
        url: args.url.trim_end_matches('/').to_owned(),
    };
    let mut rng = Stream(args.seed);
    let mut tally = Tally::default();
    // A run id keeps the ids of two demo runs apart on the same server.
    let run = format!("{:x}", Utc::now().timestamp_millis());
    // The live endpoints accept business times up to seven days back (older history goes
    // through an import): the stream starts six days ago, and its purchases (and the refunds
    // two days after them) fit in the next four days.
    let now = Utc::now();
    let start = now - Duration::days(6);
    let step = Duration::minutes(7).min(Duration::days(4) / args.purchases.max(1) as i32);
    let members: Vec<String> = (0..args.members)
        .map(|i| format!("demo-{run}-{i}"))
        .collect();

    for (i, member) in members.iter().enumerate() {
        let referrer = (i > 0 && rng.below(5) == 0).then(|| members[i - 1].clone());
        let mut body = json!({"member_id": member, "occurred_at": start});
        if let Some(r) = referrer {
            body["referrer"] = json!(r);
        }
        let (status, answer) = client.post(&args.app_key, "/v1/members", &body).await?;
        if !status.is_success() {
            bail!("enrolling {member}: {status}: {answer}");
        }
        tally.enrolled += 1;
        // Installing the app earns points spendable at once (purchase points wait for the
        // 14-day return window), so members have something to redeem today.
        let body = json!({
            "member_id": member, "activity_id": format!("{member}-app"),
            "kind": "app_installed", "occurred_at": start,
        });
        let (status, answer) = client.post(&args.app_key, "/v1/activities", &body).await?;
        if !status.is_success() {
            bail!("app install of {member}: {status}: {answer}");
        }
    }

    let mut purchases: Vec<(String, i64)> = Vec::new();
    for n in 0..args.purchases {
        let member = &members[rng.below(members.len() as u64) as usize];
        let at = start + step * n as i32;
        let lines: Vec<Value> = (0..=rng.below(3))
            .map(|_| {
                let (sku, category, cents) = CATALOG[rng.below(CATALOG.len() as u64) as usize];
                json!({"sku": sku, "category": category, "quantity": "1", "amount": money(cents)})
            })
            .collect();
        let total: i64 = lines
            .iter()
            .filter_map(|l| l["amount"].as_str())
            .filter_map(|a| a.replace('.', "").parse::<i64>().ok())
            .sum();
        let transaction = format!("demo-{run}-t{n}");
        let body = json!({
            "member_id": member, "transaction_id": transaction, "store": args.store,
            "terminal": "demo-till-1", "occurred_at": at, "currency": args.currency, "lines": lines,
        });
        let (status, answer) = client
            .post(&args.terminal_key, "/v1/purchases", &body)
            .await?;
        if !status.is_success() {
            bail!("purchase {transaction}: {status}: {answer}");
        }
        tally.purchases += 1;
        purchases.push((transaction.clone(), total));

        // About one purchase in ten comes back, half of it or all of it.
        if rng.below(10) == 0 {
            let amount = if rng.below(2) == 0 { total } else { total / 2 };
            if amount > 0 {
                let body = json!({
                    "refund_id": format!("{transaction}-r"), "transaction_id": transaction,
                    "store": args.store, "occurred_at": at + Duration::days(2),
                    "currency": args.currency, "amount": money(amount),
                });
                let (status, _) = client
                    .post(&args.terminal_key, "/v1/refunds", &body)
                    .await?;
                if status.is_success() {
                    tally.refunds += 1;
                } else {
                    tally.refused += 1;
                }
            }
        }

        // Now and then a member spends some points today: the welcome and app points are
        // spendable, the purchases' are still pending; refusals (not enough yet) are normal.
        if rng.below(8) == 0 {
            let body = if rng.below(2) == 0 {
                json!({
                    "redemption_id": format!("demo-{run}-d{n}"), "occurred_at": now,
                    "reward_id": "free-espresso",
                })
            } else {
                json!({
                    "redemption_id": format!("demo-{run}-d{n}"), "occurred_at": now,
                    "points": 20 * (1 + rng.below(4) as i64),
                })
            };
            let path = format!("/v1/members/{member}/redemptions");
            let (status, _) = client.post(&args.app_key, &path, &body).await?;
            if status.is_success() {
                tally.redemptions += 1;
            } else {
                tally.refused += 1;
            }
        }
    }
    println!(
        "demo: {} members enrolled, {} purchases, {} refunds, {} redemptions ({} refused by the rules)",
        tally.enrolled, tally.purchases, tally.refunds, tally.redemptions, tally.refused
    );
    println!("{}", members_summary(&members, &client.url, &args.app_key));
    Ok(())
}

/// The members' ids (the first few), and a command that shows one of them.
fn members_summary(members: &[String], url: &str, app_key: &str) -> String {
    let shown = members.len().min(MEMBERS_SHOWN);
    let mut text = format!("members: {}", members[..shown].join(", "));
    if members.len() > shown {
        text.push_str(&format!(
            " and {} more (to {})",
            members.len() - shown,
            members[members.len() - 1]
        ));
    }
    if let Some(first) = members.first() {
        text.push_str(&format!(
            "\nlook at one: curl -s -H 'Authorization: Bearer {app_key}' {url}/v1/members/{first} | jq"
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_names_the_first_members_and_how_to_look_at_one() {
        let members: Vec<String> = (0..8).map(|i| format!("demo-r-{i}")).collect();
        let text = members_summary(&members, "http://127.0.0.1:8080", "demo-app-key");
        assert!(
            text.starts_with(
                "members: demo-r-0, demo-r-1, demo-r-2, demo-r-3, demo-r-4 and 3 more (to demo-r-7)\n"
            ),
            "{text}"
        );
        assert!(
            text.ends_with(
                "curl -s -H 'Authorization: Bearer demo-app-key' \
                 http://127.0.0.1:8080/v1/members/demo-r-0 | jq"
            ),
            "{text}"
        );
        let one = members_summary(&members[..1], "http://h", "k");
        assert!(one.starts_with("members: demo-r-0\n"), "{one}");
    }

    #[test]
    fn cents_are_written_as_a_money_string() {
        assert_eq!(money(1290), "12.90");
        assert_eq!(money(5), "0.05");
    }

    #[test]
    fn the_same_seed_gives_the_same_stream() {
        let a: Vec<u64> = {
            let mut s = Stream(7);
            (0..5).map(|_| s.next()).collect()
        };
        let b: Vec<u64> = {
            let mut s = Stream(7);
            (0..5).map(|_| s.next()).collect()
        };
        assert_eq!(a, b);
        assert_ne!(a[0], a[1]);
    }
}
