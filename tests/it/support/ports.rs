//! Loopback ports for servers a test starts: [`unused_port`] when the address must be
//! known before the server starts, [`HeldPort`] for a server that goes down and up again.
//! (A port bound, closed and bound again later is a race: another process may take it.)

/// A loopback port for a server whose address must be known before it starts (a
/// `public_url` written into its settings, a relay started by a script).
///
/// Binding port 0 and closing the socket again leaves the port free for anyone: under a
/// loaded CI machine another test's server (bound to port 0) or an outgoing connection can
/// take it before the intended server binds it. Ports below the kernel's ephemeral range
/// are never handed out that way, and this process hands each one out once; the port is
/// checked free when handed out.
pub fn unused_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let ephemeral_floor: u32 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768);
    let (low, high) = (
        ephemeral_floor.saturating_sub(12_000).max(1024),
        ephemeral_floor,
    );
    // A random start, so two test runs on one machine (other worktrees) rarely meet.
    let _ = NEXT.compare_exchange(
        0,
        rand::random_range(0..high - low),
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..(high - low) {
        let port = (low + NEXT.fetch_add(1, Ordering::SeqCst) % (high - low)) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {low}..{high}");
}

/// A loopback port this test keeps for itself while nothing listens on it: connections
/// to it are refused (a server that is down), and no other process can bind it, so it
/// can be brought up again with [`HeldPort::listen`] later. (Closing a listener and
/// binding its port again later is a race: another process may take the port meanwhile.)
pub struct HeldPort {
    addr: std::net::SocketAddr,
    // Bound with SO_REUSEPORT and never listening: it keeps the port without accepting.
    _hold: tokio::net::TcpSocket,
}

impl HeldPort {
    pub fn new() -> HeldPort {
        let hold = Self::socket();
        hold.bind(([127, 0, 0, 1], 0).into()).unwrap();
        HeldPort {
            addr: hold.local_addr().unwrap(),
            _hold: hold,
        }
    }

    fn socket() -> tokio::net::TcpSocket {
        let s = tokio::net::TcpSocket::new_v4().unwrap();
        s.set_reuseport(true).unwrap();
        s
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// A listener on this port (up); dropping it takes the port down again, still held.
    pub fn listen(&self) -> tokio::net::TcpListener {
        let s = Self::socket();
        s.bind(self.addr).unwrap();
        s.listen(1024).unwrap()
    }
}
