"""``formatted_body`` (``org.matrix.custom.html``) as a small, safe document tree.

:func:`parse_html` reads the HTML with the standard library's tokenizer
(:class:`html.parser.HTMLParser`) and keeps only the spec's subset
(``instant_messaging.md``): an explicit allow-list of tags and, per tag, of
attributes. Everything else falls back to its text; ``<script>``, ``<style>``,
``<mx-reply>`` (the reply fallback, ``rich_replies.md``) and a few other
containers are dropped with their contents. Every text node and attribute goes
through the sanitiser as it enters, so the tree only ever holds clean text.

The result is bounded whatever the input: at most :data:`MAX_INPUT` characters
are read, elements nest at most :data:`MAX_DEPTH` deep (deeper tags are
flattened into their text), at most :data:`MAX_ELEMENTS` elements are kept, and
block nesting (quotes, lists, details) stops at :data:`MAX_BLOCK_DEPTH`.

:func:`sanitize_html` re-serialises the same allowed subset, for sending HTML
the user typed.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from html.parser import HTMLParser

from .html_tree import (
    Block,
    Break,
    CodeBlock,
    Details,
    Document,
    Heading,
    Image,
    Inline,
    Link,
    ListBlock,
    Mark,
    Maths,
    Paragraph,
    Pill,
    Quote,
    Rule,
    Spoiler,
    Table,
    TableCell,
    Text,
    block_inlines,
    iter_blocks,
    iter_inlines,
)
from .ids import InvalidIdentifier, parse_link
from .sanitize import clean_line, clean_text, is_clean

__all__ = [
    "MAX_BLOCK_DEPTH",
    "MAX_DEPTH",
    "MAX_ELEMENTS",
    "MAX_INPUT",
    "Block",
    "Break",
    "CodeBlock",
    "Details",
    "Document",
    "Heading",
    "Image",
    "Inline",
    "Link",
    "ListBlock",
    "Mark",
    "Maths",
    "Paragraph",
    "Pill",
    "Quote",
    "Rule",
    "Spoiler",
    "Table",
    "TableCell",
    "Text",
    "block_inlines",
    "inline_text",
    "iter_blocks",
    "iter_inlines",
    "parse_html",
    "safe_href",
    "sanitize_html",
]

#: Characters of ``formatted_body`` read at most (an event is at most 64 KiB anyway).
MAX_INPUT = 100_000
#: Deepest element nesting kept (the spec: "must not be nested more than 100 levels").
MAX_DEPTH = 100
#: Elements kept at most; later tags only contribute their text.
MAX_ELEMENTS = 5_000
#: Deepest nesting of quotes, lists and details; deeper ones join their parent.
MAX_BLOCK_DEPTH = 8
_MAX_ATTRIBUTE = 2_048
_MAX_START = 1_000_000_000
_CHUNK = 1_024
_MAX_PENDING = 8_192


# -- the allow-list ------------------------------------------------------------------

_ALLOWED_TAGS = frozenset(
    {
        "del", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "p", "a", "ul", "ol",
        "sup", "sub", "li", "b", "i", "u", "strong", "em", "s", "code", "hr", "br",
        "div", "table", "thead", "tbody", "tr", "th", "td", "caption", "pre", "span",
        "img", "details", "summary", "font", "strike",
    }
)  # fmt: skip
_ALLOWED_ATTRIBUTES: dict[str, frozenset[str]] = {
    "span": frozenset({"data-mx-bg-color", "data-mx-color", "data-mx-spoiler", "data-mx-maths"}),
    "font": frozenset({"data-mx-bg-color", "data-mx-color", "color"}),
    "a": frozenset({"href"}),
    "img": frozenset({"width", "height", "alt", "title", "src"}),
    "ol": frozenset({"start"}),
    "code": frozenset({"class"}),
    "div": frozenset({"data-mx-maths"}),
}
# Dropped with everything inside them.
_DROPPED_WITH_CONTENT = frozenset(
    {"script", "style", "mx-reply", "head", "title", "template", "iframe", "object",
     "noscript", "svg", "math", "textarea", "select", "noembed", "noframes", "xmp"}
)  # fmt: skip
_VOID = frozenset({"br", "hr", "img"})
_BLOCK_TAGS = frozenset(
    {"p", "div", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "blockquote", "ul", "ol", "li",
     "table", "thead", "tbody", "tr", "th", "td", "caption", "hr", "details", "summary"}
)  # fmt: skip
# Starting one of these closes an open one of the same group, up to a container.
_IMPLIED_END: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "li": (frozenset({"li"}), frozenset({"ul", "ol"})),
    "p": (frozenset({"p"}), _BLOCK_TAGS - {"p"}),
    "tr": (frozenset({"tr"}), frozenset({"table", "thead", "tbody"})),
    "td": (frozenset({"td", "th"}), frozenset({"tr", "table"})),
    "th": (frozenset({"td", "th"}), frozenset({"tr", "table"})),
    "thead": (frozenset({"thead", "tbody", "tr"}), frozenset({"table"})),
    "tbody": (frozenset({"thead", "tbody", "tr"}), frozenset({"table"})),
}
_SAFE_SCHEMES = ("https://", "http://", "mailto:", "matrix:")
_HEX = frozenset("0123456789abcdefABCDEF")
_LANGUAGE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789+#-_.")


def _colour(value: str | None) -> str | None:
    if value is None or len(value) != 7 or value[0] != "#" or not set(value[1:]) <= _HEX:
        return None
    return value.lower()


def safe_href(value: str | None) -> str | None:
    """``value`` if it is a link we may make clickable (http(s), mailto, matrix:), else ``None``.

    A link whose text needs any cleaning (controls, escape sequences, bidi
    overrides) or holds whitespace is refused whole rather than repaired.
    """
    if value is None:
        return None
    href = value.strip()
    if (
        not href
        or len(href) > _MAX_ATTRIBUTE
        or not is_clean(href)
        or any(c.isspace() for c in href)
    ):
        return None
    if not href.lower().startswith(_SAFE_SCHEMES):
        return None
    return href


def _language(value: str | None) -> str | None:
    if not value:
        return None
    for name in value.split():
        if name.startswith("language-"):
            language = name[len("language-") :].lower()
            if 0 < len(language) <= 32 and set(language) <= _LANGUAGE_CHARS:
                return language
    return None


def _start(value: str | None) -> int:
    try:
        number = int((value or "1").strip()[:12])
    except ValueError:
        return 1
    return max(-_MAX_START, min(_MAX_START, number))


# -- stage 1: a sanitised element tree -------------------------------------------------


@dataclass(slots=True)
class _Element:
    tag: str
    attrs: dict[str, str]
    children: list[_Element | str]


class _TreeBuilder(HTMLParser):
    """Tokens in, an element tree of allowed tags and attributes (clean text) out."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = _Element("#root", {}, [])
        self._stack: list[_Element] = [self.root]
        self._elements = 0
        self._dropping: str | None = None
        self._drop_depth = 0

    # The tokenizer calls these.

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._dropping is not None:
            if tag == self._dropping:
                self._drop_depth += 1
            return
        if tag in _DROPPED_WITH_CONTENT:
            self._dropping, self._drop_depth = tag, 1
            return
        if tag not in _ALLOWED_TAGS:
            return
        self._close_implied(tag)
        if len(self._stack) > MAX_DEPTH or self._elements >= MAX_ELEMENTS:
            if tag == "br":
                self._stack[-1].children.append("\n")
            return
        element = _Element(tag, self._attributes(tag, attrs), [])
        self._elements += 1
        self._stack[-1].children.append(element)
        if tag not in _VOID:
            self._stack.append(element)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if self._dropping is not None:
            if tag == self._dropping:
                self._drop_depth -= 1
                if self._drop_depth == 0:
                    self._dropping = None
            return
        for index in range(len(self._stack) - 1, 0, -1):
            if self._stack[index].tag == tag:
                del self._stack[index:]
                return

    def handle_data(self, data: str) -> None:
        if self._dropping is not None or not data:
            return
        text = clean_text(data)
        if not text:
            return
        children = self._stack[-1].children
        if children and isinstance(children[-1], str) and len(children[-1]) < 4096:
            children[-1] += text  # the tokenizer may hand text over in many small pieces
        else:
            children.append(text)

    # Comments, declarations, processing instructions: ignored (the base class does nothing).

    def pending_as_text(self) -> None:
        """Give up on the unfinished construct waiting for more input: it is text."""
        pending, self.rawdata = self.rawdata, ""
        self.handle_data(pending)

    def _close_implied(self, tag: str) -> None:
        rule = _IMPLIED_END.get(tag)
        if rule is None:
            return
        closes, stops = rule
        for index in range(len(self._stack) - 1, 0, -1):
            open_tag = self._stack[index].tag
            if open_tag in closes:
                del self._stack[index:]
                return
            if open_tag in stops:
                return

    @staticmethod
    def _attributes(tag: str, attrs: list[tuple[str, str | None]]) -> dict[str, str]:
        allowed = _ALLOWED_ATTRIBUTES.get(tag)
        if not allowed:
            return {}
        kept: dict[str, str] = {}
        for name, value in attrs:
            if name not in allowed or name in kept:
                continue
            if value is not None and len(value) > _MAX_ATTRIBUTE:
                if name in ("href", "src"):
                    continue  # a cut URL is a different URL
                value = value[:_MAX_ATTRIBUTE]
            cleaned = clean_line(value or "")
            if name in ("data-mx-color", "data-mx-bg-color", "color"):
                colour = _colour(cleaned)
                if colour is None:
                    continue
                cleaned = colour
            elif name == "href":
                href = safe_href(value)
                if href is None:
                    continue
                cleaned = href
            elif name == "src":
                if not cleaned.startswith("mxc://") or not is_clean(value or ""):
                    continue
            elif name == "class":
                language = _language(cleaned)
                if language is None:
                    continue
                cleaned = "language-" + language
            elif name == "start":
                cleaned = str(_start(cleaned))
            kept[name] = cleaned
        return kept


