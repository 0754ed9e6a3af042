"""Messages from Jinja2 templates: lookup by locale, the context a template sees, and fitting
an SMS into its segments.

Templates live in ``{channel}/{step}.{locale}.j2``: the user's folders first, then the package
defaults. They run in Jinja2's sandbox with ``StrictUndefined``; customer data is passed as
data, never as template source, and HTML email is rendered with autoescaping on.

The only buyer-written text a template sees is ``first_name``: it is empty when
:func:`printable_name` finds it unsafe to print (a URL, domain, email, phone number, or over
:data:`NAME_LIMIT` characters), for every template, the owner's included. Product titles and
variants come from the shop, not the buyer, and are printed as they are (cleaned of control
characters by the models, and shortened to fit). An email subject is one line of at most
:data:`SUBJECT_LIMIT` characters.

What a template defines, per channel:

- **sms**: its text, or blocks ``variant1``, ``variant2``, … tried in that order until one
  fits ``max_segments``. As a last resort the product title and then the first name are
  shortened with an ellipsis; the link, the discount code and the template's own words (the
  opt-out text) are never cut.
- **email**: blocks ``subject``, ``text`` (plain text, not escaped) and ``html`` (the same
  template rendered again with autoescaping on).
- **whatsapp**: blocks ``template`` (the approved template's name), ``language`` (its Meta
  language code, e.g. ``pt_BR``), ``parameters`` (one body parameter per line), ``button``
  (the URL button's parameter) and ``body`` (the approved body with ``{{1}}``… placeholders,
  inside ``{% raw %}``, used to show the message in logs and previews). A parameter over
  :data:`WHATSAPP_PARAMETER_LIMIT` characters, or a body over :data:`WHATSAPP_BODY_LIMIT`,
  has the product titles and then the first name shortened as for SMS.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ._localeformat import MoneyFormat, format_date_skeleton, format_number
from .errors import MessageTooLong, RenderError, TemplateError
from .models import (
    CHANNEL_KINDS,
    ChannelKind,
    Checkout,
    Content,
    Discount,
    ShopInfo,
    image_url,
)
from .sms import PART, SINGLE, Encoding, fits, is_gsm, may_become_gsm, size, to_gsm

if TYPE_CHECKING:
    # Jinja2, Babel and regex are imported where they are first needed, so that importing
    # this module (the CLI, the engine) costs nothing until a message is rendered.
    import jinja2
    from babel import Locale
    from jinja2 import nodes

__all__ = [
    "NAME_LIMIT",
    "SUBJECT_LIMIT",
    "WHATSAPP_PARAMETER_LIMIT",
    "MessageContext",
    "Renderer",
    "TemplateRenderer",
    "normalize_locale",
    "printable_name",
]

_TEMPLATE_NAME = re.compile(
    "^(" + "|".join(CHANNEL_KINDS) + r")/(\d+)\.([A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,8})*)\.j2$"
)
_VARIANT = re.compile(r"^variant(\d+)$")
_PLACEHOLDER = re.compile(r"\{\{\s*(\d+)\s*\}\}")
_WHATSAPP_NAME = re.compile(r"^[a-z0-9_]{1,512}$")
_WHATSAPP_LANGUAGE = re.compile(r"^[a-z]{2,3}(?:_[A-Z]{2})?$")
_ELLIPSIS_MARK = "\ue000"
"""Stands for the ellipsis of a shortened value until the text's encoding is known."""
_LANGUAGE_FALLBACK = {"no": "nb", "nn": "nb"}
_T = TypeVar("_T")
WHATSAPP_BODY_LIMIT = 1024
"""Meta refuses a template message whose body with its parameters is longer than this."""
WHATSAPP_PARAMETER_LIMIT = 1024
"""Meta refuses a body parameter longer than this (in characters)."""
SUBJECT_LIMIT = 200
"""An email subject longer than this (in characters) is shortened with an ellipsis."""
NAME_LIMIT = 40
"""A first name longer than this (in characters) is not printed: see :func:`printable_name`."""
_LOOKS_LINKED = re.compile(r"@|://|[/\\]|\bwww\b|[^\W_][.\u3002\uff0e\uff61][^\W\d_]{2,}", re.I)
_DIGIT = re.compile(r"\d")


