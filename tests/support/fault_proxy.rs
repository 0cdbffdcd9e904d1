//! A fault-injecting TCP proxy between mailfeed and a real server, on
//! 127.0.0.1. Each accepted connection gets a [`Fault`] from a plan (a
//! function of the connection's index), so a run is reproducible from a
//! seed: cut the stream after K bytes (either direction), stall and then cut,
//! cut inside the n-th literal the server sends, reset the connection (RST),
//! or drip the server's bytes in tiny pieces.
//!
//! Plain threads and blocking sockets: two threads per connection, one per
//! direction. Dropping the proxy stops accepting and ends every connection.

use super::rng::Rng;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// What happens to one proxied connection.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Pass everything through.
    None,
    /// Forward `after` bytes from the server, then close both sides (FIN).
    CutDown { after: u64 },
    /// Forward `after` bytes from mailfeed to the server, then close both.
    CutUp { after: u64 },
    /// Forward `after` bytes from the server, go silent for `stall`, then close.
    StallThenCut { after: u64, stall: Duration },
    /// Cut `into` bytes into the `nth` literal (0-based) the server sends
    /// (`into` is taken modulo the literal's size, and is at least 1).
    TruncateLiteral { nth: u32, into: u64 },
    /// Forward `after` bytes from the server, then reset the connection (RST).
    Reset { after: u64 },
    /// Forward the first `bytes` bytes from the server in pieces of 1 to
    /// `max_piece` bytes, `delay` apart; then pass through.
    Drip {
        bytes: u64,
        max_piece: usize,
        delay: Duration,
    },
}

impl Fault {
    /// True when this fault breaks the connection (as opposed to slowing it).
    pub fn breaks(&self) -> bool {
        !matches!(self, Fault::None | Fault::Drip { .. })
    }
}

type Planner = dyn Fn(u32) -> Fault + Send + Sync;

/// The running proxy. Connect mailfeed to [`FaultProxy::port`].
pub struct FaultProxy {
    port: u16,
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicU32>,
    log: Arc<Mutex<Vec<String>>>,
    /// Bytes the server sent on each connection, in accept order.
    down_bytes: Arc<Mutex<Vec<u64>>>,
    /// Clones of both ends of every connection (to end them on drop); a
    /// reset takes its own out, since RST goes only when the last
    /// descriptor closes.
    streams: Arc<Mutex<Vec<Option<TcpStream>>>>,
    acceptor: Option<JoinHandle<()>>,
}

impl FaultProxy {
    /// Starts a proxy to `127.0.0.1:upstream`; `plan(i)` decides the fault of
    /// the i-th accepted connection.
    pub fn start(upstream: u16, plan: impl Fn(u32) -> Fault + Send + Sync + 'static) -> FaultProxy {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind proxy");
        let port = listener.local_addr().expect("proxy addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicU32::new(0));
        let log = Arc::new(Mutex::new(Vec::new()));
        let down_bytes = Arc::new(Mutex::new(Vec::new()));
        let streams = Arc::new(Mutex::new(Vec::new()));
        let plan: Arc<Planner> = Arc::new(plan);
        let acceptor = {
            let (stop, accepted, log, down_bytes, streams) = (
                stop.clone(),
                accepted.clone(),
                log.clone(),
                down_bytes.clone(),
                streams.clone(),
            );
            std::thread::spawn(move || {
                for client in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(client) = client else { continue };
                    let index = accepted.fetch_add(1, Ordering::SeqCst);
                    let fault = plan(index);
                    let Ok(server) = TcpStream::connect((Ipv4Addr::LOCALHOST, upstream)) else {
                        log.lock()
                            .unwrap()
                            .push(format!("conn {index}: upstream refused"));
                        continue;
                    };
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    let slot_of_streams = {
                        let mut v = streams.lock().unwrap();
                        v.push(client.try_clone().ok());
                        v.push(server.try_clone().ok());
                        v.len() - 2
                    };
                    log.lock().unwrap().push(format!("conn {index}: {fault:?}"));
                    let slot = {
                        let mut d = down_bytes.lock().unwrap();
                        d.push(0);
                        d.len() - 1
                    };
                    let conn = Conn {
                        client,
                        server,
                        fault,
                        index,
                        log: log.clone(),
                        down_bytes: down_bytes.clone(),
                        slot,
                        stop: stop.clone(),
                        streams: streams.clone(),
                        slot_of_streams,
                    };
                    conn.spawn();
                }
            })
        };
        FaultProxy {
            port,
            stop,
            accepted,
            log,
            down_bytes,
            streams,
            acceptor: Some(acceptor),
        }
    }

