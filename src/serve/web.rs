//! The files `tickstep serve --web` serves: the page, its script and style, the
//! browser client (wasm and its glue, embedded when `web/build` built them before
//! this binary), and `/game.json`, the arena the rooms host (what the page's client
//! needs to make the same initial frame).

use bytes::Bytes;
use serde::Serialize;
use std::time::Duration;
use tickstep_arena::ArenaConfig;
use tickstep_net::{Page, Pages};

/// The browser client as `web/build` left it, if it did.
#[cfg(web_client)]
const CLIENT: Option<(&[u8], &[u8])> = Some((
    include_bytes!("../../web/pkg/tickstep_web.js"),
    include_bytes!("../../web/pkg/tickstep_web_bg.wasm"),
));
#[cfg(not(web_client))]
const CLIENT: Option<(&[u8], &[u8])> = None;

/// Shown instead of the page by a binary built without the browser client.
const NOT_BUILT: &str = "<!doctype html><meta charset=\"utf-8\"><title>tickstep</title>\
<p>This tickstep was built without the browser client. Run <code>web/build</code>, then \
build tickstep again.</p>\n";

/// What `/game.json` says.
#[derive(Serialize)]
struct GameJson<'a> {
    units: u32,
    players: u8,
    /// Decimal: JavaScript numbers cannot hold every u64.
    seed: String,
    app_version: &'a str,
    tick_rate: u32,
    timeout_ms: u64,
}

/// Whether this binary carries the browser client.
pub fn client_built() -> bool {
    CLIENT.is_some()
}

/// The pages for rooms hosting `config` at `tick_rate` for clients of `app_version`,
/// whose server takes a client silent for `timeout` as lost.
pub fn pages(config: &ArenaConfig, tick_rate: u32, app_version: &str, timeout: Duration) -> Pages {
    let page = |content_type, body: &'static [u8]| Page {
        content_type,
        body: Bytes::from_static(body),
    };
    let html = "text/html; charset=utf-8";
    let game = GameJson {
        units: config.units,
        players: config.players,
        seed: config.seed.to_string(),
        app_version,
        tick_rate,
        timeout_ms: timeout.as_millis().min(u64::MAX.into()) as u64,
    };
    let game = serde_json::to_vec(&game).unwrap_or_default();
    let mut pages = Pages::new();
    pages.insert(
        "/game.json".into(),
        Page {
            content_type: "application/json",
            body: game.into(),
        },
    );
    let Some((glue, wasm)) = CLIENT else {
        pages.insert("/".into(), page(html, NOT_BUILT.as_bytes()));
        return pages;
    };
    let index = include_bytes!("../../web/page/index.html");
    pages.insert("/".into(), page(html, index));
    pages.insert("/index.html".into(), page(html, index));
    let script = "text/javascript; charset=utf-8";
    pages.insert(
        "/app.js".into(),
        page(script, include_bytes!("../../web/page/app.js")),
    );
    let style = include_bytes!("../../web/page/style.css");
    pages.insert("/style.css".into(), page("text/css; charset=utf-8", style));
    pages.insert("/pkg/tickstep_web.js".into(), page(script, glue));
    pages.insert(
        "/pkg/tickstep_web_bg.wasm".into(),
        page("application/wasm", wasm),
    );
    pages
}
