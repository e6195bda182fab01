"""Migration files: layouts, naming, markers, checksums, statement splitting with a real PostgreSQL parser.

This module owns the file conventions; playbooks ask it (through pg_facts and
pg_migrate) instead of rebuilding names in Jinja. Two layouts:

  supabase  migrations/NNN_name.sql, rollbacks/NNN_name_rollback.sql (the default)
  updown    migrations/NNN_name.up.sql and migrations/NNN_name.down.sql
            (golang-migrate, morph)

Specs are verification/NNN_name.yml and verification/NNN_name_rollback.yml in
both. 6 and 006 are the same version in both (refused as duplicates). Order
follows the tool whose layout it is: the supabase layout orders and compares
versions as text, byte by byte, as the Supabase CLI does (checked against
`supabase db push` 3.1: `20240410_x.sql` runs after `20240101120000_y.sql` and
before `20240410120000_z.sql`); the updown layout orders versions as numbers,
as golang-migrate does.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import zlib
from dataclasses import dataclass, field
from typing import Any

LAYOUTS = ("supabase", "updown")
SUPABASE_RE = re.compile(r"^([0-9]+)_(.+)\.sql$")
UPDOWN_RE = re.compile(r"^([0-9]+)_(.+)\.(up|down)\.sql$")
# Anything that looks meant as a migration but does not match the layout is an error.
NEAR_MISS_RE = re.compile(r"(\.sql\w*$)|(^[0-9]+[_.\- ])", re.IGNORECASE)
# pgrollout's marker first; the others are those of tools whose files we adopt as they are.
NO_TRANSACTION_MARKER = "-- pgrollout: no-transaction"
NO_TRANSACTION_MARKERS = (
    re.compile(r"^--\s*pgrollout:\s*no-transaction\s*$"),
    re.compile(r"^--\s*morph:nontransactional\s*$"),
    re.compile(r"^--\s*atlas:txmode\s+none\s*$"),
    re.compile(r"^--\s*migrate:(up|down)\b.*\btransaction:false\b"),  # dbmate
)
BOM = "\ufeff"


class MigrationFileError(Exception):
    """A migration file (or folder) that cannot be used as it is; says what to fix."""


@dataclass(frozen=True)
class Statement:
    number: int  # 1-based position in the file
    line: int  # 1-based line where the statement starts
    text: str
    kind: str  # parser node name, e.g. CreateStmt; '!' first when it cannot run in a transaction
    control: str = ""  # transaction or session control it does (COMMIT, SET ROLE at session level, ...)
    control_ack: str = ""  # the reason given inline with -- pgrollout: allow-transaction-control REASON
    # the parse tree from the file's one parse (None when built from text alone): nodes() reads it
    node: Any = field(default=None, compare=False, repr=False)
    start: int = field(default=0, compare=False, repr=False)  # character offset of `text` in the file


def nodes(stmt: Statement) -> list[Any]:
    """The statement's parse tree(s), from the file's parse when kept (a 50 MB file is not parsed again)."""
    if stmt.node is not None:
        return [stmt.node]
    import pglast

    return [raw.stmt for raw in pglast.parse_sql(stmt.text)]


@dataclass(frozen=True)
class MigrationFile:
    path: str
    version: str
    name: str
    text: str
    checksum: str
    statements: list[Statement] = field(default_factory=list)
    transactional: bool = True
    # The statements exactly as the Supabase CLI records them in schema_migrations.
    ledger_statements: list[str] = field(default_factory=list)
    # (start, end) character offsets of those entries, before trimming
    ledger_cuts: list[tuple[int, int]] = field(default_factory=list, compare=False, repr=False)
    # the lock plan (locks.lock_plan) as the plan computed it, where the file was built from the plan's parse
    lock_plan: dict[tuple[str | None, str], str] | None = field(default=None, compare=False, repr=False)

    @property
    def from_plan(self) -> bool:
        """Built from the preflight's parse (from_summary), not parsed here."""
        return self.lock_plan is not None

    def non_transactional(self) -> list[Statement]:
        return [s for s in self.statements if s.kind.startswith("!")]

    def transaction_control(self) -> list[Statement]:
        """Statements that would end, nest or outlive the transaction pgrollout runs the file in."""
        return [s for s in self.statements if s.control] if self.transactional else []


