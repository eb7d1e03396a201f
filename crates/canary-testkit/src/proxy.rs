//! A TCP proxy between a client (the CLI under test) and the test environment's API server
//! that resets connections on demand: the "connection reset mid-request" fault.
//!
//! It relays bytes and does not look into them (TLS stays end to end; the API server's
//! certificate names 127.0.0.1, the proxy's address). [`ResetProxy::reset_requests`] arms it
//! to reset the next N requests after the API server received them: a client chunk that is a
//! TLS application-data record (a request, or a part of one) is forwarded, and when the first
//! bytes of the answer come back (or after [`ANSWER_WAIT`] without any, as for a watch with
//! nothing to report) the client's connection is reset (RST, `SO_LINGER` 0) and the answer
//! dropped. So the request may have been carried out while the client only sees "connection
//! reset": the case where a tool must not claim that nothing changed.
//! [`ResetProxy::reset_all`] resets every open connection at once (open watches included).
//! [`ResetProxy::partition`] turns it into a black hole (a partitioned node): connections stay
//! open, new ones are accepted, and nothing passes either way until it is lifted.
//! [`ResetProxy::silence_open`] makes the connections open now go silent for good, without
//! closing (a NAT or firewall that dropped their state): new connections pass.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// How long an armed reset waits for the first bytes of the answer before resetting anyway.
pub const ANSWER_WAIT: Duration = Duration::from_secs(1);

/// The first byte of a TLS record carrying application data (TLS 1.2 and 1.3).
const TLS_APPLICATION_DATA: u8 = 0x17;

#[derive(Default)]
struct Shared {
    /// Requests still to be reset.
    armed: AtomicU32,
    /// Connections reset so far (armed resets and `reset_all`).
    resets: AtomicU64,
    /// Connections accepted so far.
    accepted: AtomicU64,
    /// While set, bytes are dropped both ways.
    partitioned: AtomicBool,
    /// Connections numbered below this (in the order accepted) are silent for good.
    silent_below: AtomicU64,
    /// Open connections, by the number they were accepted with.
    open: std::sync::Mutex<std::collections::BTreeSet<u64>>,
    /// Connections silenced so far.
    silenced: AtomicU64,
    /// Connections whose client sent bytes the server has not answered yet.
    awaiting: std::sync::Mutex<std::collections::BTreeSet<u64>>,
}

impl Shared {
    /// Whether bytes of connection `number` are dropped.
    fn dropping(&self, number: u64) -> bool {
        self.partitioned.load(Ordering::SeqCst) || self.silenced(number)
    }

    /// Whether connection `number` is silent for good (its closes are dropped too).
    fn silenced(&self, number: u64) -> bool {
        number < self.silent_below.load(Ordering::SeqCst)
    }
}

