"""What a migration role that is not a superuser needs, found before anything changes.

On Supabase the `postgres` role is not a superuser: it owns the application
schemas, may create roles and databases, bypasses row-level security and is a
member of some predefined roles, but schema `auth` belongs to
`supabase_auth_admin`. Without this report such a role fails halfway (the lease
cannot create pgrollout's schema, pg_dump meets a table it cannot read, an ALTER
meets a table it does not own). Each finding names the privilege and the GRANT
(or the owner change) that gives it; the run is refused until none is left.

Only objects that exist now are checked: what the pending files create, the
role will own. Names are looked up in the catalog, never through regclass input
(which itself fails on a schema the role cannot use).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import ledger
from .sqlfile import nodes

if TYPE_CHECKING:  # annotations only: psycopg is imported where it is used
    from psycopg import Cursor

    from .sqlfile import MigrationFile

TOOL_SCHEMAS = ("supabase_migrations", "pgrollout")
TABLE_RIGHTS = ("SELECT", "INSERT", "UPDATE", "DELETE")
_PLAIN = re.compile(r"^[a-z_][a-z0-9_]*$")
Relation = tuple  # (schema or None, name) as written (pglast folds unquoted names)


@dataclass
class Needs:
    """What the pending statements ask of existing objects."""

    owner: dict[Relation, str] = field(default_factory=dict)  # relation -> the statement kind that needs it
    rights: dict[Relation, set[str]] = field(default_factory=dict)  # relation -> table privileges
    create_in: set[str | None] = field(default_factory=set)  # schemas objects are created in (None: current)
    create_schema: bool = False
    extensions: set[str] = field(default_factory=set)

    def right(self, relation: Relation, privilege: str) -> None:
        self.rights.setdefault(relation, set()).add(privilege)


def _ident(name: str) -> str:
    """A name as a GRANT the operator pastes must spell it: quoted unless it is a plain lower-case word."""
    return name if _PLAIN.match(name) else '"' + name.replace('"', '""') + '"'


def _qualified(schema: str, name: str) -> str:
    return f"{_ident(schema)}.{_ident(name)}"


def _relation(range_var: Any) -> Relation:
    return (range_var.schemaname or None, range_var.relname)


def _foreign_keys(constraints: Any) -> list[Relation]:
    from pglast import ast
    from pglast.enums import ConstrType

    return [_relation(c.pktable) for c in constraints or () if isinstance(c, ast.Constraint)
            and c.contype == ConstrType.CONSTR_FOREIGN and c.pktable]


def _create_needs(node: Any, needs: Needs) -> None:
    from pglast import ast

    columns = [el for el in node.tableElts or () if isinstance(el, ast.ColumnDef)]
    targets = _foreign_keys([el for el in node.tableElts or () if isinstance(el, ast.Constraint)])
    targets += [t for col in columns for t in _foreign_keys(col.constraints)]
    for target in targets:
        needs.right(target, "REFERENCES")
    needs.create_in.add(node.relation.schemaname or None)


def _alter_needs(node: Any, needs: Needs) -> None:
    from pglast import ast

    needs.owner.setdefault(_relation(node.relation), "ALTER TABLE")
    for cmd in node.cmds or ():
        definition = getattr(cmd, "def_", None)
        if isinstance(definition, ast.Constraint):
            for target in _foreign_keys([definition]):
                needs.right(target, "REFERENCES")
        if isinstance(definition, ast.ColumnDef):
            for target in _foreign_keys(definition.constraints):
                needs.right(target, "REFERENCES")


def _schema_of(names: Any) -> str | None:
    parts = [p.sval for p in names or ()]
    return parts[-2] if len(parts) > 1 else None


def statement_needs(node: Any, needs: Needs) -> None:
    """Add what one parsed statement needs of objects that may exist already."""
    from pglast import ast
    from pglast.enums import ObjectType

    if isinstance(node, ast.CreateStmt):
        _create_needs(node, needs)
    elif isinstance(node, ast.AlterTableStmt) and node.relation:
        _alter_needs(node, needs)
    elif isinstance(node, ast.RenameStmt) and node.relation:
        needs.owner.setdefault(_relation(node.relation), "ALTER ... RENAME")
    elif isinstance(node, (ast.CreatePolicyStmt, ast.AlterPolicyStmt)):
        needs.owner.setdefault(_relation(node.table), "CREATE/ALTER POLICY")
    elif isinstance(node, ast.CreateTrigStmt):
        needs.owner.setdefault(_relation(node.relation), "CREATE TRIGGER")
    elif isinstance(node, ast.IndexStmt):
        needs.owner.setdefault(_relation(node.relation), "CREATE INDEX")
    elif isinstance(node, ast.DropStmt) and node.removeType in (ObjectType.OBJECT_TABLE, ObjectType.OBJECT_VIEW):
        for obj in node.objects:
            parts = [p.sval for p in obj]
            needs.owner.setdefault((parts[-2] if len(parts) > 1 else None, parts[-1]), "DROP")
    elif isinstance(node, ast.DropStmt) and node.removeType == ObjectType.OBJECT_POLICY:
        for obj in node.objects:
            parts = [p.sval for p in obj][:-1]
            needs.owner.setdefault((parts[-2] if len(parts) > 1 else None, parts[-1]), "DROP POLICY")
    elif isinstance(node, ast.TruncateStmt):
        for rel in node.relations:
            needs.right(_relation(rel), "TRUNCATE")
    elif isinstance(node, (ast.InsertStmt, ast.UpdateStmt, ast.DeleteStmt)):
        kind = {"InsertStmt": "INSERT", "UpdateStmt": "UPDATE", "DeleteStmt": "DELETE"}[type(node).__name__]
        needs.right(_relation(node.relation), kind)
    elif isinstance(node, ast.ViewStmt):
        needs.create_in.add(node.view.schemaname or None)
    elif isinstance(node, ast.CreateSeqStmt):
        needs.create_in.add(node.sequence.schemaname or None)
    elif isinstance(node, ast.CreateFunctionStmt):
        needs.create_in.add(_schema_of(node.funcname))
    elif isinstance(node, ast.CreateEnumStmt):
        needs.create_in.add(_schema_of(node.typeName))
    elif isinstance(node, ast.CompositeTypeStmt):
        needs.create_in.add(node.typevar.schemaname or None)
    elif isinstance(node, ast.CreateTableAsStmt) and node.into:
        needs.create_in.add(node.into.rel.schemaname or None)
    elif isinstance(node, ast.CreateSchemaStmt):
        needs.create_schema = True
    elif isinstance(node, ast.CreateExtensionStmt):
        needs.extensions.add(node.extname)


def file_needs(files: list[MigrationFile]) -> Needs:

    needs = Needs()
    for mf in files:
        for stmt in mf.statements:
            for node in nodes(stmt):
                statement_needs(node, needs)
    return needs


def _whoami(cur: Cursor) -> tuple[str, bool, bool, str]:
    cur.execute("SELECT current_user, rolsuper, rolbypassrls, current_database() FROM pg_roles "
                "WHERE rolname = current_user")
    return cur.fetchone()


# An existing relation by its name as written: qualified, or the first match along the search path.
_FIND_SQL = """
SELECT w.i, n.nspname, c.relname, c.relkind, pg_get_userbyid(c.relowner),
       pg_has_role(current_user, c.relowner, 'USAGE'), has_schema_privilege(n.oid, 'USAGE'), c.oid