def _element_tree(html: str) -> _Element:
    builder = _TreeBuilder()
    text = html[:MAX_INPUT]
    # Fed in pieces: the tokenizer rescans an unfinished tag for its end each time it
    # is given more, so a tag (or comment) that never ends (``</</</...``) would cost
    # quadratic time. Past _MAX_PENDING characters it is handed over as text instead.
    for start in range(0, len(text), _CHUNK):
        builder.feed(text[start : start + _CHUNK])
        if len(builder.rawdata) > _MAX_PENDING:
            builder.pending_as_text()
    builder.close()
    return builder.root


# -- stage 2: the document ---------------------------------------------------------------

_MARK_OF = {
    "b": Mark.BOLD,
    "strong": Mark.BOLD,
    "i": Mark.ITALIC,
    "em": Mark.ITALIC,
    "u": Mark.UNDERLINE,
    "s": Mark.STRIKE,
    "del": Mark.STRIKE,
    "strike": Mark.STRIKE,
    "code": Mark.CODE,
    "sup": Mark.SUP,
    "sub": Mark.SUB,
}


@dataclass(frozen=True, slots=True)
class _Context:
    marks: Mark = Mark.NONE
    color: str | None = None
    bg: str | None = None


def _collapse(text: str) -> str:
    """Runs of whitespace become one space (edges kept), as HTML shows them."""
    if not text:
        return ""
    words = text.split()
    if not words:
        return " "
    return (
        (" " if text[0].isspace() else "") + " ".join(words) + (" " if text[-1].isspace() else "")
    )