@dataclass(frozen=True)
class Migration:
    """One version: its forward file and, by convention, its rollback file and specs."""

    version: str
    name: str
    up: str
    down: str  # where the rollback file is (or would be)
    spec: str
    rollback_spec: str
    layout: str = "supabase"

    @property
    def number(self) -> int:
        return int(self.version)

    @property
    def stem(self) -> str:
        return f"{self.version}_{self.name}"

    @property
    def order(self) -> tuple[bytes | int, ...]:
        """Where this file runs in its folder (see the module's docstring)."""
        if self.layout == "supabase":
            return (self.version.encode("utf-8"), os.path.basename(self.up).encode("utf-8"))
        return (self.number,)

    def as_dict(self) -> dict[str, object]:
        return {"version": self.version, "name": self.name, "path": self.up, "down": self.down,
                "down_exists": os.path.exists(self.down), "spec": self.spec,
                "spec_exists": os.path.exists(self.spec), "rollback_spec": self.rollback_spec,
                "rollback_spec_exists": os.path.exists(self.rollback_spec)}


def normalise(text: str) -> str:
    """No BOM, line endings to LF and exactly one trailing newline, so checkouts on any OS agree."""
    text = text.removeprefix(BOM).replace("\r\n", "\n").replace("\r", "\n")
    return text.rstrip("\n") + "\n"


def checksum(text: str) -> str:
    return hashlib.sha256(normalise(text).encode("utf-8")).hexdigest()


def version_key(version: str, layout: str = "supabase") -> bytes | int:
    """How two versions compare in `layout`: as text byte by byte (the Supabase CLI), or as numbers."""
    return str(version).encode("utf-8") if layout == "supabase" else int(version)


def parse_filename(path: str) -> tuple[str, str]:
    """(version, name) of a forward file of the supabase layout."""
    match = SUPABASE_RE.match(os.path.basename(path))
    if not match:
        raise MigrationFileError(
            f"{path}: migration files are named NNN_name.sql (for example 003_add_bots.sql)")
    return match.group(1), match.group(2)


def _kind(node: object) -> str:
    """Parser node name; prefixed with '!' when the statement cannot run inside a transaction."""
    name = type(node).__name__
    if name in ("VacuumStmt", "AlterSystemStmt", "CreatedbStmt", "DropdbStmt",
                "CreateTableSpaceStmt", "DropTableSpaceStmt", "CreateSubscriptionStmt",
                "DropSubscriptionStmt"):
        return "!" + name
    if name in ("IndexStmt", "DropStmt") and getattr(node, "concurrent", False):
        return "!" + name
    if name == "ReindexStmt":
        options = getattr(node, "params", None) or ()
        if any(getattr(opt, "defname", "") == "concurrently" for opt in options):
            return "!" + name
    return name


TRANSACTION_KINDS = {0: "BEGIN", 1: "START TRANSACTION", 2: "COMMIT", 3: "ROLLBACK", 4: "SAVEPOINT",
                     5: "RELEASE SAVEPOINT", 6: "ROLLBACK TO SAVEPOINT", 7: "PREPARE TRANSACTION",
                     8: "COMMIT PREPARED", 9: "ROLLBACK PREPARED"}
# Settings a session-level SET (not SET LOCAL) would carry past the file's commit into the next file.
SESSION_SETTINGS = ("lock_timeout", "statement_timeout", "idle_in_transaction_session_timeout",
                    "session_replication_role", "role", "session_authorization")
ALLOW_CONTROL_RE = re.compile(r"^\s*--\s*pgrollout:\s*allow-transaction-control\s+(\S.*)$", re.MULTILINE)


def _control(node: object) -> str:
    """What transaction or session control a statement does, or ''."""
    name = type(node).__name__
    if name == "TransactionStmt":
        return TRANSACTION_KINDS.get(int(getattr(node, "kind", -1)), "transaction control")
    if name != "VariableSetStmt":
        return ""
    setting, kind = (getattr(node, "name", None) or ""), int(getattr(node, "kind", -1))
    if setting in ("TRANSACTION", "SESSION CHARACTERISTICS"):
        return f"SET {setting}"
    if kind == 5:  # VAR_RESET_ALL
        return "RESET ALL"
    if setting in SESSION_SETTINGS and not getattr(node, "is_local", False):
        return f"{'RESET' if kind == 4 else 'SET'} {setting} at session level"
    return ""


