//! BuildRunner builds in the UI: the dashboard card's build lines and kind badges, and the
//! project page's build tab.

mod card;
mod markdown;
mod page;

pub use card::{BuildCardLines, KindBadges};
pub use page::BuildTab;