def _plain(element: _Element | str) -> str:
    if isinstance(element, str):
        return element
    if element.tag == "br":
        return "\n"
    return "".join(_plain(child) for child in element.children)


class _Inlines:
    """Collects inline content, collapsing whitespace as HTML does outside ``pre``."""

    def __init__(self) -> None:
        self.items: list[Inline] = []
        self._space = True  # at the start of a line, leading spaces are dropped

    def text(self, text: str, context: _Context) -> None:
        text = _collapse(text.replace("\n", " ").replace("\t", " "))
        if self._space:
            text = text.lstrip(" ")
        if not text:
            return
        self._space = text.endswith(" ")
        previous = self.items[-1] if self.items else None
        if (
            isinstance(previous, Text)
            and previous.marks == context.marks
            and previous.color == context.color
            and previous.bg == context.bg
            and len(previous.text) < 4096
        ):
            self.items[-1] = Text(previous.text + text, context.marks, context.color, context.bg)
        else:
            self.items.append(Text(text, context.marks, context.color, context.bg))

    def add(self, item: Inline) -> None:
        self.items.append(item)
        self._space = isinstance(item, Break)

    def done(self) -> tuple[Inline, ...]:
        items = list(self.items)
        # Trailing spaces and line breaks carry nothing.
        while items:
            last = items[-1]
            if isinstance(last, Break) or (isinstance(last, Text) and not last.text.rstrip(" ")):
                items.pop()
            elif isinstance(last, Text) and last.text.endswith(" "):
                items[-1] = Text(last.text.rstrip(" "), last.marks, last.color, last.bg)
                break
            else:
                break
        return tuple(items)


