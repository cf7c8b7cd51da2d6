//! The session's rights on the page: asked once per tab (`whoami`) and read by every view that
//! shows a control. Until the answer comes (and on the server's render) nothing is allowed, so
//! a viewer never sees a control flash by; the server refuses a viewer's calls regardless.
//! A plain signal, not a resource: a resource read inside a page's `Suspense` would hold the
//! server's render back for an answer only the browser asks for.

use leptos::prelude::*;

use crate::model::access::Access;

/// The answer to `whoami`, shared by the tab's views.
#[derive(Clone, Copy)]
struct SessionAccess(RwSignal<Option<Access>>);

/// Asks the server who this tab is (in the browser); call once, in the app's root.
pub fn provide_access() {
    let known = RwSignal::new(None);
    #[cfg(feature = "hydrate")]
    leptos::task::spawn_local(async move {
        if let Ok(access) = crate::api::whoami().await {
            known.set(Some(access));
        }
    });
    provide_context(SessionAccess(known));
}

/// The session's rights once known.
pub fn access() -> Signal<Option<Access>> {
    let known = use_context::<SessionAccess>();
    Signal::derive(move || known.and_then(|SessionAccess(access)| access.get()))
}

/// Whether this tab may act (start, stop, edit, archive, share): wrap every control in
/// `let act = can_act();` ... `<Show when=move || act.get()>`.
pub fn can_act() -> Signal<bool> {
    let known = access();
    // "No" until this view has hydrated: the server rendered no controls, and controls that
    // appeared while the page hydrates (when the answer comes first) would not match the
    // server's HTML, and hydration would fail.
    let hydrated = RwSignal::new(false);
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| hydrated.set(true));
    Signal::derive(move || {
        hydrated.get() && known.with(|a| a.as_ref().is_some_and(Access::may_act))
    })
}
