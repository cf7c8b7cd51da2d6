//! `whoami`: the caller's role and project scope, so the page shows controls only to those who
//! may use them (the server refuses the others' calls whatever the page shows).

use leptos::prelude::*;
use leptos::server_fn::codec::Json;

use crate::model::{access::Access, api_types::ApiError};

#[server(prefix = "/api", endpoint = "whoami", input = Json)]
pub async fn whoami() -> Result<Access, ApiError> {
    Ok(super::ssr::actor()?.access)
}