FROM unnest(%s::text[], %s::text[]) WITH ORDINALITY AS w(s, rel, i)
CROSS JOIN LATERAL (
  SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN unnest(current_schemas(false)) WITH ORDINALITY AS p(name, pos) ON p.name = n.nspname
  WHERE c.relname = w.rel AND (n.nspname = w.s OR (w.s IS NULL AND p.pos IS NOT NULL))
  ORDER BY p.pos NULLS LAST LIMIT 1) found
JOIN pg_class c ON c.oid = found.oid JOIN pg_namespace n ON n.oid = c.relnamespace
"""


def _existing(cur: Cursor, relations: list[Relation]) -> dict[Relation, tuple]:
    if not relations:
        return {}
    cur.execute(_FIND_SQL, ([r[0] for r in relations], [r[1] for r in relations]))
    return {relations[row[0] - 1]: row[1:] for row in cur.fetchall()}


def _relation_findings(cur: Cursor, role: str, needs: Needs) -> list[str]:
    wanted = sorted(set(needs.owner) | set(needs.rights), key=lambda r: (r[0] or "", r[1]))
    found = _existing(cur, wanted)
    out, no_usage = [], set()
    for relation in wanted:
        if relation not in found:
            continue  # created by the pending files themselves: the role will own it
        schema, name, _kind, owner, owns, usage, oid = found[relation]
        label = _qualified(schema, name)
        if not usage:  # reported once per schema; what the role needs on the table is reported too
            no_usage.add(schema)
        if relation in needs.owner and not owns:
            out.append(f"{needs.owner[relation]} on {label}, owned by {owner}: only its owner may. Run that file "
                       f"as {owner} (GRANT {_ident(owner)} TO {_ident(role)}), or change the owner "
                       f"(ALTER TABLE {label} OWNER TO {_ident(role)})")
        lacking = [p for p in sorted(needs.rights.get(relation, ())) if not owns and not _has(cur, oid, p)]
        if lacking:
            out.append(f"{', '.join(lacking)} on {label}: GRANT {', '.join(lacking)} ON {label} TO {_ident(role)}")
    out += [f"use schema {_ident(s)}: GRANT USAGE ON SCHEMA {_ident(s)} TO {_ident(role)}" for s in sorted(no_usage)]
    return out


def _has(cur: Cursor, oid: int, privilege: str) -> bool:
    cur.execute("SELECT has_table_privilege(%s::oid, %s)", (oid, privilege))
    return bool(cur.fetchone()[0])


def _create_findings(cur: Cursor, role: str, database: str, needs: Needs, asked_db: bool = False) -> list[str]:
    out = []
    cur.execute("SELECT current_schema(), has_database_privilege(current_database(), 'CREATE')")
    current, create_db = cur.fetchone()
    schemas = sorted({s or current for s in needs.create_in if s or current})
    cur.execute("SELECT s, n.oid IS NOT NULL, coalesce(has_schema_privilege(n.oid, 'CREATE'), false) "
                "FROM unnest(%s::text[]) s LEFT JOIN pg_namespace n ON n.nspname = s", (schemas,))
    for schema, exists, create in cur.fetchall():
        if exists and not create:
            out.append(f"create objects in schema {_ident(schema)}: GRANT USAGE, CREATE ON SCHEMA {_ident(schema)} "
                       f"TO {_ident(role)}")
    if (needs.create_schema or needs.extensions) and not create_db and not asked_db:
        out.append(f"create a schema or an extension in database {_ident(database)}: GRANT CREATE ON DATABASE "
                   f"{_ident(database)} TO {_ident(role)}")
    return out + _extension_findings(cur, needs.extensions)


def _extension_findings(cur: Cursor, names: set[str]) -> list[str]:
    if not names:
        return []
    cur.execute("SELECT a.name, v.trusted, v.superuser FROM pg_available_extensions a "
                "JOIN pg_available_extension_versions v ON v.name = a.name AND v.version = a.default_version "
                "WHERE a.name = ANY(%s) AND a.installed_version IS NULL", (sorted(names),))
    return [f"create extension {_ident(name)}: it needs a superuser (not a trusted extension). On Supabase enable "
            f"it first (Dashboard, Database, Extensions); elsewhere a superuser runs CREATE EXTENSION {_ident(name)}"
            for name, trusted, superuser in cur.fetchall() if superuser and not trusted]


def tool_findings(cur: Cursor, role: str | None = None, database: str | None = None) -> list[str]:
    """What pgrollout's own records (its schema and the Supabase ledger) need of the role."""
    if role is None:
        role, superuser, _bypass, database = _whoami(cur)
        if superuser:
            return []
    missing = ledger.missing_parts(cur)
    cur.execute("SELECT s, n.oid IS NOT NULL, coalesce(has_schema_privilege(n.oid, 'USAGE'), false), "
                "coalesce(has_schema_privilege(n.oid, 'CREATE'), false), "
                "has_database_privilege(current_database(), 'CREATE') "
                "FROM unnest(%s::text[]) s LEFT JOIN pg_namespace n ON n.nspname = s", (list(TOOL_SCHEMAS),))
    out = []
    for schema, exists, usage, create, create_db in cur.fetchall():
        grows = any(part.split(" ", 1)[1].startswith(schema) for part in missing)
        if not exists and not create_db:
            out.append(f"create schema {schema} (pgrollout's records): GRANT CREATE ON DATABASE {_ident(database)} "
                       f"TO {_ident(role)}, or create it for the role: CREATE SCHEMA {schema} "
                       f"AUTHORIZATION {_ident(role)}")
        elif exists and (not usage or (grows and not create)):
            out.append(f"use schema {schema} (pgrollout's records): GRANT USAGE, CREATE ON SCHEMA {schema} "
                       f"TO {_ident(role)}")
    return out + _tool_table_findings(cur, role)


