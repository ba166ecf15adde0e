//! A client over QUIC: opens connections when the sans-IO [`Client`] asks, feeds it
//! what arrives and the time, and sends what it says. The host supplies the game
//! loop's part (stepping, input, events) as a callback after every round. A server
//! whose certificate the client's [`Trust`] refuses stops the client for good.

use bytemuck::Pod;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tickstep_engine::Input;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};

use super::connection::{
    CloseReason, Connection, Delivery, INBOUND_QUEUE, Inbound, TransportConfig,
};
use super::tls::{SetupError, Trust, quic_transport};
use tickstep_session::{Client, ClientMessage, ClientTransmit, ServerMessage, decode, encode_into};

/// How long a connection attempt takes to fail while the network is down.
const UNREACHABLE_AFTER: Duration = Duration::from_secs(1);

/// Rewrites each outgoing message into what is really sent (fault injection).
pub type Tamper = Box<dyn FnMut(ClientMessage) -> Vec<ClientMessage>>;

/// A QUIC client endpoint on `bind` (port 0: any) that trusts servers by `trust`.
pub fn client_endpoint(
    bind: SocketAddr,
    trust: &Trust,
    transport: &TransportConfig,
) -> Result<quinn::Endpoint, SetupError> {
    let quic = quic_transport(transport.timeout, Some(transport.heartbeat));
    let config = trust.client_config(Arc::new(quic))?;
    let mut endpoint = quinn::Endpoint::client(bind)
        .map_err(|e| SetupError::Socket(format!("cannot open a UDP socket on {bind}: {e}")))?;
    endpoint.set_default_client_config(config);
    Ok(endpoint)
}

/// A [`Client`] driven over QUIC.
pub struct NetClient<G, I> {
    /// The session client.
    pub client: Client<G, I>,
    server: String,
    transport: TransportConfig,
    trust: Trust,
    bind: Option<SocketAddr>,
    tamper: Option<Tamper>,
    /// Made at the first connection (it needs the runtime).
    endpoint: Option<quinn::Endpoint>,
    untrusted: Option<String>,
    epoch: Instant,
    conn: Option<Connection>,
    next_id: u64,
    inbound_tx: mpsc::Sender<Inbound>,
    inbound: mpsc::Receiver<Inbound>,
    online: bool,
    busy: bool,
    /// Bytes of encoded messages sent so far.
    pub bytes_sent: u64,
    /// Each message is encoded here, then copied once into what the connection sends.
    encoded: Vec<u8>,
}

impl<G: Pod, I: Input> NetClient<G, I> {
    /// Drives `client` against the server at `server` (host:port), which must prove
    /// itself by `trust`; session time counts from `epoch`.
    pub fn new(
        client: Client<G, I>,
        server: &str,
        trust: &Trust,
        transport: TransportConfig,
        epoch: Instant,
    ) -> Result<NetClient<G, I>, SetupError> {
        let (inbound_tx, inbound) = mpsc::channel(INBOUND_QUEUE);
        // Checked now, so a bad trust setting fails here rather than at connecting.
        trust.client_config(Arc::new(quinn::TransportConfig::default()))?;
        Ok(NetClient {
            client,
            server: server.to_string(),
            transport,
            trust: trust.clone(),
            bind: None,
            tamper: None,
            endpoint: None,
            untrusted: None,
            epoch,
            conn: None,
            next_id: 0,
            inbound_tx,
            inbound,
            online: true,
            busy: false,
            bytes_sent: 0,
            encoded: Vec::new(),
        })
    }

    /// Why the server was not trusted, if it was not: the client then stopped.
    pub fn untrusted(&self) -> Option<&str> {
        self.untrusted.as_deref()
    }

    /// Sends from `addr` (port 0: any) instead of the unspecified address.
    pub fn bind(&mut self, addr: SocketAddr) {
        self.bind = Some(addr);
        self.endpoint = None;
    }

    /// Rewrites every outgoing message with `tamper` before it is sent: a hostile or
    /// broken client, for tests.
    pub fn set_tamper(&mut self, tamper: Tamper) {
        self.tamper = Some(tamper);
    }

    /// The QUIC endpoint, made on first use; the reason when no UDP socket can be had.
    fn endpoint(&mut self) -> Result<quinn::Endpoint, String> {
        if let Some(endpoint) = &self.endpoint {
            return Ok(endpoint.clone());
        }
        let any: SocketAddr = if self.server.starts_with('[') {
            (Ipv6Addr::UNSPECIFIED, 0).into()
        } else {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        };
        let endpoint = client_endpoint(self.bind.unwrap_or(any), &self.trust, &self.transport)
            .map_err(|e| e.to_string())?;
        self.endpoint = Some(endpoint.clone());
        Ok(endpoint)
    }

    /// Session time now.
    pub fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    /// Takes the network down (every connection attempt fails) or brings it back.
    pub fn set_online(&mut self, online: bool) {
        self.online = online;
    }