    /// A proxy whose plan comes from `seed`: the first 1 to 3 connections get
    /// a random fault at a random point within `span` bytes of the server's
    /// stream; every later connection passes (so repeated runs end well).
    pub fn seeded(upstream: u16, seed: u64, span: u64) -> FaultProxy {
        let plan = SeededPlan::new(seed, span);
        FaultProxy::start(upstream, move |i| plan.fault(i))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u32 {
        self.accepted.load(Ordering::SeqCst)
    }

    /// What was done to each connection, for failure messages.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Bytes the server sent on each connection so far.
    pub fn down_bytes(&self) -> Vec<u64> {
        self.down_bytes.lock().unwrap().clone()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for s in self.streams.lock().unwrap().drain(..).flatten() {
            let _ = s.shutdown(Shutdown::Both);
        }
        // Wake the acceptor so it sees the stop flag.
        let _ = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port));
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
    }
}

/// The random plan behind [`FaultProxy::seeded`].
pub struct SeededPlan {
    faults: Vec<Fault>,
}

impl SeededPlan {
    pub fn new(seed: u64, span: u64) -> SeededPlan {
        let mut rng = Rng::from_state(seed.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ 0xFA17);
        let span = span.max(1);
        let n = 1 + rng.below_u64(3);
        let faults = (0..n)
            .map(|_| {
                let after = rng.below_u64(span);
                match rng.below_u64(7) {
                    0 => Fault::CutDown { after },
                    1 => Fault::CutUp {
                        // Commands are short: cut within the first few.
                        after: rng.below_u64(400),
                    },
                    2 => Fault::StallThenCut {
                        after,
                        stall: Duration::from_millis(rng.below_u64(1_500)),
                    },
                    3 => Fault::TruncateLiteral {
                        nth: rng.below_u64(40) as u32,
                        into: 1 + rng.below_u64(1 << 20),
                    },
                    4 => Fault::Reset { after },
                    5 => Fault::Drip {
                        bytes: rng.below_u64(16 * 1024),
                        max_piece: 1 + rng.below_u64(64) as usize,
                        delay: Duration::from_micros(200 + rng.below_u64(1_000)),
                    },
                    _ => Fault::CutDown {
                        // Early: greeting, login, capability, LIST, EXAMINE.
                        after: rng.below_u64(2_000),
                    },
                }
            })
            .collect();
        SeededPlan { faults }
    }

    pub fn fault(&self, index: u32) -> Fault {
        self.faults
            .get(index as usize)
            .cloned()
            .unwrap_or(Fault::None)
    }

    /// How many connections are planned to break.
    pub fn breaking(&self) -> usize {
        self.faults.iter().filter(|f| f.breaks()).count()
    }
}

struct Conn {
    client: TcpStream,
    server: TcpStream,
    fault: Fault,
    index: u32,
    log: Arc<Mutex<Vec<String>>>,
    down_bytes: Arc<Mutex<Vec<u64>>>,
    slot: usize,
    stop: Arc<AtomicBool>,
    streams: Arc<Mutex<Vec<Option<TcpStream>>>>,
    slot_of_streams: usize,
}

/// How a copying direction ended.
enum End {
    /// The source closed or failed: pass the close on.
    Eof,
    /// The fault fired: close both sides now.
    Cut,
    /// The fault fired: reset both sides.
    Reset,
}

impl Conn {
    fn spawn(self) {
        let (Ok(client2), Ok(server2)) = (self.client.try_clone(), self.server.try_clone()) else {
            return;
        };
        let cut_up = match self.fault {
            Fault::CutUp { after } => Some(after),
            _ => None,
        };
        let log = self.log.clone();
        let index = self.index;
        // mailfeed → server
        std::thread::spawn(move || {
            let mut from = client2;
            let mut to = server2;
            let mut sent = 0u64;
            let mut buf = [0u8; 16 * 1024];
            loop {
                let n = match from.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                if let Some(limit) = cut_up
                    && sent + n as u64 >= limit
                {
                    let keep = (limit - sent) as usize;
                    let _ = to.write_all(&buf[..keep]);
                    log.lock()
                        .unwrap()
                        .push(format!("conn {index}: cut upstream at {limit} bytes"));
                    let _ = from.shutdown(Shutdown::Both);
                    let _ = to.shutdown(Shutdown::Both);
                    return;
                }
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
                sent += n as u64;
            }
            let _ = to.shutdown(Shutdown::Write);
        });
        // server → mailfeed
        std::thread::spawn(move || self.copy_down());
    }

    fn note(&self, s: String) {
        self.log
            .lock()
            .unwrap()
            .push(format!("conn {}: {s}", self.index));
    }

    fn count(&self, n: u64) {
        if let Some(v) = self.down_bytes.lock().unwrap().get_mut(self.slot) {
            *v += n;
        }
    }

