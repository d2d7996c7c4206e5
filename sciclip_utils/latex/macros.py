"""User macros of a document: their definitions, and bounded expansion of a token list.

Expansion is bounded by `Macros.max_expansions` and `Macros.max_tokens`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .source import CS_NAME_RE, MAX_OPTIONAL, Source, cached_source, strip_comments


@dataclass
class MacroDef:
    """One user macro: ``nargs`` parameters, the first optional with ``default`` when that is not None."""

    nargs: int = 0
    default: str | None = None
    body: str = ""
    builtin_alias: bool = False  # \let to a non-user command: expands to that command, never re-expanded
    skip_star: bool = False  # \DeclarePairedDelimiter: a following * is swallowed


@dataclass
class Macros:
    """User macro table with the limits used when expanding it."""

    definitions: dict[str, MacroDef] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)  # definitions not understood (delimited parameters)
    max_expansions: int = 2_000
    max_tokens: int = 100_000
    _token_cache: dict[str, list[str]] = field(default_factory=dict, repr=False, compare=False)
    _callers: dict[re.Pattern, frozenset[str]] = field(default_factory=dict, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.definitions)

    def __contains__(self, name: object) -> bool:
        return name in self.definitions

    def body_tokens(self, name: str) -> list[str]:
        tokens = self._token_cache.get(name)
        if tokens is None:
            tokens = self._token_cache[name] = tokenize(self.definitions[name].body)
        return tokens

    def matching(self, pattern: re.Pattern) -> frozenset[str]:
        """Macros whose body matches ``pattern``, and macros calling those (a few levels deep); cached."""
        found = self._callers.get(pattern)
        if found is None:
            matching = {n for n, d in self.definitions.items() if pattern.search(d.body)}
            calls = {n: set(re.findall(r"\\([a-zA-Z@]+)", d.body)) for n, d in self.definitions.items()}
            for _ in range(4):
                matching |= {n for n, c in calls.items() if c & matching}
            found = self._callers[pattern] = frozenset(matching)
        return found


_DEF_RE = re.compile(
    r"\\\\|\\(newcommand|renewcommand|providecommand|DeclareRobustCommand|newrobustcmd|renewrobustcmd"
    r"|providerobustcmd|def|gdef|edef|xdef|let|DeclareMathOperator|NewDocumentCommand|RenewDocumentCommand"
    r"|ProvideDocumentCommand|DeclareDocumentCommand|DeclarePairedDelimiter)(?![a-zA-Z@])"
)
_KEEP_EXISTING = frozenset(
    {"newcommand", "DeclareMathOperator", "NewDocumentCommand", "DeclarePairedDelimiter"}
)
_ONLY_IF_ABSENT = frozenset({"providecommand", "providerobustcmd", "ProvideDocumentCommand"})
_DOCUMENT_SPEC_RE = re.compile(r"(o|O\{([^{}]*)\})?(m*)")


def _read_name(src: Source, i: int, limit: int) -> tuple[str, int] | None:
    """``\\name`` or ``{\\name}`` at ``i``: (name without backslash, next offset)."""
    group = src.group(i, limit)
    if group is not None:
        inner = src.masked[group[0] : group[1]].strip()
        m = CS_NAME_RE.fullmatch(inner)
        return (inner[1:], group[2]) if m else None
    i = src.skip_ws(i)
    m = CS_NAME_RE.match(src.masked, i)
    return (m.group()[1:], m.end()) if m else None


def collect_macros(tex: str) -> Macros:
    """User macros of a document (preamble and body): ``\\newcommand``/``\\renewcommand``/
    ``\\providecommand`` (starred, ``[n]`` arguments, ``[default]`` optional first argument),
    ``\\DeclareRobustCommand``, ``\\def`` (``#1#2`` parameters), ``\\let``, ``\\DeclareMathOperator``,
    ``\\NewDocumentCommand`` (``m``/``o`` specs) and ``\\DeclarePairedDelimiter``. Definitions inside
    another definition's body are not collected; ``\\newcommand`` keeps an existing definition (as LaTeX)."""
    src = cached_source(tex)
    limit = len(tex)
    macros = Macros()
    defs = macros.definitions
    pos = 0
    while (m := _DEF_RE.search(src.masked, pos)) is not None:
        pos = m.end()
        command = m.group(1)
        if command is None:
            continue
        named = _read_name(src, src.star(src.skip_ws(pos)), limit)
        if named is None:
            continue
        name, pos = named
        definition: MacroDef | None = None
        if command == "let":
            i = src.skip_ws(pos)
            i = src.skip_ws(i + 1) if src.masked.startswith("=", i) else i
            target = CS_NAME_RE.match(src.masked, i)
            if target is None:
                continue
            pos = target.end()
            existing = defs.get(target.group()[1:])
            definition = (
                MacroDef(**vars(existing)) if existing else MacroDef(body=target.group(), builtin_alias=True)
            )
        elif command in ("def", "gdef", "edef", "xdef"):
            brace = src.masked.find("{", pos, pos + 200)
            params = src.masked[pos:brace] if brace >= 0 else ""
            group = src.group(brace, limit) if brace >= 0 else None
            if group is None:
                continue
            pos = group[2]
            if not re.fullmatch(r"\s*(#[1-9]\s*)*", params):
                macros.skipped.append(name)
                continue
            definition = MacroDef(nargs=params.count("#"), body=src.masked[group[0] : group[1]])
        elif command == "DeclareMathOperator":
            group = src.group(pos, limit)
            if group is None:
                continue
            pos = group[2]
            definition = MacroDef(body="\\operatorname{" + src.masked[group[0] : group[1]] + "}")
        elif command == "DeclarePairedDelimiter":
            left = src.argument(pos, limit)
            right = src.argument(left[2], limit) if left else None
            if right is None:
                continue
            pos = right[2]
            body = f"{src.masked[left[0] : left[1]]}#1{src.masked[right[0] : right[1]]}"
            definition = MacroDef(nargs=1, body=body, skip_star=True)
        elif command.endswith("DocumentCommand"):
            spec = src.group(pos, limit)
            body = src.group(spec[2], limit) if spec else None
            if body is None:
                continue
            pos = body[2]
            parsed = _DOCUMENT_SPEC_RE.fullmatch(re.sub(r"\s+", "", src.masked[spec[0] : spec[1]]))
            if parsed is None:
                macros.skipped.append(name)
                continue
            optional = parsed.group(1) is not None
            definition = MacroDef(
                nargs=len(parsed.group(3)) + optional,
                default=(parsed.group(2) or "") if optional else None,
                body=src.masked[body[0] : body[1]],
            )
        else:  # \newcommand family
            nargs, default = 0, None
            count = src.optional(pos, limit)
            if count is not None:
                pos = count[2]
                digits = src.masked[count[0] : count[1]].strip()
                nargs = int(digits) if digits.isdigit() else 0
                first = src.optional(pos, limit)
                if first is not None:
                    pos = first[2]
                    default = src.masked[first[0] : first[1]]
            body = src.argument(pos, limit)
            if body is None:
                continue
            pos = body[2]
            definition = MacroDef(nargs=min(nargs, 9), default=default, body=src.masked[body[0] : body[1]])
        if name in defs and (command in _KEEP_EXISTING or command in _ONLY_IF_ABSENT):
            continue
        defs[name] = definition
    return macros


# --------------------------------------------------------------------------------------------------
# Tokens and bounded expansion
# --------------------------------------------------------------------------------------------------

_TOKEN_RE = re.compile(r"\\(?:[a-zA-Z@]+|.?)|#[1-9#]?|[^\W_]+|\s+|.", re.S)


def tokenize(text: str) -> list[str]:
    """Control sequences, parameters, runs of letters/digits, runs of spaces, single other characters."""
    return _TOKEN_RE.findall(text)


def is_word(token: str) -> bool:
    return len(token) > 1 and token[0] == "\\" and (token[1].isalpha() or token[1] == "@")


def detokenize(tokens: list[str]) -> str:
    pieces = []
    for index, token in enumerate(tokens):
        pieces.append(token)
        if is_word(token) and index + 1 < len(tokens):
            following = tokens[index + 1]
            if following[0].isalpha() or following[0] == "@":
                pieces.append(" ")
    return "".join(pieces)


def _pop_argument(pending: list[str]) -> list[str]:
    """Pop one undelimited macro argument from a reversed token stack."""
    while pending and pending[-1].isspace():
        pending.pop()
    if not pending:
        return []
    token = pending.pop()
    if token == "}":
        pending.append(token)
        return []
    if token == "{":
        collected: list[str] = []
        depth = 1
        while pending:
            token = pending.pop()
            if token == "{":
                depth += 1
            elif token == "}":
                depth -= 1
                if depth == 0:
                    break
            collected.append(token)
        return collected
    if len(token) > 1 and token[0] not in "\\#" and not token.isspace():
        pending.append(token[1:])
        return [token[0]]
    return [token]


def _pop_optional(pending: list[str]) -> list[str] | None:
    """Pop ``[...]`` (braces respected) from a reversed token stack, or None when there is none."""
    index = len(pending) - 1
    while index >= 0 and pending[index].isspace():
        index -= 1
    if index < 0 or pending[index] != "[":
        return None
    depth = 0
    for position in range(index - 1, max(-1, index - MAX_OPTIONAL), -1):
        token = pending[position]
        if token == "{":
            depth += 1
        elif token == "}":
            depth -= 1
        elif token == "]" and depth == 0:
            collected = pending[position + 1 : index][::-1]
            del pending[position:]
            return collected
    return None


def expand(tokens: list[str], macros: Macros | None, strict: bool = False) -> list[str]:
    """Expand user macros until none is left. Past the budget (`Macros.max_expansions`/`max_tokens`) the
    remaining user macros are dropped, or with ``strict`` a ValueError is raised."""
    if not macros or not macros.definitions:
        return tokens
    defs = macros.definitions
    pending = tokens[::-1]
    out: list[str] = []
    expansions = spent = 0
    while pending:
        token = pending.pop()
        definition = defs.get(token[1:]) if token[:1] == "\\" else None
        if definition is None:
            out.append(token)
            continue
        if expansions >= macros.max_expansions or spent >= macros.max_tokens:
            if strict:
                raise ValueError(f"macro expansion limit reached at {token} (runaway recursion?)")
            continue
        expansions += 1
        if definition.builtin_alias:
            out.append(definition.body)
            continue
        if definition.skip_star and pending and pending[-1] == "*":
            pending.pop()
        args: list[list[str]] = []
        required = definition.nargs
        if definition.default is not None and required:
            optional = _pop_optional(pending)
            args.append(optional if optional is not None else tokenize(definition.default))
            required -= 1
        args.extend(_pop_argument(pending) for _ in range(required))
        body: list[str] = []
        for part in macros.body_tokens(token[1:]):
            if part[0] == "#" and len(part) == 2:
                if part == "##":
                    body.append("#")
                elif int(part[1]) <= len(args):
                    body.extend(args[int(part[1]) - 1])
            else:
                body.append(part)
        spent += len(body)
        pending.extend(reversed(body))
    return out


def expand_text(text: str, macros: Macros | None) -> str:
    return detokenize(expand(tokenize(strip_comments(text)), macros))