@dataclass(frozen=True, slots=True)
class MessageContext:
    """Everything a template may show."""

    checkout: Checkout
    shop: ShopInfo
    locale: str
    link: str
    discount: Discount | None = None
    unsubscribe_url: str | None = None
    template_variant: str | None = None
    """The experiment arm's template variant (``template = "…"`` of the arm), if any."""


@runtime_checkable
class Renderer(Protocol):
    """Turns a step's template for a channel into :class:`~cartrescue.models.Content`.

    Raises :class:`~cartrescue.errors.RenderError` (``TemplateError``, ``MessageTooLong``)
    when it cannot; the engine records that and does not send.
    """

    def render(self, channel: ChannelKind, step: int, context: MessageContext) -> Content: ...


def normalize_locale(raw: str | None) -> str:
    """``pt_br`` → ``pt-BR``, ``NB-no`` → ``nb-NO``; empty → ``""``."""
    if not raw:
        return ""
    parts = [p for p in re.split(r"[-_]", raw.strip()) if p]
    if not parts:
        return ""
    out = [parts[0].lower()]
    for part in parts[1:]:
        if len(part) == 2 and part.isalpha():
            out.append(part.upper())
        elif len(part) == 4 and part.isalpha():
            out.append(part.title())
        else:
            out.append(part)
    return "-".join(out)


def printable_name(raw: str | None) -> str:
    """The buyer's first name as templates may print it, or ``""`` when it must not be.

    Anyone can start a checkout with someone else's phone number or address, so the name is
    text a stranger wrote, sent from the shop's own sender. It is not printed (templates fall
    back to their greeting without a name) when it is longer than :data:`NAME_LIMIT`
    characters or looks like something a phone or mail client would make
    a link of or a reader would act on: a URL (``://``, ``www``, a ``/`` or ``\\``), a
    domain (``evil.example``, also with full-width or ideographic dots), an email address
    (``@``), or a phone number (three digits or more). Whitespace runs become one space.
    """
    if not raw:
        return ""
    name = " ".join(raw.split())
    if not name or len(name) > NAME_LIMIT:
        return ""
    probe = unicodedata.normalize("NFKC", name)
    if _LOOKS_LINKED.search(probe) or len(_DIGIT.findall(probe)) >= 3:
        return ""
    return name


def _language(locale: str) -> str:
    return locale.split("-")[0]


@lru_cache(maxsize=256)
def _babel_locale(locale: str) -> Locale:
    from babel import Locale, UnknownLocaleError

    try:
        return Locale.parse(locale.replace("-", "_"))
    except (UnknownLocaleError, ValueError, TypeError):
        try:
            return Locale.parse(_language(locale))
        except (UnknownLocaleError, ValueError, TypeError):
            return Locale("en")


