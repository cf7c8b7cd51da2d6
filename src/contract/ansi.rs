//! Terminal escape sequences, read by one grammar for two uses: [`strip_ansi`] removes them (the
//! server's log parsing, the browser's search text) and [`spans`] turns a line into styled runs
//! for the UI. Only SGR (`ESC [ ... m`) changes how text looks; every other sequence is dropped.
//! Basic colours become CSS classes (the theme picks them); 256-colour and truecolour values
//! become inline styles, since no stylesheet can list 16 million classes.

use std::borrow::Cow;

const ESC: u8 = 0x1B;
const BEL: u8 = 0x07;
const CR: u8 = b'\r';

/// One run of text with one style.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Span {
    pub text: String,
    /// Space-separated CSS classes (`ansi-bold ansi-fg-1`), "" for plain text.
    pub class: String,
    /// Inline CSS for colours without a class (`color:#ff0000;background-color:#00005f`), or "".
    pub style: String,
}

/// A terminal colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Colour {
    /// xterm palette index: 0..=15 are the theme's basic colours (30-37 give 0-7, 90-97 give
    /// 8-15), 16..=255 the fixed 6x6x6 cube and grey ramp.
    Indexed(u8),
    Rgb(u8, u8, u8),
}

impl Colour {
    /// The colour as RGB, or `None` for the 16 basic colours, whose RGB belongs to the theme.
    pub fn rgb(self) -> Option<(u8, u8, u8)> {
        match self {
            Colour::Indexed(index) => xterm_rgb(index),
            Colour::Rgb(red, green, blue) => Some((red, green, blue)),
        }
    }

    /// The basic-colour index (0..=15) that maps to a CSS class, if this is one.
    fn basic(self) -> Option<u8> {
        match self {
            Colour::Indexed(index) if index < 16 => Some(index),
            _ => None,
        }
    }
}

/// RGB of an xterm 256-colour palette entry, computed rather than tabulated; `None` below 16.
pub fn xterm_rgb(index: u8) -> Option<(u8, u8, u8)> {
    match index {
        0..=15 => None,
        16..=231 => {
            // Saturating ops only to keep overflow impossible by construction; the ranges of
            // the arms already keep every value within a byte.
            let cube = index.saturating_sub(16);
            // Cube levels are 0, 95, 135, 175, 215, 255: a jump from 0, then steps of 40.
            let level = |step: u8| {
                if step == 0 {
                    0
                } else {
                    step.saturating_mul(40).saturating_add(55)
                }
            };
            Some((level(cube / 36), level((cube / 6) % 6), level(cube % 6)))
        }
        _ => {
            let grey = index
                .saturating_sub(232)
                .saturating_mul(10)
                .saturating_add(8);
            Some((grey, grey, grey))
        }
    }
}

/// The SGR state: what the next character would look like.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Style {
    pub fg: Option<Colour>,
    pub bg: Option<Colour>,
    pub bold: bool,
    pub dim: bool,
    pub italic: bool,
    pub underline: bool,
    pub inverse: bool,
}

impl Style {
    /// Foreground and background as drawn: inverse swaps them here, not in the state, so that
    /// SGR 27 restores the original pair.
    fn drawn_colours(&self) -> (Option<Colour>, Option<Colour>) {
        if self.inverse {
            (self.bg, self.fg)
        } else {
            (self.fg, self.bg)
        }
    }

    /// CSS classes in a fixed order. `ansi-inverse` is present whenever inverse is on, so the
    /// stylesheet can swap the DEFAULT colours (a `None` side) that no class names; declare it
    /// before the colour classes so an explicit colour wins.
    pub fn class(&self) -> String {
        let mut classes: Vec<String> = Vec::new();
        let flags = [
            (self.bold, "ansi-bold"),
            (self.dim, "ansi-dim"),
            (self.italic, "ansi-italic"),
            (self.underline, "ansi-underline"),
            (self.inverse, "ansi-inverse"),
        ];
        for (on, name) in flags {
            if on {
                classes.push(name.to_owned());
            }
        }
        let (fg, bg) = self.drawn_colours();
        if let Some(index) = fg.and_then(Colour::basic) {
            classes.push(format!("ansi-fg-{index}"));
        }
        if let Some(index) = bg.and_then(Colour::basic) {
            classes.push(format!("ansi-bg-{index}"));
        }
        classes.join(" ")
    }

    /// Inline CSS for the colours that have no class.
    pub fn css(&self) -> String {
        let (fg, bg) = self.drawn_colours();
        let mut rules: Vec<String> = Vec::new();
        if let Some((red, green, blue)) = fg.and_then(Colour::rgb) {
            rules.push(format!("color:#{red:02x}{green:02x}{blue:02x}"));
        }
        if let Some((red, green, blue)) = bg.and_then(Colour::rgb) {
            rules.push(format!("background-color:#{red:02x}{green:02x}{blue:02x}"));
        }
        rules.join(";")
    }
}