/// A running proxy; it stops when dropped.
pub struct ResetProxy {
    address: SocketAddr,
    shared: Arc<Shared>,
    reset_all: watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl ResetProxy {
    /// Listens on a free loopback port and relays every connection to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port for the proxy");
        let address = listener.local_addr().expect("the proxy's address");
        let (reset_all, _) = watch::channel(0u64);
        let shared = Arc::new(Shared::default());
        let accepting = shared.clone();
        let generations = reset_all.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let number = accepting.accepted.fetch_add(1, Ordering::SeqCst);
                let shared = accepting.clone();
                let reset = generations.subscribe();
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(upstream).await {
                        shared.open.lock().expect("open lock").insert(number);
                        relay(client, server, shared.clone(), reset, number).await;
                        shared.open.lock().expect("open lock").remove(&number);
                        shared
                            .awaiting
                            .lock()
                            .expect("awaiting lock")
                            .remove(&number);
                    }
                });
            }
        });
        Self {
            address,
            shared,
            reset_all,
            task,
        }
    }

    /// The proxy's address.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Arms the proxy: the next `count` requests reach the API server and then lose their
    /// connection (see the module doc).
    pub fn reset_requests(&self, count: u32) {
        self.shared.armed.fetch_add(count, Ordering::SeqCst);
    }

    /// Armed resets not carried out yet.
    pub fn pending(&self) -> u32 {
        self.shared.armed.load(Ordering::SeqCst)
    }

    /// Resets every open connection now.
    pub fn reset_all(&self) {
        self.reset_all.send_modify(|generation| *generation += 1);
    }

    /// Partitions (`true`) or heals (`false`): while partitioned every byte either way is
    /// dropped, so requests and watches hang without an error, as for a partitioned node.
    pub fn partition(&self, on: bool) {
        self.shared.partitioned.store(on, Ordering::SeqCst);
    }

    /// Makes every connection open now silent for good: it stays open and nothing passes
    /// either way (no FIN, no RST), as when a firewall or NAT on the path forgot it; new
    /// connections pass. Returns how many open connections went silent.
    pub fn silence_open(&self) -> u64 {
        let open = self.shared.open.lock().expect("open lock");
        self.shared.silent_below.store(
            self.shared.accepted.load(Ordering::SeqCst),
            Ordering::SeqCst,
        );
        let silenced = open.len() as u64;
        self.shared.silenced.fetch_add(silenced, Ordering::SeqCst);
        silenced
    }

    /// Connections waiting for an answer now: the client sent application data (a request)
    /// and no server bytes came back since (a request in flight; an established watch is not
    /// one).
    pub fn in_flight(&self) -> usize {
        self.shared.awaiting.lock().expect("awaiting lock").len()
    }

    /// Connections open now (silent ones included).
    pub fn open(&self) -> usize {
        self.shared.open.lock().expect("open lock").len()
    }

    /// Connections reset so far.
    pub fn resets(&self) -> u64 {
        self.shared.resets.load(Ordering::SeqCst)
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Writes a copy of `kubeconfig` into `dir` whose server is this proxy; returns its path.
    /// `server` is the URL the original names (the env file's `KC_APISERVER_URL`).
    pub fn kubeconfig(&self, kubeconfig: &Path, server: &str, dir: &Path) -> PathBuf {
        let text = std::fs::read_to_string(kubeconfig)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", kubeconfig.display()));
        assert!(
            text.contains(server),
            "{} does not name the server {server}",
            kubeconfig.display()
        );
        let through = text.replace(server, &format!("https://{}", self.address));
        let path = dir.join(format!("kubeconfig-via-proxy-{}", self.address.port()));
        std::fs::write(&path, through).expect("write the proxy's kubeconfig");
        path
    }
}

impl Drop for ResetProxy {
    fn drop(&mut self) {
        self.task.abort();
        self.reset_all();
    }
}

/// Takes one armed reset, if any.
fn take_armed(shared: &Shared) -> bool {
    shared
        .armed
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

/// Relays one connection until either side closes it or it is reset.
async fn relay(
    mut client: TcpStream,
    mut server: TcpStream,
    shared: Arc<Shared>,
    mut reset: watch::Receiver<u64>,
    number: u64,
) {
    reset.mark_unchanged();
    let mut from_client = vec![0u8; 64 * 1024];
    let mut from_server = vec![0u8; 64 * 1024];
    // Set once an armed reset chose this connection: reset at the first answer bytes.
    let mut doomed: Option<tokio::time::Instant> = None;
    loop {
        let deadline =
            doomed.unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            read = client.read(&mut from_client) => {
                let Ok(n) = read else { break };
                if n == 0 {
                    if shared.silenced(number) {
                        return park(server, reset).await;
                    }
                    break;
                }
                if shared.dropping(number) {
                    continue;
                }
                if server.write_all(&from_client[..n]).await.is_err() {
                    break;
                }
                if from_client[0] == TLS_APPLICATION_DATA {
                    // A request (not a handshake record or an alert such as close_notify).
                    shared.awaiting.lock().expect("awaiting lock").insert(number);
                }
                if doomed.is_none() && from_client[0] == TLS_APPLICATION_DATA && take_armed(&shared) {
                    doomed = Some(tokio::time::Instant::now() + ANSWER_WAIT);
                }
            }
            read = server.read(&mut from_server) => {
                let Ok(n) = read else { break };
                if n == 0 {
                    if shared.silenced(number) {
                        return park(client, reset).await;
                    }
                    break;
                }
                if doomed.is_some() {
                    return abort(client, shared);
                }
                if shared.dropping(number) {
                    continue;
                }
                if client.write_all(&from_server[..n]).await.is_err() {
                    break;
                }
                shared.awaiting.lock().expect("awaiting lock").remove(&number);
            }
            _ = tokio::time::sleep_until(deadline), if doomed.is_some() => {
                return abort(client, shared);
            }
            changed = reset.changed() => {
                if changed.is_ok() {
                    return abort(client, shared);
                }
                break;
            }
        }
    }
}