    fn copy_down(self) {
        let mut buf = vec![0u8; 64 * 1024];
        let mut sent = 0u64;
        let mut scan = LiteralScanner::default();
        let mut from = &self.server;
        let mut to = &self.client;
        let end = loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break End::Eof,
                Ok(n) => n,
            };
            let chunk = &buf[..n];
            // Where in this chunk the fault fires, if it does.
            let fire: Option<(usize, End)> = match &self.fault {
                Fault::CutDown { after } | Fault::StallThenCut { after, .. }
                    if sent + n as u64 >= *after =>
                {
                    Some(((after - sent) as usize, End::Cut))
                }
                Fault::Reset { after } if sent + n as u64 >= *after => {
                    Some(((after - sent) as usize, End::Reset))
                }
                Fault::TruncateLiteral { nth, into } => {
                    scan.find(chunk, *nth, *into).map(|at| (at, End::Cut))
                }
                _ => None,
            };
            if let Some((at, how)) = fire {
                let _ = to.write_all(&chunk[..at]);
                self.count(at as u64);
                if let Fault::StallThenCut { stall, .. } = self.fault {
                    self.note(format!(
                        "stalling {stall:?} after {} bytes",
                        sent + at as u64
                    ));
                    let until = std::time::Instant::now() + stall;
                    while std::time::Instant::now() < until && !self.stop.load(Ordering::SeqCst) {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                }
                self.note(format!(
                    "{} after {} bytes from the server",
                    if matches!(how, End::Reset) {
                        "reset"
                    } else {
                        "cut"
                    },
                    sent + at as u64
                ));
                break how;
            }
            let ok = match &self.fault {
                Fault::Drip {
                    bytes,
                    max_piece,
                    delay,
                } if sent < *bytes => {
                    let mut rng = Rng::from_state(sent ^ u64::from(self.index));
                    let mut rest = chunk;
                    let mut ok = true;
                    while !rest.is_empty() && ok {
                        let k = (1 + rng.below_u64(*max_piece as u64) as usize).min(rest.len());
                        ok = to.write_all(&rest[..k]).is_ok();
                        rest = &rest[k..];
                        std::thread::sleep(*delay);
                    }
                    ok
                }
                _ => to.write_all(chunk).is_ok(),
            };
            self.count(n as u64);
            sent += n as u64;
            if !ok {
                break End::Eof;
            }
        };
        match end {
            End::Eof => {
                let _ = self.client.shutdown(Shutdown::Write);
            }
            End::Cut => {
                let _ = self.client.shutdown(Shutdown::Both);
                let _ = self.server.shutdown(Shutdown::Both);
            }
            End::Reset => {
                // Linger 0 makes the final close send RST instead of FIN; the
                // read half is shut so the other thread lets go of its copy.
                let _ = socket2::SockRef::from(&self.client).set_linger(Some(Duration::ZERO));
                if let Some(v) = self
                    .streams
                    .lock()
                    .unwrap()
                    .get_mut(self.slot_of_streams..self.slot_of_streams + 2)
                {
                    v.iter_mut().for_each(|s| drop(s.take()));
                }
                let _ = self.client.shutdown(Shutdown::Read);
                let _ = self.server.shutdown(Shutdown::Both);
            }
        }
    }
}

/// Follows the server's stream just enough to know where literals are:
/// a line ending in `{n}` CRLF announces n bytes of literal.
#[derive(Default)]
struct LiteralScanner {
    /// The tail of the current line (enough to hold `{4294967295}`).
    tail: Vec<u8>,
    /// Literal bytes still to pass, and where the cut falls in it.
    in_literal: Option<(u64, Option<u64>)>,
    seen: u32,
}

impl LiteralScanner {
    /// Scans `chunk`; returns the offset where the cut must happen, if the
    /// chosen literal's cut point is in it.
    fn find(&mut self, chunk: &[u8], nth: u32, into: u64) -> Option<usize> {
        let mut i = 0;
        while i < chunk.len() {
            if let Some((remaining, cut_at)) = self.in_literal {
                let take = remaining.min((chunk.len() - i) as u64);
                if let Some(c) = cut_at
                    && c < take
                {
                    return Some(i + c as usize);
                }
                let left = remaining - take;
                self.in_literal = if left == 0 {
                    None
                } else {
                    Some((left, cut_at.map(|c| c - take)))
                };
                i += take as usize;
                continue;
            }
            let b = chunk[i];
            i += 1;
            if b == b'\n' {
                let line = self.tail.strip_suffix(b"\r").unwrap_or(&self.tail);
                if let Some(size) = literal_size(line) {
                    let cut_at = (self.seen == nth && size > 1).then(|| 1 + into % (size - 1));
                    self.seen += 1;
                    if size > 0 {
                        self.in_literal = Some((size, cut_at));
                    }
                }
                self.tail.clear();
            } else {
                self.tail.push(b);
                if self.tail.len() > 32 {
                    self.tail.remove(0);
                }
            }
        }
        None
    }
}

fn literal_size(line: &[u8]) -> Option<u64> {
    let body = line.strip_suffix(b"}")?;
    let open = body.iter().rposition(|&b| b == b'{')?;
    let digits = body[open + 1..]
        .strip_suffix(b"+")
        .unwrap_or(&body[open + 1..]);
    std::str::from_utf8(digits).ok()?.parse().ok()
}
