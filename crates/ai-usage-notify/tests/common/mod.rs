//! A minimal HTTP receiver on 127.0.0.1 that records each request and
//! answers from a script, plus the signatures recomputed from the
//! providers' documentation (independently of the crate's own code).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use ai_usage_core::{BudgetPeriod, Currency, Money};
use ai_usage_notify::{AlertMessage, AlertScope};
use base64::Engine as _;
use hmac::{KeyInit, Mac};

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("body is JSON")
    }

    /// Query parameters, percent-decoded.
    pub fn query(&self) -> Vec<(String, String)> {
        let url = url::Url::parse(&format!("http://x{}", self.target)).unwrap();
        url.query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    pub fn query_value(&self, name: &str) -> Option<String> {
        self.query()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }
}

/// What the stub does with one connection.
#[derive(Clone)]
pub enum Reply {
    /// Answer with this status, extra headers and body.
    Http(u16, Vec<(&'static str, &'static str)>, String),
    /// Read the request, then say nothing until the client gives up.
    Silence,
}

pub fn reply(status: u16, body: &str) -> Reply {
    Reply::Http(status, Vec::new(), body.to_string())
}

pub struct Stub {
    pub addr: SocketAddr,
    received: mpsc::Receiver<Received>,
}

impl Stub {
    /// Serves one connection per scripted reply, in order.
    pub fn start(script: Vec<Reply>) -> Stub {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for reply in script {
                let Ok((stream, _)) = listener.accept() else {
                    return;
                };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let Some(request) = read_request(&mut reader) else {
                    continue;
                };
                let _ = tx.send(request);
                let mut stream = stream;
                match reply {
                    Reply::Http(status, headers, body) => {
                        let mut head = format!(
                            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
                            body.len()
                        );
                        for (n, v) in headers {
                            head.push_str(&format!("{n}: {v}\r\n"));
                        }
                        head.push_str("\r\n");
                        let _ = stream.write_all(head.as_bytes());
                        let _ = stream.write_all(body.as_bytes());
                        let _ = stream.flush();
                    }
                    Reply::Silence => thread::sleep(Duration::from_secs(3)),
                }
            }
        });
        Stub { addr, received: rx }
    }

    pub fn url(&self, path_and_query: &str) -> String {
        format!("http://{}{}", self.addr, path_and_query)
    }

    /// The next request received (waits up to 5 s).
    pub fn next(&self) -> Received {
        self.received
            .recv_timeout(Duration::from_secs(5))
            .expect("the stub received a request")
    }

    /// True when no further request arrives within 200 ms.
    pub fn idle(&self) -> bool {
        self.received
            .recv_timeout(Duration::from_millis(200))
            .is_err()
    }
}

fn read_request(reader: &mut BufReader<std::net::TcpStream>) -> Option<Received> {
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (n, v) = h.split_once(':')?;
        headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let len: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .map(|(_, v)| v.parse().unwrap())
        .expect("the request has a Content-Length");
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    Some(Received {
        method,
        target,
        headers,
        body,
    })
}

/// HMAC-SHA256, written out here rather than taken from the crate.
pub fn hmac_sha256(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
    mac.update(msg);
    mac.finalize().into_bytes().to_vec()
}

pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

pub fn money(s: &str) -> Money {
    s.parse().unwrap()
}

/// An anchor's daily budget crossing 80 %.
pub fn sample_message() -> AlertMessage {
    AlertMessage::new(
        "主播日预算",
        AlertScope::Anchor("anchor_001".into()),
        BudgetPeriod::Daily,
        "2026-12-07",
        80,
        money("40.5"),
        money("50"),
        Currency::CNY,
        chrono::DateTime::parse_from_rfc3339("2026-12-07T14:03:05+08:00").unwrap(),
    )
    .with_projection(money("1203.25"))
    .with_public_url("https://ai-usage.example.com")
}

/// A week's digest as the docs show it.
pub fn sample_digest() -> ai_usage_notify::DigestMessage {
    use ai_usage_notify::digest::{Amount, BudgetLine, PeriodCost, SavingLine, TopEntry};
    let top = |id: &str, calls: u64, cost: &str| TopEntry {
        id: id.into(),
        calls,
        tokens: calls * 1_500,
        costs: vec![Amount {
            currency: Currency::CNY,
            amount: money(cost),
        }],
    };
    ai_usage_notify::DigestMessage {
        id: ai_usage_notify::DigestPeriod {
            schedule: ai_usage_notify::DigestSchedule::Weekly,
            from: "2026-11-30".parse().unwrap(),
            to: "2026-12-06".parse().unwrap(),
            previous_from: "2026-11-23".parse().unwrap(),
            previous_to: "2026-11-29".parse().unwrap(),
            due: 0.0,
        }
        .id(),
        schedule: ai_usage_notify::DigestSchedule::Weekly,
        from: "2026-11-30".parse().unwrap(),
        to: "2026-12-06".parse().unwrap(),
        previous_from: "2026-11-23".parse().unwrap(),
        previous_to: "2026-11-29".parse().unwrap(),
        costs: vec![
            PeriodCost {
                currency: Currency::CNY,
                cost: money("1286.4"),
                previous: money("1102.75"),
            },
            PeriodCost {
                currency: Currency::USD,
                cost: money("3.18"),
                previous: money("4.02"),
            },
        ],
        calls: 61_840,
        previous_calls: 55_210,
        top_functions: vec![
            top("实时分析", 43_200, "902.5"),
            top("话术生成", 12_400, "301.2"),
            top("商品文案", 6_240, "82.7"),
        ],
        top_models: vec![
            top("qwen-max", 20_100, "815.3"),
            top("deepseek-chat", 25_700, "388.4"),
            top("qwen-turbo", 16_040, "82.7"),
        ],
        top_anchors: vec![
            top("anchor_001", 21_300, "512.8"),
            top("anchor_002", 18_900, "433.1"),
            top("anchor_003", 9_800, "201.5"),
        ],
        budgets: vec![
            BudgetLine {
                name: "每日总预算".into(),
                scope: AlertScope::Global,
                period_label: "2026-12-07".into(),
                spent: money("12.4"),
                limit: money("300"),
                currency: Currency::CNY,
                percent: 4.13,
                block_at: None,
                refusing: false,
            },
            BudgetLine {
                name: "主播日预算".into(),
                scope: AlertScope::Anchor("anchor_001".into()),
                period_label: "2026-12-07".into(),
                spent: money("20.6"),
                limit: money("20"),
                currency: Currency::CNY,
                percent: 103.0,
                block_at: Some(100),
                refusing: true,
            },
        ],
        savings: vec![SavingLine {
            function: "实时分析".into(),
            currency: Currency::CNY,
            current_cost: money("902.5"),
            model: "通义千问-Turbo".into(),
            cost: money("61.8"),
            saving: money("840.7"),
        }],
        time: chrono::DateTime::parse_from_rfc3339("2026-12-07T09:00:12+08:00").unwrap(),
        public_url: Some("https://ai-usage.example.com".into()),
        language: None,
    }
}
