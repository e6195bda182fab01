"""Migration files: naming, checksums, statement splitting with a real PostgreSQL parser."""
from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field

# The Supabase CLI reads version and name from the file name the same way.
FILENAME_RE = re.compile(r"^([0-9]+)_(.*)\.sql$")
# First line of a file whose statements run one by one, outside a transaction.
NO_TRANSACTION_MARKER = "-- pgrollout: no-transaction"


class MigrationFileError(Exception):
    """A migration file that cannot be applied as it is."""


@dataclass(frozen=True)
class Statement:
    number: int  # 1-based position in the file
    line: int  # 1-based line where the statement starts
    text: str
    kind: str  # parser node name, e.g. CreateStmt


@dataclass(frozen=True)
class MigrationFile:
    path: str
    version: str
    name: str
    text: str
    checksum: str
    statements: list[Statement] = field(default_factory=list)

    def non_transactional(self) -> list[Statement]:
        return [s for s in self.statements if s.kind.startswith("!")]

    @property
    def transactional(self) -> bool:
        return self.text.split("\n", 1)[0].strip() != NO_TRANSACTION_MARKER


def normalise(text: str) -> str:
    """Line endings to LF and exactly one trailing newline, so checkouts on any OS agree."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text.rstrip("\n") + "\n"


def checksum(text: str) -> str:
    return hashlib.sha256(normalise(text).encode("utf-8")).hexdigest()


def parse_filename(path: str) -> tuple[str, str]:
    match = FILENAME_RE.match(os.path.basename(path))
    if not match:
        raise MigrationFileError(
            f"{path}: migration files are named NNN_name.sql (for example 003_add_bots.sql)"
        )
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


def split_statements(text: str, path: str = "<sql>") -> list[Statement]:
    import pglast
    from pglast import parser

    try:
        slices = list(parser.split(text, with_parser=True, only_slices=True))
        nodes = pglast.parse_sql(text)
    except pglast.parser.ParseError as exc:
        # args: (message, 0-based character offset of the error)
        offset = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], int) else 0
        line = text.count("\n", 0, max(offset, 0)) + 1
        raise MigrationFileError(f"{path}:{line}: {exc.args[0]}") from exc
    return [
        Statement(number=i, line=text.count("\n", 0, sl.start) + 1, text=text[sl], kind=_kind(raw.stmt))
        for i, (sl, raw) in enumerate(zip(slices, nodes, strict=True), start=1)
    ]


def load(path: str) -> MigrationFile:
    version, name = parse_filename(path)
    try:
        with open(path, encoding="utf-8") as handle:
            raw = handle.read()
    except OSError as exc:
        raise MigrationFileError(f"{path}: cannot read migration file: {exc.strerror}") from exc
    text = normalise(raw)
    statements = split_statements(text, path)
    if not statements:
        raise MigrationFileError(f"{path}: the file holds no SQL statement")
    return MigrationFile(path=path, version=version, name=name, text=text,
                         checksum=checksum(text), statements=statements)


def position_to_line(statement: Statement, position: int | None) -> int:
    """File line of a 1-based character position reported by the server inside a statement."""
    if not position:
        return statement.line
    return statement.line + statement.text.count("\n", 0, position - 1)


def find_migrations(directory: str) -> list[str]:
    """Forward migration files in version order; a non-conforming .sql name is an error."""
    try:
        names = sorted(n for n in os.listdir(directory) if n.endswith(".sql"))
    except OSError as exc:
        raise MigrationFileError(f"{directory}: cannot list migrations: {exc.strerror}") from exc
    paths = [os.path.join(directory, n) for n in names]
    seen: dict[str, str] = {}
    for path in paths:
        version, _ = parse_filename(path)
        if version in seen:
            raise MigrationFileError(f"{path} and {seen[version]} share version {version}")
        seen[version] = path
    return sorted(paths, key=lambda p: int(parse_filename(p)[0]))
