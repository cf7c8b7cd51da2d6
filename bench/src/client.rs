//! The WebSocket side of the load generator: authenticated clients bound to many loopback source
//! addresses (the server allows 64 sockets per address), subscribed once, and a receive loop that
//! finds the writer's markers with a byte search instead of parsing JSON.
//!
//! Markers: `BENCH <kind> <run> <seq> <t_ns>`, `kind` = `L` (a `ralph.log` line) or `J` (an
//! `iterations.jsonl` row, carried in its `commit` field); `t_ns` is the write time in
//! nanoseconds since the load generator's start (the same monotonic clock as the receiver).

use std::{
    net::{Ipv4Addr, SocketAddr},
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use memchr::memmem::Finder;
use tokio::{net::TcpSocket, net::TcpStream, sync::watch, time::timeout};
use tokio_tungstenite::{
    client_async_with_config,
    tungstenite::{protocol::WebSocketConfig, Message},
    WebSocketStream,
};

use crate::Error;

pub type Ws = WebSocketStream<TcpStream>;

/// Sockets per source address (the server refuses the 65th).
pub const PER_ADDRESS: u32 = 60;
/// Largest latency a histogram holds, in microseconds.
const MAX_LATENCY_US: u64 = 120_000_000;

/// The loopback address of a slot: 127.1.x.y (never 127.0.0.1, which HTTP requests use).
pub fn source_ip(slot: u32) -> Ipv4Addr {
    let slot = slot % (250 * 256);
    Ipv4Addr::new(127, 1, (slot / 250) as u8, (slot % 250 + 1) as u8)
}

/// Where and how clients connect.
#[derive(Clone)]
pub struct Target {
    pub addr: SocketAddr,
    pub jwt: Arc<str>,
    /// The one subscribe frame each client sends.
    pub subscribe: Arc<str>,
}

impl Target {
    pub fn new(addr: SocketAddr, jwt: &str, topics: &[String]) -> Self {
        let topics: Vec<String> = topics.iter().map(|t| format!("{t:?}")).collect();
        Self {
            addr,
            jwt: jwt.into(),
            subscribe: format!(
                r#"{{"action":"subscribe","topics":[{}],"backlog":0}}"#,
                topics.join(",")
            )
            .into(),
        }
    }
}

/// Socket options of one client.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// `SO_RCVBUF` in bytes (a small one makes a stalled client's backlog pile up in the server).
    pub receive_buffer: Option<u32>,
    /// tungstenite's read chunk; small for the many idle sockets.
    pub read_chunk: usize,
}

/// Connects from `source`, completes the authenticated upgrade, waits for `hello`, subscribes
/// and waits for `subscribed`. Everything within `limit`.
pub async fn connect(
    target: &Target,
    source: Ipv4Addr,
    options: Options,
    limit: Duration,
) -> Result<Ws, Error> {
    timeout(limit, connect_inner(target, source, options))
        .await
        .map_err(|_| Error::msg(format!("no subscribed WebSocket within {limit:?}")))?
}

async fn connect_inner(target: &Target, source: Ipv4Addr, options: Options) -> Result<Ws, Error> {
    let socket = TcpSocket::new_v4()?;
    if let Some(bytes) = options.receive_buffer {
        socket.set_recv_buffer_size(bytes)?;
    }
    socket
        .bind(SocketAddr::new(source.into(), 0))
        .map_err(|e| Error::msg(format!("cannot bind {source}: {e}")))?;
    let stream = socket.connect(target.addr).await?;
    stream.set_nodelay(true)?;
    let url = format!("ws://{}/api/ws?token={}", target.addr, target.jwt);
    let config = WebSocketConfig::default()
        .read_buffer_size(options.read_chunk.max(4096))
        .write_buffer_size(0);
    let (mut ws, _) = client_async_with_config(url.as_str(), stream, Some(config))
        .await
        .map_err(|e| Error::msg(format!("upgrade refused: {e}")))?;
    // `hello` first, then the acknowledgement of the subscription.
    let hello = next_text(&mut ws).await?;
    if !hello.contains(r#""type":"hello""#) {
        return Err(Error::msg(format!(
            "expected hello, got {}",
            preview(&hello)
        )));
    }
    ws.send(Message::Text(target.subscribe.as_ref().into()))
        .await?;
    loop {
        let text = next_text(&mut ws).await?;
        if text.starts_with(r#"{"type":"subscribed""#) {
            return Ok(ws);
        }
        if text.starts_with(r#"{"type":"error""#) {
            return Err(Error::msg(format!("subscribe refused: {}", preview(&text))));
        }
    }
}

