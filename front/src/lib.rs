//! The WASM client's entry point: the one function the generated JavaScript calls. Everything
//! it runs lives in the loopwatch crate; this crate exists so the wasm is linked as a cdylib
//! alone, which is what lets Cargo apply link-time optimisation to it.

/// Hydrates the server-rendered page.
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(loopwatch::app::App);
}