class _Blocks:
    """Collects blocks, with a paragraph of loose inline content in progress."""

    def __init__(self, depth: int) -> None:
        self.depth = depth
        self.blocks: list[Block] = []
        self.inlines = _Inlines()

    def flush(self) -> None:
        children = self.inlines.done()
        if children:
            self.blocks.append(Paragraph(children))
        self.inlines = _Inlines()

    def block(self, block: Block) -> None:
        self.flush()
        self.blocks.append(block)

    def done(self) -> tuple[Block, ...]:
        self.flush()
        return tuple(self.blocks)


def _styled(element: _Element, context: _Context) -> _Context:
    mark = _MARK_OF.get(element.tag)
    if element.tag == "code" and element.attrs.get("class"):
        mark = Mark.CODE
    color = element.attrs.get("data-mx-color") or element.attrs.get("color") or context.color
    bg = element.attrs.get("data-mx-bg-color") or context.bg
    if mark is None and color == context.color and bg == context.bg:
        return context
    return _Context(context.marks | (mark or Mark.NONE), color, bg)


def _inline(node: _Element | str, context: _Context, out: _Inlines) -> None:
    """Inline content of ``node`` into ``out`` (blocks inside become line breaks)."""
    if isinstance(node, str):
        out.text(node, context)
        return
    tag = node.tag
    if tag == "br":
        out.add(Break())
        return
    if tag == "img":
        src = node.attrs.get("src")
        if src is not None:
            alt = node.attrs.get("alt") or node.attrs.get("title") or ""
            out.add(Image(alt, src))
        return
    if tag in ("span", "div") and "data-mx-maths" in node.attrs:
        out.add(Maths(node.attrs["data-mx-maths"], display=tag == "div"))
        return
    if tag == "span" and "data-mx-spoiler" in node.attrs:
        inner = _Inlines()
        for child in node.children:
            _inline(child, context, inner)
        out.add(Spoiler(node.attrs["data-mx-spoiler"], inner.done()))
        return
    if tag == "a":
        _link(node, context, out)
        return
    if tag in _BLOCK_TAGS and out.items:
        out.add(Break())
    inner_context = _styled(node, context)
    for child in node.children:
        _inline(child, inner_context, out)
    if tag in _BLOCK_TAGS and out.items:
        out.add(Break())