def _parse(text: str, path: str) -> list[object]:
    import pglast

    try:
        return list(pglast.parse_sql(text))
    except pglast.parser.ParseError as exc:
        # args: (message, 0-based character offset of the error)
        offset = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], int) else 0
        line = text.count("\n", 0, max(offset, 0)) + 1
        raise MigrationFileError(f"{path}:{line}: {exc.args[0]}") from exc


def _bounds(text: str, raws: list[object]) -> list[tuple[int, int]]:
    """(start, end) character offsets of each statement's raw text (pglast gives characters)."""
    return [(raw.stmt_location, raw.stmt_location + raw.stmt_len if raw.stmt_len else len(text))
            for raw in raws]


# white space and comments before a statement's first token
_LEADING = re.compile(r"(?:\s+|--[^\n]*|/\*.*?\*/)*", re.S)


def split_statements(text: str, path: str = "<sql>", raws: list[object] | None = None) -> list[Statement]:
    from pglast import parser

    raws = _parse(text, path) if raws is None else raws
    slices = list(parser.split(text, with_parser=True, only_slices=True))
    regions = _bounds(text, raws)  # each statement with the comments before it
    statements = []
    line, counted = 1, 0  # lines counted as the statements go: a count from the top each time is quadratic
    for i, (sl, raw, (start, end)) in enumerate(zip(slices, raws, regions, strict=True), start=1):
        control = _control(raw.stmt)
        ack = ALLOW_CONTROL_RE.search(text[start:end]) if control else None
        first = _LEADING.match(text, sl.start, sl.stop).end()  # the statement's first token, past its comments
        line, counted = line + text.count("\n", counted, first), first
        statements.append(Statement(number=i, line=line, text=text[sl],
                                    kind=_kind(raw.stmt), control=control,
                                    control_ack=ack.group(1).strip() if ack else "", node=raw.stmt,
                                    start=sl.start))
    return statements


def ledger_statements(text: str, raws: list[object] | None = None, path: str = "<sql>") -> list[str]:
    """What the Supabase CLI stores in schema_migrations.statements for this file.

    The CLI cuts the file at each top-level ';', keeps comments and blank lines
    that precede a statement, trims white space and the ';', and keeps a
    trailing comment after the last ';' as an entry of its own. The parser's
    statement offsets start right after the previous ';', so they give the same cut.
    """
    raws = _parse(text, path) if raws is None else raws
    return _ledger_texts(text, _ledger_cuts(text, raws))


def _ledger_cuts(text: str, raws: list[object]) -> list[tuple[int, int]]:
    if not raws:
        return [(0, len(text))]
    cuts = _bounds(text, raws)
    if raws[-1].stmt_len:
        end = raws[-1].stmt_location + raws[-1].stmt_len
        cuts.append((end + 1 if text.startswith(";", end) else end, len(text)))
    return cuts


def _ledger_texts(text: str, cuts: list[tuple[int, int]]) -> list[str]:
    parts = (text[start:end].strip().rstrip(";").strip() for start, end in cuts)
    return [part for part in parts if part]


def is_transactional(text: str) -> bool:
    """False when a leading comment line carries a non-transactional marker (any supported tool's)."""
    for line in text.split("\n"):
        stripped = line.strip()
        if not stripped:
            continue
        if not stripped.startswith("--"):
            return True
        if any(marker.match(stripped) for marker in NO_TRANSACTION_MARKERS):
            return False
    return True


@dataclass(frozen=True)
class FileText:
    """A migration file read and normalised, not parsed: enough for the ledger's checksum comparison."""

    text: str
    checksum: str
    transactional: bool
    raw: str = ""  # the file as written but for a BOM: what runs (a CR inside a string literal stays)