@lru_cache(maxsize=64)
def _zone_or_utc(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name) if name else ZoneInfo("UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


@lru_cache(maxsize=1024)
def _normalized(raw: str | None) -> str:
    return normalize_locale(raw)


@lru_cache(maxsize=256)
def _direction(locale: str) -> str:
    return "rtl" if _babel_locale(locale).character_order == "right-to-left" else "ltr"


@lru_cache(maxsize=1024)
def _money_format(locale: str, currency: str) -> MoneyFormat:
    return MoneyFormat(_babel_locale(locale), currency)


def _money(amount: Decimal, currency: str, locale: str) -> str:
    try:
        return _money_format(locale, currency)(amount)
    except (ValueError, KeyError):
        return f"{amount} {currency}"


def _link_path(link: str) -> str:
    parts = urlsplit(link)
    path = parts.path.lstrip("/")
    if parts.query:
        path += "?" + parts.query
    if parts.fragment:
        path += "#" + parts.fragment
    return path


@lru_cache(maxsize=1)
def _grapheme_pattern() -> Any:
    import regex

    return regex.compile(r"\X")


def _graphemes(value: str) -> list[str]:
    return list(_grapheme_pattern().findall(value))


def _cut(graphemes: list[str], keep: int | None) -> str:
    if keep is None or keep >= len(graphemes):
        return "".join(graphemes)
    return "".join(graphemes[:keep]).rstrip(" ,.;:-–—/(") + _ELLIPSIS_MARK


@dataclass
class _Compiled:
    """One template, compiled for plain text and (for email) for HTML.

    ``text_parents`` and ``html_parents`` are the templates it extends, nearest first, when
    registering their blocks is all its top level does; ``None`` when the top level must run
    before a block can be rendered (it sets variables, defines macros, imports, or extends
    a name computed at render time).
    """

    name: str
    locale: str
    text: jinja2.Template
    html: jinja2.Template | None
    text_parents: tuple[jinja2.Template, ...] | None
    html_parents: tuple[jinja2.Template, ...] | None
    variants: tuple[str, ...]


def _static_parent(ast: nodes.Template) -> tuple[bool, str | None]:
    """Whether the top level of ``ast`` holds only blocks, text and at most one ``extends``
    of a constant name, and that name (``None`` when it extends nothing)."""
    from jinja2 import nodes

    parent: str | None = None
    for node in ast.body:
        if isinstance(node, nodes.Block):
            continue
        if isinstance(node, nodes.Output) and all(
            isinstance(child, nodes.TemplateData) for child in node.nodes
        ):
            continue
        if (
            isinstance(node, nodes.Extends)
            and parent is None
            and isinstance(node.template, nodes.Const)
            and isinstance(node.template.value, str)
        ):
            parent = node.template.value
            continue
        return False, None
    return True, parent


@dataclass
class _Fields:
    """The customer data the fitting may shorten, split into graphemes once."""

    name: list[str]
    titles: list[list[str]]

    @property
    def longest_title(self) -> int:
        return max((len(t) for t in self.titles), default=0)


class TemplateRenderer:
    """Renders ``{channel}/{step}.{locale}.j2`` from ``template_dirs``, then the defaults.

    Locale fallback: the customer's locale (``nb-NO``), its language (``nb``), another region
    of that language when only that exists (``pt`` → ``pt-BR``), then the shop's locale
    (``shop_locale``, else the shop's in the context) the same way, then ``en``.

    ``max_segments`` is how many SMS segments a message may take (default one);
    ``smart_encoding`` replaces look-alike characters (curly quotes, dashes, non-breaking
    spaces) with GSM characters in SMS whenever that turns the message into GSM-7.
    """

    def __init__(
        self,
        template_dirs: Sequence[str | Path] = (),
        *,
        max_segments: int = 1,
        smart_encoding: bool = True,
        shop_locale: str | None = None,
    ) -> None:
        if isinstance(max_segments, bool) or not isinstance(max_segments, int):
            raise TypeError("max_segments must be a whole number")
        if not 1 <= max_segments <= 10:
            raise ValueError(f"max_segments must be between 1 and 10, got {max_segments}")
        self.template_dirs = tuple(Path(d) for d in template_dirs)
        self.max_segments = max_segments
        self.smart_encoding = bool(smart_encoding)
        self.shop_locale = normalize_locale(shop_locale) or None
        import jinja2
        from jinja2.sandbox import SandboxedEnvironment

        loader = jinja2.ChoiceLoader(
            [
                jinja2.FileSystemLoader([str(d) for d in self.template_dirs]),
                jinja2.PackageLoader("cartrescue", "templates"),
            ]
        )
        options: dict[str, Any] = {
            "loader": loader,
            "undefined": jinja2.StrictUndefined,
            "trim_blocks": True,
            "lstrip_blocks": True,
            "keep_trailing_newline": False,
            "auto_reload": False,
        }
        self._text_env = SandboxedEnvironment(autoescape=False, **options)
        self._html_env = SandboxedEnvironment(autoescape=True, **options)
        self._available: dict[tuple[str, int], set[str]] = {}
        for name in loader.list_templates():
            match = _TEMPLATE_NAME.match(name)
            if match:
                channel, step, locale = match.groups()
                key = (channel, int(step))
                self._available.setdefault(key, set()).add(normalize_locale(locale))
        self._resolved: dict[tuple[str, int, str, str], tuple[str, str]] = {}
        self._compiled: dict[str, _Compiled] = {}
        # Send threads render concurrently: at the start of a pass each of them would miss
        # the cache and compile the same template, all holding the GIL the sends need.
        self._compiling = threading.Lock()
        self._globals: dict[jinja2.Template, dict[str, Any]] = {}

    # -- lookup -------------------------------------------------------------------------
    def locales(self, channel: str | None = None) -> list[str]:
        """The locales that have at least one template (for ``channel``, if given)."""
        found: set[str] = set()
        for (kind, _step), locales in self._available.items():
            if channel is None or kind == channel:
                found |= locales
        return sorted(found)

    def locale_chain(self, locale: str, default: str) -> list[str]:
        """The locales tried for ``locale`` in order (before looking at what exists)."""
        chain: list[str] = []
        for raw in (locale, default, "en"):
            wanted = normalize_locale(raw)
            if not wanted:
                continue
            language = _language(wanted)
            for candidate in (wanted, language, _LANGUAGE_FALLBACK.get(language, "")):
                if candidate and candidate not in chain:
                    chain.append(candidate)
        return chain

    def resolve(self, channel: ChannelKind, step: int, locale: str, default: str) -> str:
        """The template name used for this channel, step and locale; raises
        ``TemplateError`` when there is none."""
        return self._lookup(channel, step, locale, default)[0]

    def _lookup(self, channel: str, step: int, locale: str, default: str) -> tuple[str, str]:
        key = (channel, step, locale, default)
        found = self._resolved.get(key)
        if found is None:
            found = self._resolved[key] = self._find(channel, step, locale, default)
        return found

    def _find(self, channel: str, step: int, locale: str, default: str) -> tuple[str, str]:
        available = self._available.get((channel, step), set())
        tried: list[str] = []
        for candidate in self.locale_chain(locale, default):
            tried.append(candidate)
            if candidate in available:
                return f"{channel}/{step}.{candidate}.j2", candidate
            if "-" not in candidate:
                regional = sorted(a for a in available if _language(a) == candidate)
                if regional:
                    return f"{channel}/{step}.{regional[0]}.j2", regional[0]
        names = ", ".join(f"{channel}/{step}.{c}.j2" for c in tried)
        raise TemplateError(f"no template for step {step} (tried {names})")

    def _compile(self, name: str, locale: str, channel: str) -> _Compiled:
        compiled = self._compiled.get(name)
        if compiled is not None:
            return compiled
        with self._compiling:
            compiled = self._compiled.get(name)
            if compiled is None:
                compiled = self._compiled[name] = self._compile_once(name, locale, channel)
            return compiled

    def _compile_once(self, name: str, locale: str, channel: str) -> _Compiled:
        import jinja2

        try:
            text = self._text_env.get_template(name)
            html = self._html_env.get_template(name) if channel == "email" else None
            parents = self._parents(name)
            text_parents = html_parents = None
            if parents is not None:
                text_parents = tuple(self._text_env.get_template(p) for p in parents)
                if html is not None:
                    html_parents = tuple(self._html_env.get_template(p) for p in parents)
        except jinja2.TemplateSyntaxError as err:
            raise TemplateError(
                f"line {err.lineno}: {err.message}", template=err.name or name
            ) from err
        except jinja2.TemplateError as err:
            raise TemplateError(str(err), template=name) from err
        variants = sorted(
            (n for n in text.blocks if _VARIANT.match(n)), key=lambda n: int(n[len("variant") :])
        )
        return _Compiled(name, locale, text, html, text_parents, html_parents, tuple(variants))

    def _parents(self, name: str) -> list[str] | None:
        """The names ``name`` extends, nearest first, when each of them is static (see
        :class:`_Compiled`); else ``None``."""
        loader = self._text_env.loader
        assert loader is not None
        chain: list[str] = []
        current = name
        while True:
            source = loader.get_source(self._text_env, current)[0]
            static, parent = _static_parent(self._text_env.parse(source, current))
            if not static or parent in chain or parent == name:
                return None
            if parent is None:
                return chain
            chain.append(parent)
            current = parent

    # -- rendering ------------------------------------------------------------------------
    def render(self, channel: ChannelKind, step: int, context: MessageContext) -> Content:
        return self.render_with_notes(channel, step, context)[0]

    def render_with_notes(
        self, channel: ChannelKind, step: int, context: MessageContext
    ) -> tuple[Content, tuple[str, ...]]:
        """Like :meth:`render`, with notes on how the content was fitted (``variant 2 of 3``,
        a shortened field), for previews."""
        import jinja2

        default = self.shop_locale or context.shop.locale
        name, locale = self._lookup(channel, step, context.locale, default)
        compiled = self._compile(name, locale, channel)
        try:
            variables = _variables(context, locale, whatsapp=channel == "whatsapp")
            if channel == "sms":
                return self._render_sms(compiled, variables, context)
            if channel == "email":
                return self._render_email(compiled, variables), ()
            if channel == "whatsapp":
                return self._render_whatsapp(compiled, variables)
        except RenderError:
            raise
        except jinja2.TemplateError as err:
            raise TemplateError(str(err), template=name) from err
        except Exception as err:  # a template's own error (1/0, a bad filter argument), or
            # a value that cannot be formatted (a total of 1e999999)
            raise TemplateError(f"{type(err).__name__}: {err}", template=name) from err
        raise TemplateError(f"unknown channel {channel!r}", template=name)

    def _blocks(
        self,
        template: jinja2.Template,
        parents: tuple[jinja2.Template, ...] | None,
        variables: Mapping[str, Any],
    ) -> Callable[[str], str | None]:
        # What ``template.new_context(variables)`` does, with the template's globals (a chain
        # of mappings, slow to walk) copied once rather than on every render.
        flat = self._globals.get(template)
        if flat is None:
            flat = self._globals[template] = dict(template.globals)
        environment = template.environment
        context = environment.context_class(
            environment, {**flat, **variables}, template.name, template.blocks, globals=flat
        )
        if parents is None:
            for _ in template.root_render_func(context):
                pass
        else:
            # What the top level of an extending template does before it renders its parent
            # (which would render every block once more, for nothing).
            for parent in parents:
                for name, function in parent.blocks.items():
                    context.blocks.setdefault(name, []).append(function)

        def block(name: str) -> str | None:
            functions = context.blocks.get(name)
            if not functions:
                return None
            return "".join(functions[0](context))

        return block

    def _render_sms(
        self, compiled: _Compiled, variables: dict[str, Any], context: MessageContext
    ) -> tuple[Content, tuple[str, ...]]:
        keep = [v for v in (context.link, variables["discount_code"]) if v]
        closest: tuple[int, Encoding, int] | None = None  # (units over, encoding, units)

        def attempt(variant: str | None, block: Callable[[str], str | None]) -> str | None:
            """The finished text when it fits, else None (remembering the closest miss)."""
            nonlocal closest
            raw = block(variant or "")
            text = self._finish_sms(raw or "", keep)
            if not text:
                return None  # a variant that does not apply here renders nothing
            encoding, units = size(text)
            if units <= SINGLE[encoding] or (
                self.max_segments > 1 and fits(text, self.max_segments)
            ):
                return text
            over = units - SINGLE[encoding]
            if closest is None or over < closest[0]:
                closest = (over, encoding, units)
            return None

        def blocks(values: dict[str, Any]) -> Callable[[str], str | None]:
            if not compiled.variants:
                return lambda _: compiled.text.render(values)
            return self._blocks(compiled.text, compiled.text_parents, values)

        variants: Sequence[str | None] = compiled.variants or (None,)
        block = blocks(variables)
        for index, variant in enumerate(variants):
            text = attempt(variant, block)
            if text is not None:
                notes = [f"variant {index + 1} of {len(variants)}"] if index else []
                return Content(text=text), tuple(notes)
        fields = _Fields(
            name=_graphemes(variables["first_name"]),
            titles=[_graphemes(item["title"]) for item in variables["items"]],
        )
        for index, variant in enumerate(variants):

            def try_values(values: dict[str, Any], variant: str | None = variant) -> str | None:
                return attempt(variant, blocks(values))

            shortened = self._shorten(variables, fields, try_values)
            if shortened is not None:
                text, what = shortened
                notes = [f"variant {index + 1} of {len(variants)}"] if index else []
                return Content(text=text), (*notes, f"{what} shortened")
        if closest is None:
            raise TemplateError("renders an empty message", template=compiled.name)
        _, encoding, units = closest
        limit = SINGLE[encoding] if self.max_segments == 1 else PART[encoding] * self.max_segments
        raise MessageTooLong(
            template=compiled.name,
            locale=context.locale,
            units=units,
            limit=limit,
            encoding=encoding,
        )

    def _shorten(
        self,
        variables: dict[str, Any],
        fields: _Fields,
        attempt: Callable[[dict[str, Any]], _T | None],
    ) -> tuple[_T, str] | None:
        """The text with the longest title (then name) that ``attempt`` accepts, and which
        was shortened; or None."""

        def with_limits(title: int | None, name: int | None) -> _T | None:
            values = dict(variables)
            values["items"] = [
                dict(item, title=_cut(graphemes, title))
                for item, graphemes in zip(variables["items"], fields.titles, strict=True)
            ]
            values["product"] = values["items"][0]["title"] if values["items"] else ""
            values["first_name"] = _cut(fields.name, name)
            return attempt(values)

        def longest(limit: int, probe: Callable[[int], _T | None]) -> _T | None:
            # Fitting is monotone in the kept length: binary-search the longest that fits.
            found: _T | None = None
            low, high = 1, limit
            while low <= high:
                middle = (low + high) // 2
                text = probe(middle)
                if text is None:
                    high = middle - 1
                else:
                    found, low = text, middle + 1
            return found

        title_floor: int | None = None
        if fields.longest_title > 1:
            found = longest(fields.longest_title - 1, lambda k: with_limits(k, None))
            if found is not None:
                return found, "title"
            title_floor = 1
        if len(fields.name) > 1:
            found = longest(len(fields.name) - 1, lambda k: with_limits(title_floor, k))
            if found is not None:
                return found, "title and name" if title_floor else "name"
        return None

    def _finish_sms(self, raw: str, keep: Sequence[str]) -> str:
        text = raw.strip()
        if _ELLIPSIS_MARK in text:
            plain = self._smart(text.replace(_ELLIPSIS_MARK, "..."), keep)
            if is_gsm(plain):
                return plain
            text = text.replace(_ELLIPSIS_MARK, "…")
        return self._smart(text, keep)

    def _smart(self, text: str, keep: Sequence[str]) -> str:
        if not self.smart_encoding or is_gsm(text) or not may_become_gsm(text):
            return text
        converted = _translate_outside(text, keep)
        return converted if is_gsm(converted) else text

    def _render_email(self, compiled: _Compiled, variables: dict[str, Any]) -> Content:
        block = self._blocks(compiled.text, compiled.text_parents, variables)
        subject = block("subject")
        if subject is None or not subject.strip():
            raise TemplateError("an email template needs a subject block", template=compiled.name)
        text = block("text")
        if text is None:
            text = compiled.text.render(variables)
        html: str | None = None
        if compiled.html is not None:
            html = self._blocks(compiled.html, compiled.html_parents, variables)("html")
        return Content(
            text=_tidy_text(text),
            subject=_limit(" ".join(subject.split()), SUBJECT_LIMIT),
            html=html.strip() if html is not None else None,
        )

    def _render_whatsapp(
        self, compiled: _Compiled, variables: dict[str, Any]
    ) -> tuple[Content, tuple[str, ...]]:
        """The template message; when a parameter or the body is over Meta's limits, the
        product titles and then the first name are shortened as for SMS."""
        content, problem = self._whatsapp_content(compiled, variables)
        if problem is None:
            return content, ()
        fields = _Fields(
            name=_graphemes(variables["first_name"]),
            titles=[_graphemes(item["title"]) for item in variables["items"]],
        )

        def attempt(values: dict[str, Any]) -> Content | None:
            shorter, still = self._whatsapp_content(compiled, values)
            return shorter if still is None else None

        shortened = self._shorten(variables, fields, attempt)
        if shortened is None:
            raise TemplateError(problem, template=compiled.name)
        content, what = shortened
        return content, (f"{what} shortened",)

    def _whatsapp_content(
        self, compiled: _Compiled, variables: dict[str, Any]
    ) -> tuple[Content, str | None]:
        """The content, and what makes it too long for WhatsApp (``None`` when it fits)."""
        block = self._blocks(compiled.text, compiled.text_parents, variables)
        name = (block("template") or "").strip()
        language = (block("language") or "").strip()
        where = compiled.name
        if not _WHATSAPP_NAME.match(name):
            raise TemplateError(
                f"the template block must give the approved template's name (lower-case "
                f"letters, digits, underscores), got {name!r}",
                template=where,
            )
        if not _WHATSAPP_LANGUAGE.match(language):
            raise TemplateError(
                f"the language block must give a Meta language code such as en or pt_BR, "
                f"got {language!r}",
                template=where,
            )
        raw = block("parameters") or ""
        raw = raw.removesuffix("\n")  # the line break before {% endblock %}
        parameters: list[str] = []
        if raw.strip():
            for number, line in enumerate(raw.split("\n"), start=1):
                value = " ".join(line.split()).replace(_ELLIPSIS_MARK, "…")
                if not value:
                    raise TemplateError(
                        f"parameter {number} is empty; WhatsApp refuses empty parameters",
                        template=where,
                    )
                parameters.append(value)
        problem: str | None = None
        for number, value in enumerate(parameters, start=1):
            if len(value) > WHATSAPP_PARAMETER_LIMIT:
                problem = (
                    f"parameter {number} is {len(value)} characters; WhatsApp allows "
                    f"{WHATSAPP_PARAMETER_LIMIT}"
                )
                break
        button = (block("button") or "").strip() or None
        header_image = block("header_image")
        if header_image is not None:
            header_image = header_image.strip()
            if image_url(header_image) is None:
                raise TemplateError(
                    "the header_image block must give an https:// image link for the "
                    f"template's image header, got {header_image[:80]!r} (no item has an "
                    'image? write {{ image_url or "https://…/fallback.jpg" }})',
                    template=where,
                )
        body = block("body")
        if body is None:
            text = " | ".join(parameters)
        else:

            def fill(match: re.Match[str]) -> str:
                index = int(match.group(1))
                if not 1 <= index <= len(parameters):
                    raise TemplateError(
                        f"the body uses {{{{{index}}}}} but there are {len(parameters)} "
                        f"parameter(s)",
                        template=where,
                    )
                return parameters[index - 1]

            text = _PLACEHOLDER.sub(fill, body.strip())
            if problem is None and len(text) > WHATSAPP_BODY_LIMIT:
                problem = (
                    f"the body is {len(text)} characters with its parameters; WhatsApp allows "
                    f"{WHATSAPP_BODY_LIMIT}"
                )
        if button is not None:
            text += f"\n[{variables['link']}]"
        content = Content(
            text=text,
            template=name,
            language=language,
            parameters=tuple(parameters),
            button_parameter=button,
            header_image=header_image,
        )
        return content, problem


def _translate_outside(text: str, keep: Sequence[str]) -> str:
    """``to_gsm`` on ``text`` except inside the values in ``keep`` (the link, the code)."""
    pieces = [text]
    for value in sorted(keep, key=len, reverse=True):
        split: list[str] = []
        for index, piece in enumerate(pieces):
            if index % 2:
                split.append(piece)
                continue
            chunks = piece.split(value)
            for i, chunk in enumerate(chunks):
                if i:
                    split.append(value)
                split.append(chunk)
        pieces = split
    return "".join(to_gsm(p) if i % 2 == 0 else p for i, p in enumerate(pieces))


def _limit(text: str, limit: int) -> str:
    """``text`` cut at a grapheme boundary to at most ``limit`` characters with "…"."""
    if len(text) <= limit:
        return text
    kept: list[str] = []
    used = 1
    for grapheme in _grapheme_pattern().finditer(text):
        used += len(grapheme.group())
        if used > limit:
            break
        kept.append(grapheme.group())
    return "".join(kept).rstrip() + "…"


def _tidy_text(text: str) -> str:
    lines = [line.rstrip() for line in text.strip().splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines))