def _link(node: _Element, context: _Context, out: _Inlines) -> None:
    href = node.attrs.get("href")
    if href is None:
        for child in node.children:
            _inline(child, context, out)
        return
    lowered = href.lower()
    if lowered.startswith(("https://matrix.to/#/", "http://matrix.to/#/", "matrix:")):
        try:
            target = parse_link(href)
        except InvalidIdentifier:
            target = None
        if target is not None and target.event_id is None:
            text = clean_line(_plain(node), 200).strip()
            out.add(Pill(target.kind, clean_line(target.identifier, 255), text, href))
            return
    inner = _Inlines()
    inner._space = out._space
    link_context = _Context(context.marks, context.color, context.bg)
    for child in node.children:
        _inline(child, link_context, inner)
    children = tuple(inner.items)
    if not children:
        children = (Text(clean_line(href)),)
    out.add(Link(href, children))
    out._space = inner._space


def _blocks(nodes: list[_Element | str], context: _Context, out: _Blocks) -> None:
    for node in nodes:
        _block(node, context, out)


def _block(node: _Element | str, context: _Context, out: _Blocks) -> None:
    if (
        isinstance(node, str)
        or node.tag not in _BLOCK_TAGS
        or (node.tag == "div" and "data-mx-maths" in node.attrs)
    ):
        if isinstance(node, _Element) and node.tag == "div" and "data-mx-maths" in node.attrs:
            out.flush()
            out.block(Paragraph((Maths(node.attrs["data-mx-maths"], display=True),)))
            return
        if isinstance(node, _Element) and _has_block(node):
            # An inline element around blocks (<b><p>..</p></b>): its style goes down.
            _blocks(node.children, _styled(node, context), out)
            return
        _inline(node, context, out.inlines)
        return
    tag = node.tag
    if tag in ("p", "div", "summary", "caption", "li", "td", "th", "tr", "thead", "tbody"):
        out.flush()
        _blocks(node.children, context, out)
        out.flush()
    elif tag[0] == "h" and tag[1:].isdigit():
        inlines = _Inlines()
        for child in node.children:
            _inline(child, context, inlines)
        children = inlines.done()
        if children:
            out.block(Heading(int(tag[1:]), children))
    elif tag == "pre":
        text = _plain(node)
        text = text[1:] if text.startswith("\n") else text
        code = next((c for c in node.children if isinstance(c, _Element) and c.tag == "code"), None)
        language = _language(code.attrs.get("class")) if code is not None else None
        out.block(CodeBlock(language, text.rstrip("\n").expandtabs(4)))
    elif tag == "hr":
        out.block(Rule())
    elif tag in ("blockquote", "details", "ul", "ol") and out.depth >= MAX_BLOCK_DEPTH:
        # Too deep: the content joins the parent's flow.
        out.flush()
        _blocks(node.children, context, out)
        out.flush()
    elif tag == "blockquote":
        inner = _Blocks(out.depth + 1)
        _blocks(node.children, context, inner)
        out.block(Quote(inner.done()))
    elif tag in ("ul", "ol"):
        out.block(_list(node, context, out.depth + 1))
    elif tag == "table":
        _table(node, context, out)
    elif tag == "details":
        summary = _Inlines()
        inner = _Blocks(out.depth + 1)
        for child in node.children:
            if isinstance(child, _Element) and child.tag == "summary":
                for part in child.children:
                    _inline(part, context, summary)
            else:
                _block(child, context, inner)
        out.block(Details(summary.done(), inner.done()))


def _has_block(node: _Element) -> bool:
    stack = list(node.children)
    seen = 0
    while stack and seen < 10_000:
        child = stack.pop()
        seen += 1
        if isinstance(child, _Element):
            if child.tag in _BLOCK_TAGS:
                return True
            stack.extend(child.children)
    return False


