//! Context files rendered as Markdown, safely: raw HTML in them is shown as text, links keep
//! only web and relative addresses, and images become links (nothing is loaded from outside).

use pulldown_cmark::{CowStr, Event, LinkType, Options, Parser, Tag, TagEnd};

/// Markdown bigger than this is cut before rendering (a context file is kept to 256 KiB).
const MAX_MARKDOWN_BYTES: usize = 512 * 1024;

/// The HTML for `markdown`, safe to set as an element's inner HTML.
pub fn render(markdown: &str) -> String {
    let mut end = markdown.len().min(MAX_MARKDOWN_BYTES);
    while !markdown.is_char_boundary(end) {
        end -= 1;
    }
    let options =
        Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS;
    let events = Parser::new_ext(&markdown[..end], options).map(sanitize);
    let mut html = String::with_capacity(end + end / 4);
    pulldown_cmark::html::push_html(&mut html, events);
    html
}

fn sanitize(event: Event<'_>) -> Event<'_> {
    match event {
        // Shown as written, escaped by the renderer like any text.
        Event::Html(html) | Event::InlineHtml(html) => Event::Text(html),
        Event::Start(Tag::Link {
            link_type,
            dest_url,
            title,
            id,
        }) => Event::Start(Tag::Link {
            link_type,
            dest_url: safe_url(dest_url),
            title,
            id,
        }),
        Event::Start(Tag::Image {
            dest_url,
            title,
            id,
            ..
        }) => Event::Start(Tag::Link {
            link_type: LinkType::Inline,
            dest_url: safe_url(dest_url),
            title,
            id,
        }),
        Event::End(TagEnd::Image) => Event::End(TagEnd::Link),
        other => other,
    }
}

/// Web and relative addresses pass; anything else (`javascript:`, `data:`, ...) becomes `#`.
fn safe_url(url: CowStr<'_>) -> CowStr<'_> {
    let lower = url.trim().to_ascii_lowercase();
    let scheme = lower
        .split_once(':')
        .filter(|(scheme, _)| !scheme.contains(['/', '?', '#']))
        .map(|(scheme, _)| scheme);
    match scheme {
        None | Some("http" | "https" | "mailto") => url,
        Some(_) => CowStr::Borrowed("#"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_renders_and_raw_html_is_text() {
        let html = render("## Output: pytest\n\n```\n12 passed\n```\n\n<script>alert(1)</script>\n\nok <b onclick=x>bold</b>\n");
        assert!(html.contains("<h2>Output: pytest</h2>"), "{html}");
        assert!(html.contains("<code>12 passed\n</code>"), "{html}");
        assert!(!html.contains("<script"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(!html.contains("<b "), "{html}");
    }

    #[test]
    fn only_safe_links_survive_and_images_load_nothing() {
        let html = render("[a](javascript:alert(1)) [b](https://x.example/) [c](docs/a.md) [d](JaVaScRiPt:x) ![i](https://x.example/p.png)");
        assert!(!html.to_lowercase().contains("javascript:"), "{html}");
        assert!(html.contains(r#"href="https://x.example/""#), "{html}");
        assert!(html.contains(r#"href="docs/a.md""#), "{html}");
        assert!(!html.contains("<img"), "{html}");
    }

    #[test]
    fn huge_or_odd_input_does_not_panic() {
        let text = "é".repeat(MAX_MARKDOWN_BYTES);
        assert!(!render(&text).is_empty());
        assert_eq!(render(""), "");
    }
}