async fn next_text(ws: &mut Ws) -> Result<String, Error> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) => return Ok(text.as_str().to_owned()),
            Some(Ok(Message::Close(frame))) => {
                return Err(Error::msg(format!("closed by the server: {frame:?}")))
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e.into()),
            None => return Err(Error::msg("connection ended")),
        }
    }
}

fn preview(text: &str) -> String {
    text.chars().take(200).collect()
}

/// What one scenario run expects a client to receive.
#[derive(Clone, Copy, Debug)]
pub struct Expect {
    pub run: u32,
    /// Log lines numbered 0..lines.
    pub lines: u64,
    /// JSONL rows numbered 0..rows.
    pub rows: u64,
}

/// What one client saw.
pub struct Tally {
    /// Append-to-receipt latency of log lines, microseconds.
    pub lines_us: Histogram<u32>,
    /// The same for JSONL rows (created at the first one).
    pub rows_us: Option<Histogram<u32>>,
    seen_lines: Vec<u64>,
    seen_rows: Vec<u64>,
    pub lines: u64,
    pub rows: u64,
    pub duplicates: u64,
    pub frames: u64,
    pub bytes: u64,
    pub resyncs: u64,
    pub errors: u64,
    /// When the last new line arrived (ns since the base).
    pub last_line_ns: u64,
    /// Bytes received before the first `resync`.
    pub bytes_before_resync: Option<u64>,
    /// How the connection ended, if it did.
    pub ended: Option<String>,
}

impl Tally {
    fn new(expect: Expect) -> Self {
        Self {
            lines_us: histogram(),
            rows_us: None,
            seen_lines: vec![0; (expect.lines as usize).div_ceil(64)],
            seen_rows: vec![0; (expect.rows as usize).div_ceil(64)],
            lines: 0,
            rows: 0,
            duplicates: 0,
            frames: 0,
            bytes: 0,
            resyncs: 0,
            errors: 0,
            last_line_ns: 0,
            bytes_before_resync: None,
            ended: None,
        }
    }

    fn complete(&self, expect: Expect) -> bool {
        self.lines >= expect.lines && self.rows >= expect.rows
    }
}

pub fn histogram<T: hdrhistogram::Counter>() -> Histogram<T> {
    // 3 significant figures from 1 us to 2 minutes; the bounds are valid constants.
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
        .unwrap_or_else(|_| unreachable!("valid histogram bounds"))
}

/// Scans frames for markers. One finder is shared by all clients.
pub struct Scanner {
    finder: Finder<'static>,
    base: Instant,
}

impl Scanner {
    pub fn new(base: Instant) -> Self {
        Self {
            finder: Finder::new(b"BENCH "),
            base,
        }
    }

    pub fn now_ns(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64
    }

    fn scan(&self, frame: &[u8], expect: Expect, tally: &mut Tally) {
        tally.frames += 1;
        tally.bytes += frame.len() as u64;
        if frame.starts_with(br#"{"type":"resync""#) {
            tally.resyncs += 1;
            tally.bytes_before_resync.get_or_insert(tally.bytes);
            return;
        }
        if frame.starts_with(br#"{"type":"error""#) {
            tally.errors += 1;
            return;
        }
        let now = self.now_ns();
        for at in self.finder.find_iter(frame) {
            let Some((kind, run, seq, written)) = marker(&frame[at + 6..]) else {
                continue;
            };
            if run != u64::from(expect.run) {
                continue;
            }
            let (seen, histogram, count) = match kind {
                b'L' => (&mut tally.seen_lines, &mut tally.lines_us, &mut tally.lines),
                b'J' => (
                    &mut tally.seen_rows,
                    tally.rows_us.get_or_insert_with(histogram),
                    &mut tally.rows,
                ),
                _ => continue,
            };
            let (word, bit) = ((seq / 64) as usize, seq % 64);
            let Some(slot) = seen.get_mut(word) else {
                continue;
            };
            if *slot & (1 << bit) != 0 {
                tally.duplicates += 1;
                continue;
            }
            *slot |= 1 << bit;
            *count += 1;
            histogram.saturating_record((now.saturating_sub(written) / 1000).max(1));
            if kind == b'L' {
                tally.last_line_ns = now;
            }
        }
    }
}