/// Parses one line, starting from `style` and leaving in `style` the style in effect at its end
/// (so colours can carry over lines). A trailing `\n` or `\r\n` is dropped. A `\r` followed by
/// more text discards what came before it (progress bars redraw with `\r`); escape sequences
/// before it still change the style. Adjacent runs with the same look are merged; no span is empty.
/// Their text is [`strip_ansi`] of the line with that redraw rule applied.
pub fn spans(line: &str, style: &mut Style) -> Vec<Span> {
    let mut out: Vec<Span> = Vec::new();
    // Rendering a style allocates, so it is redone only when the style changed.
    let mut rendered: Option<(Style, String, String)> = None;
    let mut pending_return = false;
    for token in Tokens::new(without_newline(line)) {
        match token {
            Token::Text(text) => {
                if std::mem::take(&mut pending_return) {
                    out.clear();
                }
                let (class, css) = match &rendered {
                    Some((cached, class, css)) if cached == style => (class.clone(), css.clone()),
                    _ => {
                        let (class, css) = (style.class(), style.css());
                        rendered = Some((*style, class.clone(), css.clone()));
                        (class, css)
                    }
                };
                match out.last_mut() {
                    Some(last) if last.class == class && last.style == css => {
                        last.text.push_str(text);
                    }
                    _ => out.push(Span {
                        text: text.to_owned(),
                        class,
                        style: css,
                    }),
                }
            }
            Token::Sgr(params) => apply_sgr(params, style),
            Token::CarriageReturn => pending_return = true,
        }
    }
    out
}

/// Removes every terminal escape sequence: CSI (`ESC [` ... final byte), OSC and the other string
/// sequences (`ESC ]`, `ESC P`, `ESC X`, `ESC ^`, `ESC _`, ended by BEL or `ESC \`), `ESC` +
/// intermediates + final (such as `ESC ( B`), two-byte `ESC x`, and a lone `ESC`. Everything
/// else stays, `\r` and `\n` included (the redraw rule is [`spans`]' business). Borrows when the
/// line holds no ESC.
pub fn strip_ansi(line: &str) -> Cow<'_, str> {
    if !line.as_bytes().contains(&ESC) {
        return Cow::Borrowed(line);
    }
    let mut plain = String::with_capacity(line.len());
    for token in Tokens::new(line) {
        match token {
            Token::Text(text) => plain.push_str(text),
            Token::CarriageReturn => plain.push('\r'),
            Token::Sgr(_) => {}
        }
    }
    Cow::Owned(plain)
}

/// Drops one trailing `\n`; a `\r` left before it is a carriage return with no text after it,
/// which the `\r` rule already ignores.
fn without_newline(line: &str) -> &str {
    line.strip_suffix('\n').unwrap_or(line)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Token<'a> {
    /// Text without ESC or `\r`; never empty.
    Text(&'a str),
    /// The parameter bytes of an `ESC [ ... m` (digits, `;` and `:` only).
    Sgr(&'a str),
    CarriageReturn,
}

/// Splits a line into text, SGR sequences and carriage returns, silently skipping every other
/// escape sequence. Cuts only ever land on ASCII bytes, so every slice is on a char boundary.
struct Tokens<'a> {
    line: &'a str,
    cursor: usize,
}

impl<'a> Tokens<'a> {
    fn new(line: &'a str) -> Self {
        Tokens { line, cursor: 0 }
    }
}

impl<'a> Iterator for Tokens<'a> {
    type Item = Token<'a>;

    fn next(&mut self) -> Option<Token<'a>> {
        let bytes = self.line.as_bytes();
        loop {
            let start = self.cursor;
            match bytes.get(start).copied()? {
                ESC => {
                    let (end, sgr) = escape_sequence(bytes, start);
                    self.cursor = end;
                    if let Some((from, to)) = sgr {
                        return Some(Token::Sgr(self.line.get(from..to).unwrap_or_default()));
                    }
                }
                CR => {
                    self.cursor = start.saturating_add(1);
                    return Some(Token::CarriageReturn);
                }
                _ => {
                    let end = bytes
                        .get(start..)
                        .and_then(|rest| rest.iter().position(|&byte| byte == ESC || byte == CR))
                        .map_or(bytes.len(), |offset| start.saturating_add(offset));
                    self.cursor = end;
                    return Some(Token::Text(self.line.get(start..end).unwrap_or_default()));
                }
            }
        }
    }
}

