// The tickstep arena in a browser: the session client and the simulation run in
// wasm (tickstep-web); this page owns the WebSocket, the clock, the keyboard and
// the drawing. ?room=NAME watches room NAME without a seat; ?room=NAME&play takes one.
import init, { WebClient } from "/pkg/tickstep_web.js";

const params = new URLSearchParams(location.search);
const room = params.get("room") ?? "main";
const play = params.has("play");
const $ = (id) => document.getElementById(id);
const status = $("status");
const now = () => performance.now();

function setState(state, why) {
  status.dataset.state = state;
  $("state").textContent = why ? `${state}: ${why}` : state;
}

function logLine(line) {
  const item = document.createElement("li");
  if (/lost|reconnect|cut/.test(line)) item.className = "drop";
  else if (/snapshot|resynced/.test(line)) item.className = "snapshot";
  else if (/caught up|joined|started/.test(line)) item.className = "back";
  item.textContent = line;
  $("timeline").append(item);
  item.scrollIntoView({ block: "nearest" });
  if (line.includes("resynced")) status.dataset.resyncs = String(Number(status.dataset.resyncs) + 1);
}

// Keys held, as the bits tickstep-web's Keys reads.
const KEYS = {
  ArrowUp: 1, KeyW: 1, ArrowDown: 2, KeyS: 2, ArrowLeft: 4, KeyA: 4, ArrowRight: 8, KeyD: 8,
  Space: 16, KeyN: 32,
};
let keys = 0;
if (play) {
  addEventListener("keydown", (e) => { if (KEYS[e.code]) { keys |= KEYS[e.code]; e.preventDefault(); } });
  addEventListener("keyup", (e) => { if (KEYS[e.code]) { keys &= ~KEYS[e.code]; e.preventDefault(); } });
  addEventListener("blur", () => { keys = 0; });
  $("keys").textContent = "Arrows or WASD steer, Space fires, N fires a nova.";
}

async function main() {
  $("room").textContent = room;
  if (!play) $("keys").textContent = "Watching without a seat: add &play to the address to take one.";
  await init();
  const game = await (await fetch("/game.json")).json();
  const client = new WebClient(room, game.units, game.players, game.seed, game.app_version, game.timeout_ms, !play);
  const tickMs = 1000 / game.tick_rate;
  const socketUrl = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;

  // The current WebSocket and what waits for it to open.
  let socket = null;
  let waiting = [];

  function open() {
    drop(null);
    const ws = new WebSocket(socketUrl);
    ws.binaryType = "arraybuffer";
    socket = ws;
    waiting = [];
    ws.onopen = () => { if (socket === ws) { for (const bytes of waiting) ws.send(bytes); waiting = []; } };
    ws.onmessage = (e) => {
      if (socket !== ws) return;
      client.receive(now(), new Uint8Array(e.data));
      pump();
    };
    ws.onclose = (e) => {
      if (socket !== ws) return;
      socket = null;
      const goodbye = e.code === 1000 && e.reason !== "";
      client.connection_lost(now(), goodbye ? e.reason : `connection lost (close code ${e.code})`, goodbye);
      pump();
    };
  }

  // Closes the current socket: with a goodbye when `reason` is given, else cut.
  function drop(reason) {
    const ws = socket;
    socket = null;
    if (!ws) return;
    ws.onclose = null;
    if (reason) ws.close(1000, reason); else ws.close();
  }

  function pump() {
    for (let t = client.next_transmit(); t; t = client.next_transmit()) {
      const kind = t.kind;
      if (kind === "connect") open();
      else if (kind === "close") drop("the client left");
      else if (kind === "cut") drop(null);
      else if (socket && socket.readyState === WebSocket.OPEN) socket.send(t.bytes);
      else if (socket) waiting.push(t.bytes);
      t.free();
    }
    for (let line = client.next_timeline(); line !== undefined; line = client.next_timeline()) logLine(line);
  }

  $("cut").onclick = () => {
    if (!socket) return;
    drop(null);
    client.connection_lost(now(), "connection cut by the visitor", false);
    pump();
  };

  // Simulation: timers, stepping and input, well within a tick.
  let over = false;
  function update() {
    if (over) return;
    client.set_keys(keys);
    const busy = client.update(now());
    pump();
    const state = client.state();
    if (state === "ended" || state === "stopped") over = true;
    setTimeout(update, busy ? 0 : 4);
  }

  // Drawing: between the last two ticks shown, positions are interpolated.
  const canvas = $("arena");
  const ctx = canvas.getContext("2d");
  const size = client.arena_size();
  const scale = canvas.width / size;
  let shown = { tick: -1, at: 0, view: new Int32Array(0) };
  let before = new Map();
  const COLOURS = ["#58a6ff", "#3fb950", "#d29922", "#db61a2", "#a371f7", "#f0883e", "#39c5cf", "#ff7b72"];

  function draw() {
    const tick = client.tick();
    if (tick !== shown.tick) {
      before = new Map();
      const v = shown.view;
      for (let i = 0; i < v.length; i += 6) before.set(v[i], [v[i + 1], v[i + 3], v[i + 4]]);
      shown = { tick, at: now(), view: client.view() };
    }
    const t = Math.min(1, (now() - shown.at) / tickMs);
    ctx.fillStyle = "#010409";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    const me = client.player();
    const v = shown.view;
    for (let i = 0; i < v.length; i += 6) {
      const [index, generation, kind, x1, y1, player] = [v[i], v[i + 1], v[i + 2], v[i + 3], v[i + 4], v[i + 5]];
      let x = x1, y = y1;
      const was = before.get(index);
      if (was && was[0] === generation && Math.abs(was[1] - x1) < size / 4 && Math.abs(was[2] - y1) < size / 4) {
        // Drawn one tick behind, moving towards the newest verified position.
        x = was[1] + (x1 - was[1]) * t;
        y = was[2] + (y1 - was[2]) * t;
      }
      const px = x * scale, py = y * scale;
      if (kind === 1) { ctx.fillStyle = "#6e7681"; ctx.fillRect(px - 1.5, py - 1.5, 3, 3); }
      else if (kind === 4 || kind === 5) { ctx.fillStyle = kind === 5 ? "#f2cc60" : "#f85149"; ctx.fillRect(px - 1, py - 1, 2, 2); }
      else {
        ctx.fillStyle = kind === 3 ? "#30363d" : COLOURS[player % COLOURS.length];
        ctx.beginPath(); ctx.arc(px, py, player === me ? 7 : 5, 0, 2 * Math.PI); ctx.fill();
        if (player === me && kind === 2) { ctx.strokeStyle = "#ffffff"; ctx.lineWidth = 2; ctx.stroke(); }
      }
    }
    const state = client.state();
    setState(state, client.stopped_because());
    status.dataset.tick = String(tick);
    status.dataset.checksum = client.checksum();
    status.dataset.player = String(me);
    $("tick").textContent = String(tick);
    $("checksum").textContent = status.dataset.checksum;
    $("player").textContent = me >= 0 ? String(me) : play ? "–" : "watching";
    $("rtt").textContent = `${client.rtt_ms().toFixed(1)} ms`;
    $("lead").textContent = `${client.input_lead()} ticks`;
    requestAnimationFrame(draw);
  }

  client.connect(now());
  pump();
  update();
  requestAnimationFrame(draw);
}

main().catch((e) => { setState("stopped", String(e)); console.error(e); });