_CONTROL = re.compile(r"[\r\n\t\v\f]+")


def _clean(value: str | None, whatsapp: bool) -> str:
    if not value:
        return ""
    return _CONTROL.sub(" ", value) if whatsapp else value


def _incentive_amount(
    discount: Discount, currency: str, locale: str, babel_locale: Any
) -> str | None:
    """The percentage (a number), the amount off (money), or None for free shipping."""
    if discount.percent is not None:
        return str(format_number(discount.percent, babel_locale))
    if discount.amount is not None:
        return _money(discount.amount, currency, locale)
    return None


def _variables(context: MessageContext, template_locale: str, *, whatsapp: bool) -> dict[str, Any]:
    """The names a template sees. See the README for the list."""
    checkout = context.checkout
    customer = checkout.customer
    wanted = _normalized(context.locale)
    locale_key = wanted if _language(wanted) == _language(template_locale) else template_locale
    babel_locale = _babel_locale(locale_key)
    items = [
        {
            "title": _clean(li.title, whatsapp),
            "variant": _clean(li.variant, whatsapp) or None,
            "quantity": li.quantity,
            "image_url": li.image_url,
        }
        for li in checkout.line_items
    ]
    discount = context.discount
    zone = _zone_or_utc(context.shop.timezone)
    expires = (
        format_date_skeleton("MMMMd", discount.expires_at, zone, babel_locale) if discount else None
    )
    remaining = context.shop.free_shipping_remaining(checkout)
    return {
        "first_name": printable_name(customer.first_name if customer else None),
        "items": items,
        "product": items[0]["title"] if items else "",
        "more_items": max(len(items) - 1, 0),
        "image_url": next((li.image_url for li in checkout.line_items if li.image_url), None),
        "item_count": sum(li.quantity for li in checkout.line_items),
        "total": _money(checkout.total, checkout.currency, locale_key),
        "shop_name": context.shop.name,
        "shop_url": context.shop.home_url,
        "link": context.link,
        "link_path": _link_path(context.link),
        "discount": discount is not None,
        "discount_code": discount.code if discount else None,
        "discount_percent": format_number(discount.percent, babel_locale)
        if discount and discount.percent is not None
        else None,
        "discount_expires": expires,
        "incentive": {
            "kind": discount.kind.value,
            "amount": _incentive_amount(discount, checkout.currency, locale_key, babel_locale),
            "code": discount.code,
            "expires": expires,
            "in_link": bool(discount.url),
        }
        if discount
        else None,
        "free_shipping_remaining": _money(remaining, checkout.currency, locale_key)
        if remaining is not None
        else None,
        "discount_in_link": bool(discount and discount.url),
        "unsubscribe_url": context.unsubscribe_url,
        "template_variant": context.template_variant,
        "locale": template_locale,
        "language": _language(template_locale),
        "direction": _direction(locale_key),
    }