    /// Cuts the current connection without a goodbye, as a network failure would.
    pub fn cut(&mut self) {
        if let Some(conn) = self.conn.take() {
            conn.cut();
            let now = self.now();
            self.client.handle_connection_lost(now, "connection cut");
            self.pump();
        }
    }

    /// Replaces the session client (an app restart): the old connection is cut.
    pub fn replace(&mut self, client: Client<G, I>) -> Client<G, I> {
        if let Some(conn) = self.conn.take() {
            conn.cut();
        }
        std::mem::replace(&mut self.client, client)
    }

    /// Does what the client asked: connect, send or close.
    pub fn pump(&mut self) {
        let now = self.now();
        while let Some(transmit) = self.client.poll_transmit(now) {
            match transmit {
                ClientTransmit::Connect => {
                    if let Some(old) = self.conn.take() {
                        old.close("reconnecting");
                    }
                    self.next_id += 1;
                    let id = self.next_id;
                    let inbound = self.inbound_tx.clone();
                    let endpoint = self.endpoint();
                    if let (true, Ok(endpoint)) = (self.online, &endpoint) {
                        self.conn = Some(Connection::connect(
                            id,
                            endpoint.clone(),
                            self.server.clone(),
                            inbound,
                            self.transport,
                        ));
                    } else {
                        let why = endpoint
                            .err()
                            .unwrap_or_else(|| "network unreachable".into());
                        tokio::spawn(async move {
                            tokio::time::sleep(UNREACHABLE_AFTER).await;
                            let reason = CloseReason::Lost(why);
                            let _ = inbound.send(Inbound::Closed { conn: id, reason }).await;
                        });
                    }
                }
                ClientTransmit::Send(message) => {
                    let messages = match &mut self.tamper {
                        Some(tamper) => tamper(message),
                        None => vec![message],
                    };
                    for message in messages {
                        self.send(&message);
                    }
                }
                ClientTransmit::Close => {
                    if let Some(conn) = self.conn.take() {
                        conn.close("the client left");
                    }
                }
            }
        }
    }

    /// Waits for the next message, connection loss or timer and handles it, then calls
    /// `host` (step, input, events) and sends what came of it. `host` returns whether
    /// it has more work pending (a catch-up cut short by its budget), in which case the
    /// next round does not wait.
    pub async fn round(&mut self, host: &mut impl FnMut(&mut Client<G, I>, Duration) -> bool) {
        let wake = match (self.busy, self.client.poll_timeout()) {
            (true, _) => Instant::now(),
            (false, Some(at)) => self.epoch + at,
            (false, None) => Instant::now() + Duration::from_millis(100),
        };
        tokio::select! {
            event = self.inbound.recv() => {
                let now = self.now();
                match event {
                    Some(Inbound::Message { conn, bytes }) if self.current(conn) => {
                        match decode::<ServerMessage>(&bytes) {
                            Ok(message) => self.client.handle_message(now, message),
                            Err(e) => {
                                if let Some(conn) = self.conn.take() {
                                    conn.close("malformed message");
                                }
                                self.client.handle_connection_lost(now, &format!("malformed message: {e}"));
                            }
                        }
                    }
                    Some(Inbound::Closed { conn, reason }) if self.current(conn) => {
                        self.conn = None;
                        let what = match reason {
                            CloseReason::Goodbye(why) => format!("the server closed the connection: {why}"),
                            CloseReason::Lost(why) => why,
                            CloseReason::Untrusted(why) => {
                                self.untrusted = Some(why.clone());
                                why
                            }
                        };
                        self.client.handle_connection_lost(now, &what);
                        if self.untrusted.is_some() {
                            self.client.cancel();
                        }
                    }
                    _ => {}
                }
            }
            _ = sleep_until(wake) => {}
        }
        let now = self.now();
        self.client.handle_timeout(now);
        self.busy = host(&mut self.client, now);
        self.pump();
    }

    fn send(&mut self, message: &ClientMessage) {
        let delivery = match message {
            ClientMessage::Update { .. } => Delivery::Unreliable,
            _ => Delivery::Reliable,
        };
        encode_into(message, &mut self.encoded);
        self.bytes_sent += self.encoded.len() as u64;
        // A spent budget means the server stopped reading: the silence timeout will
        // find it. A closed connection reports its own end.
        if let Some(conn) = &self.conn {
            let _ = conn.send(&self.encoded, delivery);
        }
    }

    fn current(&self, conn: u64) -> bool {
        conn == self.next_id
    }
}

/// Steps `client` in small batches until `slice` of wall-clock time is spent or nothing
/// is left to step; returns whether more is pending. A host on one thread with other
/// work (a server, other clients, a UI) uses it so a long catch-up never starves them.
/// The clock only decides where a slice ends, never what a tick computes.
pub fn advance_for<G: Pod, I: Input>(
    client: &mut Client<G, I>,
    now: Duration,
    slice: Duration,
) -> bool {
    const BATCH: u64 = 8;
    let began = std::time::Instant::now();
    loop {
        if client.advance(now, BATCH) < BATCH {
            return false;
        }
        if began.elapsed() >= slice {
            return true;
        }
    }
}