def read(path: str) -> FileText:
    """Read and normalise a migration file without parsing it (applied files only need their checksum)."""
    try:
        with open(path, encoding="utf-8", newline="") as handle:  # line endings as written
            raw = handle.read()
    except OSError as exc:
        raise MigrationFileError(f"{path}: cannot read migration file: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise MigrationFileError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    text = normalise(raw)
    if not text.strip():
        raise MigrationFileError(f"{path}: the file is empty; write the migration's SQL, or a comment "
                                 "saying why it is intentionally a no-op")
    return FileText(text=text, checksum=checksum(text), transactional=is_transactional(text),
                    raw=raw.removeprefix(BOM))


def load(path: str, version: str | None = None, name: str | None = None) -> MigrationFile:
    """Read, normalise and split a migration file; version and name default to the supabase file name."""
    if version is None or name is None:
        version, name = parse_filename(path)
    found = read(path)
    # the checksum is of the normalised text (checkouts on any OS agree); what runs is the file as written
    text = found.raw
    raws = _parse(text, path)
    cuts = _ledger_cuts(text, raws)
    return MigrationFile(path=path, version=version, name=name, text=text, checksum=found.checksum,
                         statements=split_statements(text, path, raws), transactional=found.transactional,
                         ledger_statements=_recorded(text, cuts), ledger_cuts=cuts)


def _recorded(text: str, cuts: list[tuple[int, int]]) -> list[str]:
    return [entry.replace("\r\n", "\n").replace("\r", "\n") for entry in _ledger_texts(text, cuts)]


# The plan read once: a file's parse travels from the preflight to pg_migrate as one string (statement
# offsets, lines, kinds, the ledger's cut and the lock plan), so pg_migrate does not parse it again. It applies
# only to the exact text it was made from (a hash of the file as written, and the approved checksum).
SUMMARY_FORMAT = 1


def _raw_sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def summary(mf: MigrationFile, lock_plan: dict[tuple[str | None, str], str]) -> str:
    """The file's parse as one short string: JSON, compressed (348,000 INSERTs: 20 MB of JSON, 2 MB sent)."""
    return base64.b64encode(zlib.compress(json.dumps({
        "format": SUMMARY_FORMAT, "raw_sha256": _raw_sha(mf.text), "checksum": mf.checksum,
        "statements": [[s.start, len(s.text), s.line, s.kind, s.control, s.control_ack] for s in mf.statements],
        "ledger_cuts": mf.ledger_cuts, "locks": [[schema, name, mode] for (schema, name), mode in lock_plan.items()],
    }, separators=(",", ":")).encode("utf-8"), 6)).decode("ascii")


def from_summary(path: str, version: str, name: str, made: str) -> MigrationFile | None:
    """The file built from the plan's parse `made` (summary()), or None when the file is not the text it was
    made from (the caller parses it then)."""
    found = read(path)
    text = found.raw
    try:
        data = json.loads(zlib.decompress(base64.b64decode(made, validate=True)))
        if data.get("format") != SUMMARY_FORMAT or data.get("raw_sha256") != _raw_sha(text) \
                or data.get("checksum") != found.checksum:
            return None
        statements = [Statement(number=i, line=line, text=text[start:start + length], kind=kind, control=control,
                                control_ack=ack, start=start)
                      for i, (start, length, line, kind, control, ack) in enumerate(data["statements"], start=1)]
        cuts = [(int(start), int(end)) for start, end in data["ledger_cuts"]]
        plan = {(schema, relation): mode for schema, relation, mode in data["locks"]}
        recorded = _recorded(text, cuts)
    except (ValueError, TypeError, KeyError, zlib.error):
        return None  # not a summary of this format: parsed as any file
    return MigrationFile(path=path, version=version, name=name, text=text, checksum=found.checksum,
                         statements=statements, transactional=found.transactional,
                         ledger_statements=recorded, ledger_cuts=cuts, lock_plan=plan)


def refuse_transaction_control(mf: MigrationFile) -> list[str]:
    """MigrationFileError for the first transaction or session control statement of a transactional file that
    carries no inline acknowledgement; the acknowledged ones, as notes for the record."""
    for stmt in mf.transaction_control():
        if not stmt.control_ack:
            raise MigrationFileError(
                f"{mf.path}:{stmt.line}: statement {stmt.number} is {stmt.control}: pgrollout runs this file in a "
                "transaction of its own (with its lock_timeout and statement_timeout), so this would commit, "
                "nest or end that transaction, or carry a setting into the next file, and a later failure could "
                "no longer roll the whole file back. Remove it; or make the file non-transactional (first line "
                f"'{NO_TRANSACTION_MARKER}'); or let it through on purpose with '-- pgrollout: "
                "allow-transaction-control <reason>' on the line before it (recorded)")
    return control_notes(mf)


def control_notes(mf: MigrationFile) -> list[str]:
    """The acknowledged transaction control statements of a file, for its record."""
    return [f"statement {s.number} ({s.control}, line {s.line}) let through: {s.control_ack}"
            for s in mf.transaction_control()]


def position_to_line(statement: Statement, position: int | None) -> int:
    """File line of a 1-based character position reported by the server inside a statement."""
    if not position:
        return statement.line
    # statement.line is its first token's; the server counts from the start of the text, comments included
    lead = statement.text.count("\n", 0, _LEADING.match(statement.text).end())
    return statement.line - lead + statement.text.count("\n", 0, position - 1)


def _listing(directory: str) -> list[str]:
    try:
        return sorted(n for n in os.listdir(directory) if not n.startswith("."))
    except OSError as exc:
        raise MigrationFileError(f"{directory}: cannot list migrations: {exc.strerror}") from exc


def _near_miss(directory: str, name: str, expected: str) -> MigrationFileError:
    return MigrationFileError(
        f"{os.path.join(directory, name)}: not a migration file name of this layout ({expected}); "
        "rename it, or move it out of the migrations folder (it would otherwise be silently skipped)")


def discover(migrations_dir: str, rollbacks_dir: str | None = None, verification_dir: str | None = None,
             layout: str = "supabase") -> list[Migration]:
    """Every migration of the folder in the order it runs, each with its conventional companions."""
    if layout not in LAYOUTS:
        raise MigrationFileError(f"unknown migration layout {layout!r}: use one of {', '.join(LAYOUTS)}")
    specs = verification_dir or migrations_dir
    found: dict[int, Migration] = {}
    downs: dict[int, str] = {}
    for entry in _listing(migrations_dir):
        path = os.path.join(migrations_dir, entry)
        if os.path.isdir(path):
            continue
        if layout == "supabase":
            match = SUPABASE_RE.match(entry)
            if not match or UPDOWN_RE.match(entry) or entry.endswith("_rollback.sql"):
                if NEAR_MISS_RE.search(entry):
                    hint = ("NNN_name.sql; rollback files belong in the rollbacks folder, and "
                            "NNN_name.up.sql/.down.sql files need pgrollout_migration_layout: updown")
                    raise _near_miss(migrations_dir, entry, hint)
                continue
            version, name = match.group(1), match.group(2)
            down = os.path.join(rollbacks_dir or migrations_dir, f"{version}_{name}_rollback.sql")
        else:
            match = UPDOWN_RE.match(entry)
            if not match:
                if NEAR_MISS_RE.search(entry):
                    raise _near_miss(migrations_dir, entry, "NNN_name.up.sql and NNN_name.down.sql")
                continue
            version, name, direction = match.groups()
            if direction == "down":
                _claim(downs, version, path)
                continue
            down = os.path.join(migrations_dir, f"{version}_{name}.down.sql")
        _claim(found, version, path)
        found[int(version)] = Migration(version=version, name=name, up=path, down=down,
                                        spec=os.path.join(specs, f"{version}_{name}.yml"),
                                        rollback_spec=os.path.join(specs, f"{version}_{name}_rollback.yml"),
                                        layout=layout)
    for number, path in downs.items():
        if number not in found:
            raise MigrationFileError(f"{path}: a down file without its up file ({os.path.basename(path)})")
        if os.path.abspath(found[number].down) != os.path.abspath(path):
            raise MigrationFileError(f"{path}: its name differs from its up file {found[number].up}; "
                                     "give both the same NNN_name")
    return sorted(found.values(), key=lambda m: m.order)


def _claim(seen: dict[int, object], version: str, path: str) -> None:
    number = int(version)
    if number in seen:
        other = seen[number]
        other_path = other.up if isinstance(other, Migration) else other
        raise MigrationFileError(f"{path} and {other_path} share version {number} (versions compare as "
                                 "numbers: 6 and 006 are the same): renumber one of them")
    seen[number] = path


def find_migrations(directory: str, layout: str = "supabase") -> list[str]:
    """Forward migration files in the order they run; a near-miss name is an error."""
    return [m.up for m in discover(directory, layout=layout)]