def records_unreadable(cur: Cursor) -> bool:
    """pgrollout's records exist but the role cannot read them (then the ledger cannot be compared)."""
    cur.execute("SELECT EXISTS (SELECT FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = ANY(%s) AND c.relkind = 'r' AND NOT (has_schema_privilege(n.oid, 'USAGE') "
                "AND has_table_privilege(c.oid, 'SELECT')))", (list(TOOL_SCHEMAS),))
    return bool(cur.fetchone()[0])


def _tool_table_findings(cur: Cursor, role: str) -> list[str]:
    cur.execute(
        "SELECT n.nspname, c.relname, c.relkind, pg_has_role(current_user, c.relowner, 'USAGE') FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = ANY(%s) AND c.relkind IN ('r', 'S') "
        "AND has_schema_privilege(n.oid, 'USAGE') ORDER BY 1, 2", (list(TOOL_SCHEMAS),))
    lacking: dict[str, list[str]] = {}
    for schema, name, kind, owns in cur.fetchall():
        if owns:
            continue
        rights = ("USAGE",) if kind == "S" else TABLE_RIGHTS
        function = "has_sequence_privilege" if kind == "S" else "has_table_privilege"
        cur.execute(f"SELECT bool_and({function}(%s, r)) FROM unnest(%s::text[]) r",  # noqa: S608 - fixed names
                    (_qualified(schema, name), list(rights)))
        if not cur.fetchone()[0]:
            lacking.setdefault(schema, []).append(name)
    return [f"read and write pgrollout's records in {schema} ({', '.join(names)}): GRANT SELECT, INSERT, UPDATE, "
            f"DELETE ON ALL TABLES IN SCHEMA {schema} TO {_ident(role)}; GRANT USAGE ON ALL SEQUENCES IN SCHEMA "
            f"{schema} TO {_ident(role)}" for schema, names in sorted(lacking.items())]