/// A silenced connection whose other side closed: the close does not pass either (a black
/// hole drops FINs too), so `open` stays open, silent, until the proxy resets everything.
async fn park(open: TcpStream, mut reset: watch::Receiver<u64>) {
    let _ = reset.changed().await;
    let _ = open.set_zero_linger();
}

/// Resets the client's connection (RST, not FIN); the server's is closed by the drop.
fn abort(client: TcpStream, shared: Arc<Shared>) {
    let _ = client.set_zero_linger();
    drop(client);
    shared.resets.fetch_add(1, Ordering::SeqCst);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An upstream that echoes every chunk back.
    async fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buffer = [0u8; 1024];
                    while let Ok(n) = stream.read(&mut buffer).await {
                        if n == 0 || stream.write_all(&buffer[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        address
    }

    async fn exchange(stream: &mut TcpStream, chunk: &[u8]) -> std::io::Result<Vec<u8>> {
        stream.write_all(chunk).await?;
        let mut answer = vec![0u8; chunk.len()];
        stream.read_exact(&mut answer).await?;
        Ok(answer)
    }

    #[tokio::test]
    async fn relays_resets_an_armed_request_after_the_server_got_it_and_resets_all() {
        let proxy = ResetProxy::start(echo_server().await).await;
        let mut client = TcpStream::connect(proxy.address()).await.unwrap();
        let request = [TLS_APPLICATION_DATA, 1, 2, 3];
        assert_eq!(exchange(&mut client, &request).await.unwrap(), request);

        proxy.reset_requests(1);
        // A handshake record is not a request: relayed, the reset stays armed.
        let handshake = [0x16, 9];
        assert_eq!(exchange(&mut client, &handshake).await.unwrap(), handshake);
        assert_eq!(proxy.pending(), 1);
        let error = exchange(&mut client, &request).await.unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::ConnectionReset, "{error}");
        assert_eq!((proxy.pending(), proxy.resets()), (0, 1));

        let mut other = TcpStream::connect(proxy.address()).await.unwrap();
        assert_eq!(exchange(&mut other, &request).await.unwrap(), request);
        proxy.reset_all();
        let mut buffer = [0u8; 4];
        let read = other.read(&mut buffer).await;
        assert!(
            matches!(&read, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset),
            "{read:?}"
        );
        assert_eq!(proxy.resets(), 2);
        assert_eq!(proxy.accepted(), 2);
    }

    #[tokio::test]
    async fn a_partition_drops_every_byte_until_it_is_lifted() {
        let proxy = ResetProxy::start(echo_server().await).await;
        let mut client = TcpStream::connect(proxy.address()).await.unwrap();
        assert_eq!(exchange(&mut client, b"one").await.unwrap(), b"one");
        proxy.partition(true);
        let lost = tokio::time::timeout(Duration::from_millis(300), exchange(&mut client, b"two"));
        assert!(lost.await.is_err(), "nothing comes back while partitioned");
        proxy.partition(false);
        assert_eq!(exchange(&mut client, b"six").await.unwrap(), b"six");
    }

    #[tokio::test]
    async fn silenced_connections_stay_silent_and_new_ones_pass() {
        let proxy = ResetProxy::start(echo_server().await).await;
        let mut old = TcpStream::connect(proxy.address()).await.unwrap();
        assert_eq!(exchange(&mut old, b"one").await.unwrap(), b"one");
        assert_eq!(proxy.in_flight(), 0, "answered");
        assert_eq!(proxy.silence_open(), 1);
        let lost = tokio::time::timeout(Duration::from_millis(300), exchange(&mut old, b"two"));
        assert!(
            lost.await.is_err(),
            "nothing comes back on a silenced connection"
        );
        let mut new = TcpStream::connect(proxy.address()).await.unwrap();
        assert_eq!(exchange(&mut new, b"three").await.unwrap(), b"three");
        let still = tokio::time::timeout(Duration::from_millis(300), exchange(&mut old, b"four"));
        assert!(still.await.is_err(), "silent for good");
        assert_eq!(proxy.open(), 2, "neither was closed");
        // A close from the client's side does not pass either; the connection stays open.
        old.shutdown().await.unwrap();
        let closed = tokio::time::timeout(Duration::from_millis(300), async {
            while proxy.open() == 2 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        assert!(
            closed.await.is_err(),
            "the silent connection stays open after a FIN"
        );
    }
}
