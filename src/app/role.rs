//! The session's rights on the page: asked once per tab (`whoami`) and read by every view that
//! shows a control. Until the answer comes (and on the server's render) nothing is allowed, so
//! a viewer never sees a control flash by; the server refuses a viewer's calls regardless.

use leptos::prelude::*;

use crate::api::{whoami, ApiError};
use crate::model::access::Access;

/// The answer to `whoami`, shared by the tab's views.
#[derive(Clone, Copy)]
struct SessionAccess(LocalResource<Result<Access, ApiError>>);

/// Asks the server who this tab is; call once, in the app's root.
pub fn provide_access() {
    provide_context(SessionAccess(LocalResource::new(whoami)));
}

/// The session's rights once known.
pub fn access() -> Signal<Option<Access>> {
    let known = use_context::<SessionAccess>();
    Signal::derive(move || {
        known
            .and_then(|SessionAccess(r)| r.get())
            .and_then(Result::ok)
    })
}

/// Whether this tab may act (start, stop, edit, archive, share): wrap every control in
/// `let act = can_act();` ... `<Show when=move || act.get()>`.
pub fn can_act() -> Signal<bool> {
    let known = access();
    Signal::derive(move || known.with(|a| a.as_ref().is_some_and(Access::may_act)))
}