/// `K RUN SEQ T` after `BENCH `.
fn marker(bytes: &[u8]) -> Option<(u8, u64, u64, u64)> {
    let kind = *bytes.first()?;
    if bytes.get(1) != Some(&b' ') {
        return None;
    }
    let (run, used) = number(&bytes[2..])?;
    let rest = bytes.get(2 + used + 1..)?;
    let (seq, used) = number(rest)?;
    let rest = rest.get(used + 1..)?;
    let (written, _) = number(rest)?;
    Some((kind, run, seq, written))
}

fn number(bytes: &[u8]) -> Option<(u64, usize)> {
    let digits = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 19 {
        return None;
    }
    let value = bytes[..digits]
        .iter()
        .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
    Some((value, digits))
}

/// Reads until every expected marker has arrived (then waits for `stop` without reading) or
/// until `stop`. Returns the socket too, so closing it is left to the caller.
pub async fn measure(
    mut ws: Ws,
    scanner: Arc<Scanner>,
    expect: Expect,
    done: Arc<AtomicUsize>,
    mut stop: watch::Receiver<bool>,
) -> (Tally, Ws) {
    let mut tally = Tally::new(expect);
    loop {
        if tally.complete(expect) {
            done.fetch_add(1, Ordering::Relaxed);
            let _ = stop.wait_for(|stop| *stop).await;
            break;
        }
        let message = tokio::select! {
            biased;
            _ = stop.wait_for(|stop| *stop) => break,
            message = ws.next() => message,
        };
        let ended = match message {
            Some(Ok(Message::Text(text))) => {
                scanner.scan(text.as_bytes(), expect, &mut tally);
                continue;
            }
            Some(Ok(Message::Close(frame))) => format!(
                "closed by the server: {}",
                frame.map_or("no code".to_owned(), |f| format!("{} {}", f.code, f.reason))
            ),
            Some(Ok(_)) => continue,
            Some(Err(e)) => format!("socket error: {e}"),
            None => "connection ended".to_owned(),
        };
        tally.ended = Some(ended);
        let _ = stop.wait_for(|stop| *stop).await;
        break;
    }
    (tally, ws)
}

/// A client that does not read at all until `resume`, then reads what is left until it has
/// every expected line or the server has been silent for `quiet`.
pub async fn stall(
    mut ws: Ws,
    scanner: Arc<Scanner>,
    expect: Expect,
    mut resume: watch::Receiver<bool>,
    quiet: Duration,
) -> Tally {
    let _ = resume.wait_for(|go| *go).await;
    let mut tally = Tally::new(expect);
    while !tally.complete(expect) {
        match timeout(quiet, ws.next()).await {
            Err(_) => break,
            Ok(Some(Ok(Message::Text(text)))) => scanner.scan(text.as_bytes(), expect, &mut tally),
            Ok(Some(Ok(Message::Close(frame)))) => {
                tally.ended = Some(format!(
                    "closed by the server: {}",
                    frame.map_or("no code".to_owned(), |f| format!("{} {}", f.code, f.reason))
                ));
                break;
            }
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(e))) => {
                tally.ended = Some(format!("socket error: {e}"));
                break;
            }
            Ok(None) => {
                tally.ended = Some("connection ended".to_owned());
                break;
            }
        }
    }
    tally
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_found_in_escaped_json_without_parsing_it() {
        let scanner = Scanner::new(Instant::now());
        let expect = Expect {
            run: 3,
            lines: 4,
            rows: 1,
        };
        let mut tally = Tally::new(expect);
        let frame = br#"{"type":"log_append","data":{"lines":"[1] BENCH L 3 0 5 x\n[1] BENCH L 3 1 5 y\n[1] BENCH L 2 2 5 old run\n[1] BENCH L 3 1 5 again\n"}}"#;
        scanner.scan(frame, expect, &mut tally);
        assert_eq!((tally.lines, tally.duplicates, tally.frames), (2, 1, 1));
        scanner.scan(
            br#"{"type":"iteration_completed","data":{"commit":"BENCH J 3 0 7"}}"#,
            expect,
            &mut tally,
        );
        assert_eq!(tally.rows, 1);
        scanner.scan(br#"{"type":"resync","topic":null}"#, expect, &mut tally);
        assert_eq!(tally.resyncs, 1);
        scanner.scan(
            br#"BENCH L 3 99 1 out of range; BENCH L 3 x"#,
            expect,
            &mut tally,
        );
        assert_eq!(tally.lines, 2);
        assert!(!tally.complete(expect));
        assert_eq!(source_ip(0), Ipv4Addr::new(127, 1, 0, 1));
        assert_eq!(source_ip(251), Ipv4Addr::new(127, 1, 1, 2));
    }
}