/// Index just past the escape sequence at `escape_at` (which holds ESC), and the byte range of
/// its parameters when it is an SGR. The grammar: CSI (`ESC [`, parameter and intermediate
/// bytes, final byte), string sequences (`ESC ]`, `P`, `X`, `^`, `_`, ended by BEL, `ESC \`,
/// another ESC or the end), `ESC` + intermediates + final, two-byte `ESC x`, and a lone ESC
/// (dropped alone, so a following multi-byte character survives). Only ASCII bytes are consumed
/// outside string sequences, so multi-byte characters stay whole.
fn escape_sequence(bytes: &[u8], escape_at: usize) -> (usize, Option<(usize, usize)>) {
    let at = |index: usize| bytes.get(index).copied();
    let mut cursor = escape_at.saturating_add(1);
    match at(cursor) {
        Some(b'[') => {
            cursor = cursor.saturating_add(1);
            let params_start = cursor;
            while matches!(at(cursor), Some(0x20..=0x3F)) {
                cursor = cursor.saturating_add(1);
            }
            let params_end = cursor;
            match at(cursor) {
                Some(final_byte @ 0x40..=0x7E) => {
                    let params = bytes.get(params_start..params_end).unwrap_or_default();
                    // Private markers (`<=>?`) and intermediates make it some other command,
                    // such as xterm's `CSI > 4 ; 1 m`, which must not restyle text.
                    let is_sgr = final_byte == b'm'
                        && params
                            .iter()
                            .all(|&byte| byte.is_ascii_digit() || byte == b';' || byte == b':');
                    let sgr = is_sgr.then_some((params_start, params_end));
                    (cursor.saturating_add(1), sgr)
                }
                // Truncated: swallow what was read, as a terminal would wait for the rest.
                _ => (cursor, None),
            }
        }
        Some(b']' | b'P' | b'X' | b'^' | b'_') => {
            cursor = cursor.saturating_add(1);
            loop {
                match at(cursor) {
                    None => return (cursor, None),
                    Some(BEL) => return (cursor.saturating_add(1), None),
                    Some(ESC) if at(cursor.saturating_add(1)) == Some(b'\\') => {
                        return (cursor.saturating_add(2), None)
                    }
                    // Any other ESC starts a new sequence (the OSC was cut short).
                    Some(ESC) => return (cursor, None),
                    Some(_) => cursor = cursor.saturating_add(1),
                }
            }
        }
        Some(0x20..=0x2F) => {
            while matches!(at(cursor), Some(0x20..=0x2F)) {
                cursor = cursor.saturating_add(1);
            }
            if matches!(at(cursor), Some(0x30..=0x7E)) {
                cursor = cursor.saturating_add(1);
            }
            (cursor, None)
        }
        Some(0x30..=0x7E) => (cursor.saturating_add(1), None),
        _ => (cursor, None),
    }
}

/// Applies SGR parameters (`1;31`, `38;5;196`, `38:2::1:2:3`, "" = reset). Unknown codes are
/// ignored; malformed extended colours are consumed without effect.
fn apply_sgr(params: &str, style: &mut Style) {
    if params.is_empty() {
        *style = Style::default();
        return;
    }
    let mut fields = params.split(';');
    while let Some(field) = fields.next() {
        if field.contains(':') {
            apply_colon_field(field, style);
            continue;
        }
        match number(field) {
            // An empty field counts as 0, as on terminals: `ESC[;1m` resets, then bolds.
            0 => *style = Style::default(),
            1 => style.bold = true,
            2 => style.dim = true,
            3 => style.italic = true,
            4 => style.underline = true,
            7 => style.inverse = true,
            22 => {
                style.bold = false;
                style.dim = false;
            }
            23 => style.italic = false,
            24 => style.underline = false,
            27 => style.inverse = false,
            code @ 30..=37 => style.fg = Some(palette_index(code, 30)),
            38 => {
                if let Some(colour) = extended_colour(&mut fields) {
                    style.fg = Some(colour);
                }
            }
            39 => style.fg = None,
            code @ 40..=47 => style.bg = Some(palette_index(code, 40)),
            48 => {
                if let Some(colour) = extended_colour(&mut fields) {
                    style.bg = Some(colour);
                }
            }
            49 => style.bg = None,
            code @ 90..=97 => style.fg = Some(palette_index(code, 82)),
            code @ 100..=107 => style.bg = Some(palette_index(code, 92)),
            _ => {}
        }
    }
}

/// `code - base` as a palette index; callers pass ranges where it lands in 0..=15.
fn palette_index(code: u32, base: u32) -> Colour {
    let index = code.saturating_sub(base).min(15);
    Colour::Indexed(u8::try_from(index).unwrap_or(15))
}

/// The colour after a `38` or `48`: `5;n` or `2;r;g;b`. Consumes the fields it reads even when
/// they are invalid, so `38;5;300` cannot be misread as the codes `5` (blink) and `300`.
fn extended_colour<'a>(fields: &mut impl Iterator<Item = &'a str>) -> Option<Colour> {
    match number(fields.next()?) {
        5 => Some(Colour::Indexed(byte(fields.next()?)?)),
        2 => {
            // All three are read before any is judged, so a bad red cannot leave green behind.
            let (red, green, blue) = (fields.next()?, fields.next()?, fields.next()?);
            Some(Colour::Rgb(byte(red)?, byte(green)?, byte(blue)?))
        }
        _ => None,
    }
}

