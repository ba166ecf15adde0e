//! A client over TCP: opens connections when the sans-IO [`Client`] asks, feeds it
//! what arrives and the time, and sends what it says. The host supplies the game
//! loop's part (stepping, input, events) as a callback after every round.

use bytemuck::Pod;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};

use super::connection::{CloseReason, Connection, INBOUND_QUEUE, Inbound, TransportConfig};
use tickstep_session::{Client, ClientTransmit, ServerMessage, decode, encode};

/// How long a connection attempt takes to fail while the network is down.
const UNREACHABLE_AFTER: Duration = Duration::from_secs(1);

/// A [`Client`] driven over TCP.
pub struct NetClient<G, I> {
    /// The session client.
    pub client: Client<G, I>,
    server: String,
    transport: TransportConfig,
    epoch: Instant,
    conn: Option<Connection>,
    next_id: u64,
    inbound_tx: mpsc::Sender<Inbound>,
    inbound: mpsc::Receiver<Inbound>,
    online: bool,
    busy: bool,
    /// Bytes of encoded messages sent so far.
    pub bytes_sent: u64,
}

impl<G: Pod, I: Pod + PartialEq> NetClient<G, I> {
    /// Drives `client` against the server at `server`; session time counts from `epoch`.
    pub fn new(
        client: Client<G, I>,
        server: &str,
        transport: TransportConfig,
        epoch: Instant,
    ) -> NetClient<G, I> {
        let (inbound_tx, inbound) = mpsc::channel(INBOUND_QUEUE);
        NetClient {
            client,
            server: server.to_string(),
            transport,
            epoch,
            conn: None,
            next_id: 0,
            inbound_tx,
            inbound,
            online: true,
            busy: false,
            bytes_sent: 0,
        }
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
                    if self.online {
                        self.conn = Some(Connection::connect(
                            id,
                            self.server.clone(),
                            inbound,
                            self.transport,
                        ));
                    } else {
                        tokio::spawn(async move {
                            tokio::time::sleep(UNREACHABLE_AFTER).await;
                            let reason = CloseReason::Lost("network unreachable".into());
                            let _ = inbound.send(Inbound::Closed { conn: id, reason }).await;
                        });
                    }
                }
                ClientTransmit::Send(message) => {
                    let bytes = encode(&message);
                    self.bytes_sent += bytes.len() as u64;
                    // A full queue means the server stopped reading: the silence
                    // timeout will find it. A closed connection reports its own end.
                    if let Some(conn) = &self.conn {
                        let _ = conn.send(bytes);
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
                        };
                        self.client.handle_connection_lost(now, &what);
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

    fn current(&self, conn: u64) -> bool {
        conn == self.next_id
    }
}

/// Steps `client` in small batches until `slice` of wall-clock time is spent or nothing
/// is left to step; returns whether more is pending. A host on one thread with other
/// work (a server, other clients, a UI) uses it so a long catch-up never starves them.
/// The clock only decides where a slice ends, never what a tick computes.
pub fn advance_for<G: Pod, I: Pod + PartialEq>(
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
