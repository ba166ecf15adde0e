//! The server over TCP: accepts connections, feeds what they say to a sans-IO
//! [`Server`], sends what it says, and runs its timers, until shut down.

use bytemuck::Pod;
use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};

use super::connection::{CloseReason, Connection, INBOUND_QUEUE, Inbound, Queued, TransportConfig};
use tickstep_session::{ClientMessage, ConnId, Server, ServerTransmit, decode, encode};

/// What the server loop tells its host after every round of work.
pub trait ServerHost<I> {
    /// Called after each round with the server and the time since the loop started.
    fn after_round(&mut self, server: &mut Server<I>, now: Duration);
    /// A connection ended or was refused at the transport level (logged by the host).
    fn connection_note(&mut self, conn: u64, note: &str);
    /// A message of `bytes` was queued for sending.
    fn sent(&mut self, _bytes: usize) {}
}

/// What woke the server loop.
enum Wake {
    Accepted(std::io::Result<(tokio::net::TcpStream, std::net::SocketAddr)>),
    Inbound(Option<Inbound>),
    Timer,
}

/// Serves `server` on `listener` until `shutdown` completes, then says goodbye to
/// every connection. Time for the session is measured from `epoch`.
pub async fn serve<I: Pod + PartialEq>(
    listener: TcpListener,
    mut server: Server<I>,
    transport: TransportConfig,
    epoch: Instant,
    host: &mut impl ServerHost<I>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<Server<I>> {
    let (inbound_tx, mut inbound) = mpsc::channel(INBOUND_QUEUE);
    let mut conns: BTreeMap<u64, Connection> = BTreeMap::new();
    let mut next_id = 0u64;
    tokio::pin!(shutdown);
    loop {
        let wake = server
            .poll_timeout()
            .map_or(Instant::now() + Duration::from_secs(1), |at| epoch + at);
        let woke = tokio::select! {
            accepted = listener.accept() => Wake::Accepted(accepted),
            event = inbound.recv() => Wake::Inbound(event),
            _ = sleep_until(wake) => Wake::Timer,
            _ = &mut shutdown => break,
        };
        // The time is read after the wait, so what arrived is handled at its own time.
        let now = epoch.elapsed();
        match woke {
            Wake::Accepted(Ok((stream, _))) => {
                let _ = stream.set_nodelay(true);
                next_id += 1;
                conns.insert(
                    next_id,
                    Connection::spawn(next_id, stream, inbound_tx.clone(), transport),
                );
            }
            Wake::Accepted(Err(e)) => host.connection_note(0, &format!("accept failed: {e}")),
            // What a connection said after the server closed it no longer counts.
            Wake::Inbound(Some(Inbound::Message { conn, .. })) if !conns.contains_key(&conn) => {}
            Wake::Inbound(Some(Inbound::Message { conn, bytes })) => {
                match decode::<ClientMessage>(&bytes) {
                    Ok(message) => server.handle_message(now, ConnId(conn), message),
                    Err(e) => {
                        host.connection_note(conn, &format!("closed: {e}"));
                        if let Some(connection) = conns.remove(&conn) {
                            connection.close("malformed message");
                        }
                        server.handle_disconnect(now, ConnId(conn));
                    }
                }
            }
            Wake::Inbound(Some(Inbound::Closed { conn, reason })) => {
                conns.remove(&conn);
                let note = match &reason {
                    CloseReason::Goodbye(why) => format!("closed by the client: {why}"),
                    CloseReason::Lost(why) => format!("lost: {why}"),
                };
                host.connection_note(conn, &note);
                server.handle_disconnect(now, ConnId(conn));
            }
            Wake::Inbound(None) | Wake::Timer => {}
        }
        // Timers due by now run in this turn, whatever woke the loop.
        if server.poll_timeout().is_some_and(|at| at <= now) {
            server.handle_timeout(now);
        }
        while let Some(transmit) = server.poll_transmit() {
            match transmit {
                ServerTransmit::Send { to, message } => {
                    let bytes = encode(&message);
                    host.sent(bytes.len());
                    // A closed connection's end arrives as an inbound event, after
                    // whatever it said last.
                    let queued = conns.get(&to.0).map(|c| c.send(bytes));
                    if queued == Some(Queued::Full)
                        && let Some(slow) = conns.remove(&to.0)
                    {
                        host.connection_note(to.0, "closed: too far behind");
                        slow.cut();
                        server.handle_disconnect(now, to);
                    }
                }
                ServerTransmit::Close { conn } => {
                    if let Some(connection) = conns.remove(&conn.0) {
                        connection.close("closed by the server");
                    }
                }
            }
        }
        host.after_round(&mut server, epoch.elapsed());
    }
    for (_, connection) in std::mem::take(&mut conns) {
        connection.close("the server is shutting down");
    }
    // Give the goodbyes a moment to leave.
    tokio::time::sleep(Duration::from_millis(50)).await;
    Ok(server)
}
