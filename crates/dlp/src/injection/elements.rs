//! What each HTML element and attribute means for reading its text: block (a line break),
//! void, hidden, code, quotation, raw text (`<script>`, `<style>`); attribute values read as
//! text, style, class, id, or a URL.

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Raw {
    No,
    Script,
    Style,
}

#[derive(Clone, Copy)]
pub(crate) struct Info {
    pub(crate) block: bool,
    pub(crate) void: bool,
    pub(crate) hidden: bool,
    pub(crate) code: bool,
    pub(crate) quote: bool,
    pub(crate) raw: Raw,
}

impl Info {
    pub(crate) const INLINE: Info = Info {
        block: false,
        void: false,
        hidden: false,
        code: false,
        quote: false,
        raw: Raw::No,
    };
}

/// What an HTML element means for reading its text; `None` for names HTML does not define.
pub(crate) fn element_info(name: &[u8]) -> Option<Info> {
    let i = Info::INLINE;
    Some(match name {
        b"br" | b"hr" | b"img" | b"input" | b"meta" | b"link" | b"source" | b"area" | b"base"
        | b"col" | b"embed" | b"param" | b"track" | b"wbr" => Info {
            void: true,
            block: name != b"wbr" && name != b"img",
            ..i
        },
        b"script" => Info {
            raw: Raw::Script,
            block: true,
            ..i
        },
        b"style" => Info {
            raw: Raw::Style,
            block: true,
            ..i
        },
        b"template" => Info {
            hidden: true,
            block: true,
            ..i
        },
        b"pre" | b"xmp" | b"listing" => Info {
            code: true,
            block: true,
            ..i
        },
        b"code" | b"kbd" | b"samp" | b"tt" | b"var" => Info { code: true, ..i },
        b"blockquote" | b"figure" => Info {
            quote: name == b"blockquote",
            block: true,
            ..i
        },
        b"q" | b"cite" => Info { quote: true, ..i },
        b"p" | b"div" | b"li" | b"ul" | b"ol" | b"dl" | b"dt" | b"dd" | b"h1" | b"h2" | b"h3"
        | b"h4" | b"h5" | b"h6" | b"table" | b"thead" | b"tbody" | b"tfoot" | b"tr" | b"td"
        | b"th" | b"caption" | b"section" | b"article" | b"aside" | b"header" | b"footer"
        | b"nav" | b"main" | b"form" | b"fieldset" | b"legend" | b"details" | b"summary"
        | b"figcaption" | b"address" | b"title" | b"head" | b"body" | b"html" | b"option"
        | b"select" | b"textarea" | b"button" | b"label" | b"noscript" | b"iframe" | b"object"
        | b"video" | b"audio" | b"canvas" | b"svg" | b"picture" | b"dialog" | b"menu"
        | b"center" | b"frameset" | b"frame" | b"noframes" | b"hgroup" | b"search" | b"output"
        | b"progress" | b"meter" | b"map" | b"optgroup" | b"datalist" => Info { block: true, ..i },
        b"a" | b"abbr" | b"b" | b"bdi" | b"bdo" | b"big" | b"data" | b"del" | b"dfn" | b"em"
        | b"font" | b"i" | b"ins" | b"mark" | b"nobr" | b"rp" | b"rt" | b"ruby" | b"s"
        | b"small" | b"span" | b"strike" | b"strong" | b"sub" | b"sup" | b"time" | b"u"
        | b"slot" | b"path" | b"g" | b"rect" | b"circle" | b"use" | b"symbol" | b"defs"
        | b"text" | b"tspan" | b"line" | b"polygon" | b"polyline" | b"ellipse" | b"stop"
        | b"lineargradient" | b"radialgradient" | b"clippath" | b"mask" | b"pattern" | b"image"
        | b"title-text" => i,
        _ => return None,
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum AttrKind {
    /// Text a model reads but a page does not show in place (alt, title, meta content...).
    Text,
    Style,
    Class,
    Id,
    AriaHidden,
    Type,
    /// A URL attribute (href, src, ...): read as text only when it is a `data:` URI (its
    /// payload is content; an ordinary URL is not).
    Url,
    Other,
}

/// How an attribute's value is read.
pub(crate) fn attr_kind(name: &[u8]) -> AttrKind {
    match name {
        b"alt" | b"title" | b"content" | b"aria-label" | b"aria-description" | b"placeholder"
        | b"label" | b"summary" | b"value" | b"srcdoc" => AttrKind::Text,
        b"style" => AttrKind::Style,
        b"class" => AttrKind::Class,
        b"id" => AttrKind::Id,
        b"aria-hidden" => AttrKind::AriaHidden,
        n if n.starts_with(b"data-") || n.starts_with(b"aria-") => AttrKind::Text,
        b"type" => AttrKind::Type,
        b"href" | b"src" | b"action" | b"formaction" | b"poster" | b"data" | b"background"
        | b"xlink:href" => AttrKind::Url,
        _ => AttrKind::Other,
    }
}