/// The colon form (ITU T.416): `38:5:n`, `38:2:r:g:b`, `38:2:space:r:g:b`, and `4:n` (underline
/// styles, where 0 turns it off). Anything else with colons is ignored.
fn apply_colon_field(field: &str, style: &mut Style) {
    let parts: Vec<&str> = field.split(':').collect();
    let colour = || -> Option<Colour> {
        match (number(parts.get(1)?), parts.len()) {
            (5, 3) => Some(Colour::Indexed(byte(parts.get(2)?)?)),
            (2, 5) => Some(Colour::Rgb(
                byte(parts.get(2)?)?,
                byte(parts.get(3)?)?,
                byte(parts.get(4)?)?,
            )),
            // The colour-space id (often empty) is ignored.
            (2, 6) => Some(Colour::Rgb(
                byte(parts.get(3)?)?,
                byte(parts.get(4)?)?,
                byte(parts.get(5)?)?,
            )),
            _ => None,
        }
    };
    match parts.first().map(|first| number(first)) {
        Some(38) => {
            if let Some(colour) = colour() {
                style.fg = Some(colour);
            }
        }
        Some(48) => {
            if let Some(colour) = colour() {
                style.bg = Some(colour);
            }
        }
        Some(4) => {
            if let Some(kind) = parts.get(1) {
                style.underline = number(kind) != 0;
            }
        }
        _ => {}
    }
}

/// A decimal parameter, saturating (huge numbers then match no code); empty is 0. Only digits
/// reach here, but anything else would also count as 0 rather than panic.
fn number(text: &str) -> u32 {
    text.bytes().fold(0u32, |value, byte| {
        let digit = u32::from(byte.wrapping_sub(b'0'));
        if digit > 9 {
            value
        } else {
            value.saturating_mul(10).saturating_add(digit)
        }
    })
}

