//! Ingest load client: N keep-alive connections POST single records to
//! `/api/ai_usage/record` for a while, then print requests per second.
//!
//! ```text
//! ai-usage --dir /tmp/x serve --addr 127.0.0.1:18091 &
//! cargo run --release -p ai-usage-server --example ingest_load -- --addr 127.0.0.1:18091 --clients 8 --secs 10
//! ```

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::Request;
use hyper_util::rt::TokioIo;

fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> Result<T, String> {
    match args.iter().position(|a| a == name) {
        Some(i) => args
            .get(i + 1)
            .ok_or(format!("{name} needs a value"))?
            .parse()
            .map_err(|_| format!("{name}: bad value")),
        None => Ok(default),
    }
}

#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    busy: AtomicU64,
    other: AtomicU64,
}

async fn client(
    addr: SocketAddr,
    id: usize,
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let body = format!(
            r#"{{"model":"qwen-plus","function":"load","input_tokens":1200,"output_tokens":300,"user_id":"u{id}","request_id":"c{id}-{n}"}}"#
        );
        n += 1;
        let req = Request::post("/api/ai_usage/record")
            .header("host", addr.to_string())
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))?;
        let resp = sender.send_request(req).await?;
        let status = resp.status();
        resp.into_body().collect().await?;
        let counter = if status.is_success() {
            &tally.ok
        } else if status.as_u16() == 503 {
            &tally.busy
        } else {
            &tally.other
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let addr: SocketAddr = arg(&args, "--addr", "127.0.0.1:18091".parse()?)?;
    let clients: usize = arg(&args, "--clients", 8)?;
    let secs: f64 = arg(&args, "--secs", 10.0)?;
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|i| tokio::spawn(client(addr, i, Arc::clone(&stop), Arc::clone(&tally))))
        .collect();
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        if let Err(e) = t.await? {
            eprintln!("client failed: {e}");
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let ok = tally.ok.load(Ordering::Relaxed);
    println!(
        "{clients} clients, {elapsed:.1} s: {ok} recorded ({:.0} req/s), {} answered 503, {} other",
        ok as f64 / elapsed,
        tally.busy.load(Ordering::Relaxed),
        tally.other.load(Ordering::Relaxed)
    );
    Ok(())
}