def _list(node: _Element, context: _Context, depth: int) -> ListBlock:
    items: list[tuple[Block, ...]] = []
    loose = _Blocks(depth)
    for child in node.children:
        if isinstance(child, _Element) and child.tag == "li":
            if loose.blocks or loose.inlines.items:
                items.append(loose.done())
                loose = _Blocks(depth)
            item = _Blocks(depth)
            _blocks(child.children, context, item)
            items.append(item.done())
        else:
            _block(child, context, loose)
    rest = loose.done()
    if rest:
        items.append(rest)
    ordered = node.tag == "ol"
    return ListBlock(ordered, _start(node.attrs.get("start")) if ordered else 1, tuple(items))


def _table(node: _Element, context: _Context, out: _Blocks) -> None:
    rows: list[tuple[TableCell, ...]] = []

    def walk(element: _Element) -> None:
        for child in element.children:
            if not isinstance(child, _Element):
                continue
            if child.tag == "caption":
                caption = _Inlines()
                for part in child.children:
                    _inline(part, context, caption)
                children = caption.done()
                if children:
                    out.block(Paragraph(children))
            elif child.tag in ("thead", "tbody"):
                walk(child)
            elif child.tag == "tr":
                cells = []
                for cell in child.children:
                    if isinstance(cell, _Element) and cell.tag in ("td", "th"):
                        inlines = _Inlines()
                        for part in cell.children:
                            _inline(part, context, inlines)
                        cells.append(TableCell(cell.tag == "th", inlines.done()))
                if cells:
                    rows.append(tuple(cells))

    walk(node)
    if rows:
        out.block(Table(tuple(rows)))


def parse_html(html: str) -> Document:
    """Parse and sanitise ``formatted_body`` into a :class:`Document`. Never raises on input."""
    root = _element_tree(html if isinstance(html, str) else "")
    out = _Blocks(0)
    _blocks(root.children, _Context(), out)
    return Document(out.done())


def inline_text(children: tuple[Inline, ...]) -> str:
    """The plain text of inline content (spoilers included, pills as their target)."""
    parts: list[str] = []
    for child in children:
        if isinstance(child, Text):
            parts.append(child.text)
        elif isinstance(child, Break):
            parts.append("\n")
        elif isinstance(child, Link | Spoiler):
            parts.append(inline_text(child.children))
        elif isinstance(child, Pill):
            parts.append(child.text or child.target)
        elif isinstance(child, Image):
            parts.append(child.alt)
        elif isinstance(child, Maths):
            parts.append(child.latex)
    return "".join(parts)


# -- re-serialising ------------------------------------------------------------------------


def _serialise(element: _Element, parts: list[str]) -> None:
    for child in element.children:
        if isinstance(child, str):
            parts.append(escape(child, quote=False))
            continue
        tag = child.tag
        if tag == "a" and "href" not in child.attrs:
            _serialise(child, parts)
            continue
        if tag == "img" and "src" not in child.attrs:
            continue
        attributes = "".join(f' {name}="{escape(value)}"' for name, value in child.attrs.items())
        parts.append(f"<{tag}{attributes}>")
        if tag in _VOID:
            continue
        _serialise(child, parts)
        parts.append(f"</{tag}>")


def sanitize_html(html: str) -> str:
    """The allowed subset of ``html``, re-serialised: what :func:`parse_html` would keep.

    Tags outside the allow-list give way to their text; dropped containers
    (``script``, ``style``, ``mx-reply``...) vanish with their content; attributes
    outside each tag's allow-list, unsafe links and non-``mxc`` images are removed;
    text and attribute values are escaped and cleaned of terminal controls.
    """
    parts: list[str] = []
    _serialise(_element_tree(html if isinstance(html, str) else ""), parts)
    return "".join(parts)