/// A colour component or palette index: `None` when empty or above 255.
fn byte(text: &str) -> Option<u8> {
    if text.is_empty() {
        return None;
    }
    u8::try_from(number(text)).ok()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn plain(text: &str) -> Span {
        Span {
            text: text.to_owned(),
            class: String::new(),
            style: String::new(),
        }
    }

    fn classed(text: &str, class: &str) -> Span {
        Span {
            text: text.to_owned(),
            class: class.to_owned(),
            style: String::new(),
        }
    }

    fn styled(text: &str, class: &str, style: &str) -> Span {
        Span {
            text: text.to_owned(),
            class: class.to_owned(),
            style: style.to_owned(),
        }
    }

    fn parse(line: &str) -> Vec<Span> {
        spans(line, &mut Style::default())
    }

    #[test]
    fn plain_line_is_one_plain_span() {
        assert_eq!(parse("hello\tworld"), vec![plain("hello\tworld")]);
        assert_eq!(parse(""), Vec::<Span>::new());
        assert_eq!(parse("\n"), Vec::<Span>::new());
        assert_eq!(parse("a\r\n"), vec![plain("a")]);
        assert_eq!(parse("a\n"), vec![plain("a")]);
    }

    #[test]
    fn basic_colours_and_attributes_become_classes() {
        assert_eq!(
            parse("\x1b[1;31mred\x1b[0m plain"),
            vec![classed("red", "ansi-bold ansi-fg-1"), plain(" plain")]
        );
        assert_eq!(
            parse("\x1b[2;3;4mx\x1b[92;104my"),
            vec![
                classed("x", "ansi-dim ansi-italic ansi-underline"),
                classed(
                    "y",
                    "ansi-dim ansi-italic ansi-underline ansi-fg-10 ansi-bg-12"
                ),
            ]
        );
        assert_eq!(
            parse("\x1b[37;47ma\x1b[97;107mb"),
            vec![
                classed("a", "ansi-fg-7 ansi-bg-7"),
                classed("b", "ansi-fg-15 ansi-bg-15")
            ]
        );
    }

    #[test]
    fn resets_of_single_attributes() {
        assert_eq!(
            parse("\x1b[1;2;3;4;7;31;42ma\x1b[22mb\x1b[23mc\x1b[24md\x1b[27me\x1b[39mf\x1b[49mg"),
            vec![
                classed(
                    "a",
                    "ansi-bold ansi-dim ansi-italic ansi-underline ansi-inverse ansi-fg-2 ansi-bg-1"
                ),
                classed(
                    "b",
                    "ansi-italic ansi-underline ansi-inverse ansi-fg-2 ansi-bg-1"
                ),
                classed("c", "ansi-underline ansi-inverse ansi-fg-2 ansi-bg-1"),
                classed("d", "ansi-inverse ansi-fg-2 ansi-bg-1"),
                classed("e", "ansi-fg-1 ansi-bg-2"),
                classed("f", "ansi-bg-2"),
                plain("g"),
            ]
        );
        assert_eq!(
            parse("\x1b[31mred\x1b[mplain"),
            vec![classed("red", "ansi-fg-1"), plain("plain")]
        );
        // An empty field is 0: reset, then bold.
        assert_eq!(
            parse("\x1b[31mr\x1b[;1mb"),
            vec![classed("r", "ansi-fg-1"), classed("b", "ansi-bold")]
        );
    }

    #[test]
    fn inverse_swaps_at_render_time() {
        let mut style = Style::default();
        let out = spans("\x1b[31;7mx", &mut style);
        assert_eq!(out, vec![classed("x", "ansi-inverse ansi-bg-1")]);
        // The state keeps the original pair, so 27 restores it.
        assert_eq!(style.fg, Some(Colour::Indexed(1)));
        assert_eq!(style.bg, None);
        assert_eq!(
            parse("\x1b[7;38;5;196mx"),
            vec![styled("x", "ansi-inverse", "background-color:#ff0000")]
        );
    }

    #[test]
    fn palette_256_and_truecolour_are_inline_styles() {
        assert_eq!(
            parse("\x1b[38;5;196mred\x1b[48;5;17mon blue"),
            vec![
                styled("red", "", "color:#ff0000"),
                styled("on blue", "", "color:#ff0000;background-color:#00005f"),
            ]
        );
        assert_eq!(
            parse("\x1b[38;5;9mbright red"),
            vec![classed("bright red", "ansi-fg-9")]
        );
        assert_eq!(
            parse("\x1b[38;2;1;2;255;48;2;0;0;0mx"),
            vec![styled("x", "", "color:#0102ff;background-color:#000000")]
        );
        assert_eq!(
            parse("\x1b[1;38;5;244mgrey"),
            vec![styled("grey", "ansi-bold", "color:#808080")]
        );
        // Colon forms, with and without a colour-space id.
        assert_eq!(
            parse("\x1b[38:5:196ma\x1b[38:2::0:128:255mb\x1b[38:2:10:20:30mc"),
            vec![
                styled("a", "", "color:#ff0000"),
                styled("b", "", "color:#0080ff"),
                styled("c", "", "color:#0a141e"),
            ]
        );
        assert_eq!(
            parse("\x1b[4:3mcurly\x1b[4:0mnone"),
            vec![classed("curly", "ansi-underline"), plain("none")]
        );
    }

    #[test]
    fn xterm_palette_is_computed() {
        assert_eq!(xterm_rgb(15), None);
        assert_eq!(xterm_rgb(16), Some((0, 0, 0)));
        assert_eq!(xterm_rgb(21), Some((0, 0, 255)));
        assert_eq!(xterm_rgb(196), Some((255, 0, 0)));
        assert_eq!(xterm_rgb(208), Some((255, 135, 0)));
        assert_eq!(xterm_rgb(231), Some((255, 255, 255)));
        assert_eq!(xterm_rgb(232), Some((8, 8, 8)));
        assert_eq!(xterm_rgb(255), Some((238, 238, 238)));
        assert_eq!(Colour::Rgb(1, 2, 3).rgb(), Some((1, 2, 3)));
        assert_eq!(Colour::Indexed(3).rgb(), None);
    }

    #[test]
    fn malformed_sequences_are_consumed_without_garbage() {
        for line in [
            "a\x1b[",
            "a\x1b[38;5m",
            "a\x1b[38;2;1;2m",
            "a\x1b[38;5;256m",
            "a\x1b[38;2;1;2;999m",
            "a\x1b[99999999999999999999999m",
            "a\x1b[38;99999999999999999999;1m",
            "a\x1b[38m",
            "a\x1b[48;7m",
            "a\x1b[38:5m",
            "a\x1b[38:2:1m",
            "a\x1b[12",
        ] {
            assert_eq!(parse(line), vec![plain("a")], "{line:?}");
        }
        // A non-SGR final byte ends the sequence; what follows is text, as on a terminal.
        assert_eq!(parse("a\x1b[1;x31mb"), vec![plain("a31mb")]);
        // Private SGR look-alikes do not restyle.
        assert_eq!(parse("\x1b[>4;1mx\x1b[?1mkey"), vec![plain("xkey")]);
        // A truncated truecolour does not leak its components as codes (1 = bold).
        let mut style = Style::default();
        assert_eq!(spans("\x1b[38;2;1mx", &mut style), vec![plain("x")]);
        assert_eq!(style, Style::default());
    }

    #[test]
    fn other_escape_sequences_are_removed() {
        assert_eq!(
            parse("\x1b[2J\x1b[H\x1b[?25lhidden\x1b[?25h\x1b[K done\x1b[3A"),
            vec![plain("hidden done")]
        );
        assert_eq!(
            parse("see \x1b]8;;https://example.com\x1b\\the docs\x1b]8;;\x1b\\ now"),
            vec![plain("see the docs now")]
        );
        assert_eq!(parse("a\x1b]0;title\x07b"), vec![plain("ab")]);
        assert_eq!(parse("a\x1b(Bb\x1b=c\x1bMd"), vec![plain("abcd")]);
        assert_eq!(parse("end\x1b"), vec![plain("end")]);
        assert_eq!(parse("a\x1bé"), vec![plain("aé")]);
        assert_eq!(parse("a\x1b[é"), vec![plain("aé")]);
        // An ESC inside an OSC that is not `ESC \` starts a new sequence.
        assert_eq!(
            parse("a\x1b]0;t\x1b[31mred"),
            vec![plain("a"), classed("red", "ansi-fg-1")]
        );
    }

    // ---------------------------------------------------------------- strip_ansi

    #[test]
    fn strip_ansi_borrows_plain_text() {
        let stripped = strip_ansi("[01:23:41] plain \u{2705} text\r");
        assert!(matches!(stripped, Cow::Borrowed(_)));
        assert_eq!(stripped, "[01:23:41] plain \u{2705} text\r");
    }

    #[test]
    fn strip_ansi_removes_csi_sequences() {
        assert_eq!(
            strip_ansi("\x1b[1;34m[01:23:41] === Iteration 8 ===\x1b[0m"),
            "[01:23:41] === Iteration 8 ==="
        );
        assert_eq!(strip_ansi("a\x1b[mb"), "ab");
        assert_eq!(strip_ansi("\x1b[38;5;196mred\x1b[39m"), "red");
        assert_eq!(
            strip_ansi("\x1b[?25lhidden cursor\x1b[?25h"),
            "hidden cursor"
        );
        assert_eq!(strip_ansi("x\x1b[2 qy"), "xy");
    }

    #[test]
    fn strip_ansi_removes_osc_and_string_sequences() {
        assert_eq!(strip_ansi("a\x1b]0;title\x07b"), "ab");
        assert_eq!(
            strip_ansi("\x1b]8;;https://e.x\x1b\\link\x1b]8;;\x1b\\"),
            "link"
        );
        assert_eq!(strip_ansi("a\x1bPdcs payload\x1b\\b"), "ab");
        // An unterminated string runs to the end of the line.
        assert_eq!(strip_ansi("a\x1b]0;never ends"), "a");
        // An ESC inside it that is not `ESC \` starts a new sequence.
        assert_eq!(strip_ansi("a\x1b]0;t\x1b[31mred"), "ared");
    }

    #[test]
    fn strip_ansi_removes_short_and_lone_escapes() {
        assert_eq!(strip_ansi("a\x1b(Bb"), "ab");
        assert_eq!(strip_ansi("a\x1b=b\x1bMc"), "abc");
        assert_eq!(strip_ansi("trailing\x1b"), "trailing");
        assert_eq!(strip_ansi("\x1b"), "");
        assert_eq!(strip_ansi("\x1b\x1b[1m"), "");
        assert_eq!(strip_ansi("a\x1b\nb"), "a\nb");
        assert_eq!(strip_ansi("a\x1bé"), "aé");
        assert_eq!(strip_ansi("a\x1b[é"), "aé");
        assert_eq!(strip_ansi("a\x1b[12"), "a");
    }

    #[test]
    fn strip_ansi_keeps_carriage_returns() {
        // Only the view redraws on `\r`; the server's parsers see the line as written.
        assert_eq!(strip_ansi("\x1b[32m10%\r20%\x1b[0m\r\n"), "10%\r20%\r\n");
    }

    #[test]
    fn carriage_return_keeps_the_last_redraw() {
        assert_eq!(parse("10%\r20%\r30%"), vec![plain("30%")]);
        assert_eq!(parse("done\r\n"), vec![plain("done")]);
        // A trailing `\r` has nothing after it, so the text before it stays.
        assert_eq!(parse("50%\r"), vec![plain("50%")]);
        assert_eq!(parse("10%\r20%\r"), vec![plain("20%")]);
        // Styles set before the `\r` still apply after it.
        let mut style = Style::default();
        assert_eq!(
            spans("\x1b[32mold\rnew", &mut style),
            vec![classed("new", "ansi-fg-2")]
        );
        assert_eq!(style.fg, Some(Colour::Indexed(2)));
        assert_eq!(parse("a\x1b[1m\r\x1b[0mb"), vec![plain("b")]);
    }

    #[test]
    fn style_carries_over_lines() {
        let mut style = Style::default();
        assert_eq!(
            spans("\x1b[33mstarts yellow", &mut style),
            vec![classed("starts yellow", "ansi-fg-3")]
        );
        assert_eq!(
            spans("still yellow\x1b[0m", &mut style),
            vec![classed("still yellow", "ansi-fg-3")]
        );
        assert_eq!(style, Style::default());
        assert_eq!(spans("plain", &mut style), vec![plain("plain")]);
    }

    #[test]
    fn same_looking_runs_merge_and_no_span_is_empty() {
        assert_eq!(
            parse("\x1b[31ma\x1b[31mb\x1b[1m\x1b[22mc\x1b[0m\x1b[0m"),
            vec![classed("abc", "ansi-fg-1")]
        );
        // Sequences that change nothing visible do not split the text.
        assert_eq!(parse("\x1b[39ma\x1b[49m\x1b[Kb"), vec![plain("ab")]);
    }

    #[test]
    fn multibyte_text_survives() {
        assert_eq!(
            parse("漢\x1b[1m字😀\x1b[0mé"),
            vec![plain("漢"), classed("字😀", "ansi-bold"), plain("é")]
        );
    }

    // ---------------------------------------------------------------- properties

    use crate::test_rng::Rng;

    const PIECES: &[&str] = &[
        "\x1b",
        "[",
        "]",
        ";",
        ":",
        "0",
        "1",
        "2",
        "3",
        "5",
        "7",
        "8",
        "9",
        "38",
        "48",
        "m",
        "K",
        "?",
        ">",
        "a",
        "Z",
        " ",
        "\t",
        "\r",
        "\n",
        "\x07",
        "\\",
        "é",
        "漢",
        "😀",
        "(",
        "P",
        "_",
        "999999999999",
    ];

    const PARAMS: &[&str] = &[
        "0",
        "1",
        "2",
        "3",
        "4",
        "7",
        "22",
        "27",
        "31",
        "38",
        "48",
        "5",
        "2",
        "196",
        "255",
        "256",
        "97",
        "107",
        "39",
        "49",
        "",
        ";",
        ";",
        ":",
        "?",
        "99999999999999999999",
        "38;5;",
        "48;5;",
        "38;2;",
        "48:2::",
        "10;20;30",
        "1:2:3",
    ];

    /// Random pieces, with about half of the chunks shaped like an SGR (possibly malformed), so
    /// that styles are actually exercised and not just noise.
    fn random_line(rng: &mut Rng) -> String {
        let mut line = String::new();
        for _ in 0..rng.below(16) {
            if rng.below(2) == 0 {
                line.push_str(rng.pick(PIECES));
                continue;
            }
            line.push_str("\x1b[");
            for _ in 0..rng.below(7) {
                line.push_str(rng.pick(PARAMS));
            }
            // Mostly `m`, sometimes another final byte or a truncation.
            line.push_str(rng.pick(&["m", "m", "m", "m", "K", ";m", ""]));
        }
        line
    }

    const KNOWN_CLASSES: &[&str] = &[
        "ansi-bold",
        "ansi-dim",
        "ansi-italic",
        "ansi-underline",
        "ansi-inverse",
    ];

    fn is_known_class(class: &str) -> bool {
        if KNOWN_CLASSES.contains(&class) {
            return true;
        }
        let index = class
            .strip_prefix("ansi-fg-")
            .or_else(|| class.strip_prefix("ansi-bg-"));
        index
            .and_then(|n| n.parse::<u8>().ok())
            .is_some_and(|n| n < 16)
    }

    fn is_valid_css(css: &str) -> bool {
        css.is_empty()
            || css.split(';').all(|rule| {
                let hex = rule
                    .strip_prefix("color:#")
                    .or_else(|| rule.strip_prefix("background-color:#"));
                hex.is_some_and(|hex| hex.len() == 6 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
            })
    }

    /// The redraw rule of [`spans`] on plain text: what follows the last `\r` that has text
    /// after it.
    fn redrawn(plain: &str) -> String {
        plain
            .split('\r')
            .rev()
            .find(|part| !part.is_empty())
            .unwrap_or_default()
            .to_owned()
    }

    #[test]
    fn random_lines_keep_the_invariants() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for _ in 0..20_000 {
            let line = random_line(&mut rng);
            let mut style = Style::default();
            let out = spans(&line, &mut style);
            let text: String = out.iter().map(|span| span.text.as_str()).collect();
            let stripped = redrawn(&strip_ansi(without_newline(&line)));
            assert_eq!(text, stripped, "{line:?}");
            assert!(!stripped.contains('\x1b'), "{line:?}");
            assert!(!stripped.contains('\r'), "{line:?}");
            for span in &out {
                assert!(!span.text.is_empty(), "{line:?}");
                assert!(span
                    .class
                    .split(' ')
                    .all(|c| c.is_empty() || is_known_class(c)));
                assert!(is_valid_css(&span.style), "{:?} in {line:?}", span.style);
            }
            for pair in out.windows(2) {
                assert!(
                    (&pair[0].class, &pair[0].style) != (&pair[1].class, &pair[1].style),
                    "unmerged {line:?}"
                );
            }
            let once = strip_ansi(&line);
            assert_eq!(
                strip_ansi(&once),
                once,
                "strip_ansi is idempotent: {line:?}"
            );
        }
    }

    /// A well-formed SGR sequence and its effect on the state.
    struct Sequence {
        text: &'static str,
        apply: fn(&mut Style),
    }

    const SEQUENCES: &[Sequence] = &[
        Sequence {
            text: "\x1b[0m",
            apply: |s| *s = Style::default(),
        },
        Sequence {
            text: "\x1b[m",
            apply: |s| *s = Style::default(),
        },
        Sequence {
            text: "\x1b[1m",
            apply: |s| s.bold = true,
        },
        Sequence {
            text: "\x1b[2m",
            apply: |s| s.dim = true,
        },
        Sequence {
            text: "\x1b[22m",
            apply: |s| {
                s.bold = false;
                s.dim = false
            },
        },
        Sequence {
            text: "\x1b[3m",
            apply: |s| s.italic = true,
        },
        Sequence {
            text: "\x1b[23m",
            apply: |s| s.italic = false,
        },
        Sequence {
            text: "\x1b[4m",
            apply: |s| s.underline = true,
        },
        Sequence {
            text: "\x1b[24m",
            apply: |s| s.underline = false,
        },
        Sequence {
            text: "\x1b[7m",
            apply: |s| s.inverse = true,
        },
        Sequence {
            text: "\x1b[27m",
            apply: |s| s.inverse = false,
        },
        Sequence {
            text: "\x1b[31m",
            apply: |s| s.fg = Some(Colour::Indexed(1)),
        },
        Sequence {
            text: "\x1b[94m",
            apply: |s| s.fg = Some(Colour::Indexed(12)),
        },
        Sequence {
            text: "\x1b[39m",
            apply: |s| s.fg = None,
        },
        Sequence {
            text: "\x1b[42m",
            apply: |s| s.bg = Some(Colour::Indexed(2)),
        },
        Sequence {
            text: "\x1b[103m",
            apply: |s| s.bg = Some(Colour::Indexed(11)),
        },
        Sequence {
            text: "\x1b[49m",
            apply: |s| s.bg = None,
        },
        Sequence {
            text: "\x1b[38;5;208m",
            apply: |s| s.fg = Some(Colour::Indexed(208)),
        },
        Sequence {
            text: "\x1b[48;5;4m",
            apply: |s| s.bg = Some(Colour::Indexed(4)),
        },
        Sequence {
            text: "\x1b[38;2;10;20;30m",
            apply: |s| s.fg = Some(Colour::Rgb(10, 20, 30)),
        },
        Sequence {
            text: "\x1b[48:2::1:2:3m",
            apply: |s| s.bg = Some(Colour::Rgb(1, 2, 3)),
        },
        Sequence {
            text: "\x1b[1;4;33m",
            apply: |s| {
                s.bold = true;
                s.underline = true;
                s.fg = Some(Colour::Indexed(3));
            },
        },
        // Non-SGR sequences change nothing.
        Sequence {
            text: "\x1b[K",
            apply: |_| {},
        },
        Sequence {
            text: "\x1b[?25l",
            apply: |_| {},
        },
        Sequence {
            text: "\x1b]8;;x\x1b\\",
            apply: |_| {},
        },
    ];

    const WORDS: &[&str] = &["a", "bc", " ", "\t", "é", "漢字", "😀", "[x]", ";m"];

    /// Interleaves known sequences and text, and compares with spans built from the model.
    #[test]
    fn random_well_formed_lines_match_the_model() {
        let mut rng = Rng(0xDEAD_BEEF_CAFE_F00D);
        for _ in 0..10_000 {
            let mut line = String::new();
            let mut model = Style::default();
            let mut expected: Vec<Span> = Vec::new();
            for _ in 0..rng.below(12) {
                if rng.below(2) == 0 {
                    let sequence = &SEQUENCES[rng.below(SEQUENCES.len())];
                    line.push_str(sequence.text);
                    (sequence.apply)(&mut model);
                } else {
                    let word = rng.pick(WORDS);
                    line.push_str(word);
                    let (class, css) = (model.class(), model.css());
                    match expected.last_mut() {
                        Some(last) if last.class == class && last.style == css => {
                            last.text.push_str(word)
                        }
                        _ => expected.push(styled(word, &class, &css)),
                    }
                }
            }
            let mut style = Style::default();
            assert_eq!(spans(&line, &mut style), expected, "{line:?}");
            assert_eq!(style, model, "{line:?}");
        }
    }

    // ---------------------------------------------------------------- strip_ansi properties

    use proptest::prelude::*;

    /// Escape sequences of every kind the grammar knows, each complete.
    pub(crate) fn escape_sequence() -> impl Strategy<Value = String> {
        prop_oneof![
            "\x1b\\[[0-9;?]{0,8}[ -/]{0,2}[@-~]",
            "\x1b\\][^\x07\x1b]{0,12}\x07",
            "\x1b[\\]P_^X][^\x07\x1b]{0,12}\x1b\\\\",
            "\x1b[ -/]{1,2}[0-~]",
            // Two-byte escapes, minus the letters that open CSI and string sequences.
            "\x1b[0-OQ-WYZ`-~]",
        ]
    }

    pub(crate) fn text_without_escape() -> impl Strategy<Value = String> {
        "[^\x1b]{0,12}"
    }

    proptest! {
        #[test]
        fn strip_ansi_output_has_no_escape_and_is_idempotent(line in "\\PC{0,60}|[\x1b\\[\\]\\\\\x07;0-9a-zé ]{0,60}") {
            let once = strip_ansi(&line);
            prop_assert!(!once.contains('\x1b'));
            prop_assert_eq!(strip_ansi(&once), once.clone());
            if !line.contains('\x1b') {
                prop_assert!(matches!(once, Cow::Borrowed(_)));
                prop_assert_eq!(once.as_ref(), line.as_str());
            }
        }

        #[test]
        fn strip_ansi_keeps_exactly_the_text_between_sequences(
            parts in proptest::collection::vec((text_without_escape(), escape_sequence()), 0..8),
            tail in text_without_escape(),
        ) {
            let mut line = String::new();
            let mut text = String::new();
            for (plain, escape) in &parts {
                line.push_str(plain);
                line.push_str(escape);
                text.push_str(plain);
            }
            line.push_str(&tail);
            text.push_str(&tail);
            let stripped = strip_ansi(&line);
            prop_assert_eq!(stripped.as_ref(), text.as_str());
        }
    }
}