def _dump_findings(cur: Cursor, role: str, bypass: bool) -> list[str]:
    """pg_dump of the whole database reads every table (row security off) and every schema."""
    cur.execute(
        "SELECT n.nspname, c.relname, "
        "CASE c.relkind WHEN 'S' THEN has_sequence_privilege(c.oid, 'SELECT') "
        "ELSE has_table_privilege(c.oid, 'SELECT') END, "
        "c.relrowsecurity AND NOT pg_has_role(current_user, c.relowner, 'USAGE'), has_schema_privilege(n.oid, 'USAGE') "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind IN ('r', 'p', 'm', 'S') AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
        "AND n.nspname NOT LIKE 'pg\\_%%' ORDER BY 1, 2")
    unreadable, guarded = [], []
    for schema, name, select, rls_not_owned, usage in cur.fetchall():
        if not (select and usage):
            unreadable.append(_qualified(schema, name))
        elif rls_not_owned and not bypass:
            guarded.append(_qualified(schema, name))
    out = []
    if unreadable:
        out.append(f"back up (pg_dump reads every table): no SELECT on {_some(unreadable)}: GRANT pg_read_all_data "
                   f"TO {_ident(role)} (SELECT on every table and USAGE on every schema)")
    if guarded:
        out.append(f"back up (pg_dump reads with row security off): {_some(guarded)} have row-level security and "
                   f"another owner: ALTER ROLE {_ident(role)} BYPASSRLS")
    return out


def _some(names: list[str], shown: int = 5) -> str:
    return ", ".join(names[:shown]) + (f" and {len(names) - shown} more" if len(names) > shown else "")


def _role_findings(cur: Cursor, role: str, roles: set[str]) -> list[str]:
    if not roles:
        return []
    cur.execute("SELECT r FROM unnest(%s::text[]) r JOIN pg_roles ON rolname = r "
                "WHERE NOT pg_has_role(current_user, r, 'MEMBER') ORDER BY 1", (sorted(roles),))
    return [f"SET ROLE {_ident(r)} (the spec's behaviour checks run as it): GRANT {_ident(r)} TO {_ident(role)}"
            for (r,) in cur.fetchall()]


def missing(cur: Cursor, files: list[MigrationFile], checks: list[dict[str, Any]], backup: bool) -> list[str]:
    """Every privilege the run needs that the connected role lacks, as 'role X cannot ...: GRANT ...'.

    `checks` are the checks the run will run: their setup SQL runs as the role (its rows, in the
    check's savepoint), then the check switches to its `role`."""
    role, superuser, bypass, database = _whoami(cur)
    if superuser:
        return []
    needs = file_needs(files)
    setup_needs(checks, needs)
    tool = tool_findings(cur, role, database)
    found = (tool + _relation_findings(cur, role, needs)
             + _create_findings(cur, role, database, needs, asked_db=any(" ON DATABASE " in f for f in tool))
             + _role_findings(cur, role, {c["role"] for c in checks if c.get("role")})
             + (_dump_findings(cur, role, bypass) if backup else []))
    return [f"role {role} cannot {what}" for what in found]


def setup_needs(checks: list[dict[str, Any]], needs: Needs) -> None:
    """What the checks' setup statements (run as the role itself) ask of existing tables."""
    import pglast

    for setup in dict.fromkeys(c["setup"] for c in checks if c.get("setup")):
        for raw in pglast.parse_sql(setup):
            statement_needs(raw.stmt, needs)
