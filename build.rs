//! Embeds the browser client in `tickstep` when it has been built: `web/build` writes
//! the wasm module and its JavaScript glue to `web/pkg`, and this sets the `web_client`
//! cfg so `tickstep serve --web` serves them. Without them the page says how to build
//! them; nothing else changes.

use std::path::Path;

fn main() {
    println!("cargo:rustc-check-cfg=cfg(web_client)");
    println!("cargo:rerun-if-changed=web/pkg");
    let built = ["web/pkg/tickstep_web.js", "web/pkg/tickstep_web_bg.wasm"];
    if built.iter().all(|file| Path::new(file).is_file()) {
        println!("cargo:rustc-cfg=web_client");
    }
}
