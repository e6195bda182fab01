"""Migration review before the change: squawk's general lock-risk rules and pgrollout's own.

squawk (the squawk-cli package) reads each file, told whether a transaction
wraps it; its JSON findings are kept, but for the rules pgrollout itself
makes moot (it sets lock_timeout and statement_timeout, and a failed
transactional file leaves nothing behind to make it rerunnable). pgrollout's
rules walk the pglast parse tree for what squawk does not know: Supabase's
row-level security, auth.users, SECURITY DEFINER, grants to anon, data loss on
the forward path. Each finding names file, line, rule, severity, why and how
to do it safely. `-- pgrollout: lint-ignore RULE reason` in a file, or
`rule:file` in the acknowledged list, lets a finding through, recorded.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from typing import Any

from .sqlfile import MigrationFile, nodes

# squawk rules about what pgrollout already does for every file
SQUAWK_MOOT = ("require-lock-timeout", "require-statement-timeout", "prefer-robust-stmts",
               "transaction-nesting")
# findings about the tables a statement references (the lock a foreign key takes on them)
REFERENCE_RULES = ("foreign-key-to-auth-users", "adding-foreign-key-constraint")
IGNORE_RE = re.compile(r"^\s*--\s*pgrollout:\s*lint-ignore\s+([a-z0-9-]+)\s*(.*)$", re.MULTILINE)
AUTH_FUNCTIONS = {("auth", "uid"), ("auth", "jwt"), ("auth", "role")}

RULES: dict[str, tuple[str, str, str]] = {
    # rule: (severity, why, how to do it safely)
    "rls-not-enabled": ("error", "a table in an exposed schema without row-level security is readable and "
                        "writable by every API role", "ALTER TABLE ... ENABLE ROW LEVEL SECURITY in the same file, "
                        "with the policies it needs"),
    "auth-function-not-wrapped": ("warn", "auth.uid()/auth.jwt() called per row: the policy re-evaluates it for "
                                  "every row (400 ms instead of 20 ms on 500k rows, measured)",
                                  "wrap it: (select auth.uid()) = owner_id, which plans as an InitPlan"),
    "foreign-key-to-auth-users": ("warn", "a foreign key to auth.users takes SHARE ROW EXCLUSIVE on the sign-up "
                                  "table: sign-ups wait until the migration commits",
                                  "keep the file short and lock_timeout low; add the key NOT VALID and VALIDATE "
                                  "it in a later migration"),
    "security-definer-without-search-path": ("error", "a SECURITY DEFINER function without SET search_path runs "
                                             "with the caller's search_path: an object planted there runs with "
                                             "the owner's rights", "add SET search_path = '' and qualify every "
                                             "name in the body"),
    "grant-to-anon": ("warn", "anon is every unauthenticated API caller", "grant to authenticated, or keep the "
                      "grant and make sure RLS policies decide what anon sees"),
    "no-rollback-file": ("warn", "without a rollback file a failure after the commit can only be undone by a "
                         "restore, which also discards every write made since the backup",
                         "write the rollback file (make new-migration creates one with each migration); "
                         "staging and prod refuse such files (pgrollout_require_rollback)"),
    "drop-on-forward-path": ("error", "DROP TABLE / DROP COLUMN on the forward path discards data; a rollback "
                             "cannot bring it back", "stop writing it first, keep a backup, and drop in a later "
                             "migration once nothing reads it (or acknowledge: pgrollout_acknowledged_lint)"),
}


def finding(mf: MigrationFile, line: int, rule: str, detail: str = "", severity: str | None = None,
            why: str | None = None, how: str | None = None, source: str = "pgrollout") -> dict[str, Any]:
    base = RULES.get(rule, ("warn", "", ""))
    return {"file": mf.path, "line": line, "rule": rule, "severity": severity or base[0],
            "why": (why or base[1]) + (f" ({detail})" if detail else ""), "how": how or base[2], "source": source}


def _walk(node: Any, inside_select: bool = False):
    """(node, inside a sub-select) for every node of a parse tree."""
    from pglast import ast

    if isinstance(node, (list, tuple)):
        for item in node:
            yield from _walk(item, inside_select)
        return
    if not isinstance(node, ast.Node):
        return
    yield node, inside_select
    inner = inside_select or isinstance(node, ast.SubLink)
    for name in node:
        yield from _walk(getattr(node, name), inner)


def _function_name(call: Any) -> tuple[str, ...]:
    return tuple(getattr(part, "sval", "") for part in call.funcname or ())


def _own_rules(mf: MigrationFile, exposed: list[str], direction: str) -> list[dict[str, Any]]:
    from pglast import ast
    from pglast.enums import AlterTableType, ConstrType, ObjectType

    findings, created, secured = [], {}, set()
    for stmt in mf.statements:
        for node in nodes(stmt):
            if isinstance(node, ast.CreateStmt):
                schema = node.relation.schemaname or "public"
                if schema in exposed:
                    created[(schema, node.relation.relname)] = stmt.line
            if isinstance(node, ast.AlterTableStmt):
                schema = node.relation.schemaname or "public"
                for cmd in node.cmds or ():
                    if cmd.subtype == AlterTableType.AT_EnableRowSecurity:
                        secured.add((schema, node.relation.relname))
                    if cmd.subtype == AlterTableType.AT_DropColumn and direction == "up":
                        findings.append(finding(mf, stmt.line, "drop-on-forward-path",
                                                f"column {schema}.{node.relation.relname}.{cmd.name}"))
            if isinstance(node, ast.DropStmt) and node.removeType == ObjectType.OBJECT_TABLE and direction == "up":
                names = ", ".join(".".join(p.sval for p in obj) for obj in node.objects)
                findings.append(finding(mf, stmt.line, "drop-on-forward-path", f"table {names}"))
            if isinstance(node, (ast.CreatePolicyStmt, ast.AlterPolicyStmt)):
                for part, inside in _walk([node.qual, node.with_check]):
                    if isinstance(part, ast.FuncCall) and _function_name(part) in AUTH_FUNCTIONS and not inside:
                        findings.append(finding(mf, stmt.line, "auth-function-not-wrapped",
                                                f"{'.'.join(_function_name(part))}() in policy {node.policy_name}"))
            for part, _unused in _walk(node):
                if isinstance(part, ast.Constraint) and part.contype == ConstrType.CONSTR_FOREIGN and part.pktable \
                        and (part.pktable.schemaname, part.pktable.relname) == ("auth", "users"):
                    findings.append(finding(mf, stmt.line, "foreign-key-to-auth-users"))
            if isinstance(node, ast.CreateFunctionStmt):
                options = {opt.defname: opt for opt in node.options or ()}
                definer = "security" in options and getattr(options["security"].arg, "boolval", False)
                sets_path = any(isinstance(o.arg, ast.VariableSetStmt) and o.arg.name == "search_path"
                                for o in node.options or () if o.defname == "set")
                if definer and not sets_path:
                    name = ".".join(p.sval for p in node.funcname)
                    findings.append(finding(mf, stmt.line, "security-definer-without-search-path", name))
            if isinstance(node, ast.GrantStmt) and node.is_grant and any(
                    getattr(g, "rolename", None) == "anon" for g in node.grantees or ()):
                findings.append(finding(mf, stmt.line, "grant-to-anon"))
    for (schema, table), line in created.items():
        if (schema, table) not in secured:
            findings.append(finding(mf, line, "rls-not-enabled", f"{schema}.{table}"))
    return findings


def config_excluded(config: str | None) -> list[str]:
    """The `excluded_rules` of a .squawk.toml: squawk's --exclude replaces them, so pgrollout passes both."""
    import tomllib

    if not config:
        return []
    try:
        with open(config, "rb") as handle:
            rules = tomllib.load(handle).get("excluded_rules") or []
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise RuntimeError(f"{config}: cannot read squawk's configuration: {exc}") from exc
    return [str(rule) for rule in rules]


def _squawk(files: list[MigrationFile], binary: str, config: str | None, in_transaction: bool,
            pg_version: str | None = None) -> list[dict]:
    if not files:
        return []
    excluded = list(dict.fromkeys([*SQUAWK_MOOT, *config_excluded(config)]))
    # the target's server version when there is a target (squawk's rules differ by version), else 15
    cmd = [binary, "--reporter", "json", "--pg-version", pg_version or "15.0",
           "--assume-in-transaction" if in_transaction else "--no-assume-in-transaction",
           "--exclude", ",".join(excluded)]
    if config:
        cmd += ["--config", config]
    proc = subprocess.run([*cmd, *[f.path for f in files]], capture_output=True, text=True, check=False)
    try:
        reported = json.loads(proc.stdout or "[]")
    except ValueError as exc:
        raise RuntimeError(f"squawk failed (exit {proc.returncode}): {proc.stderr.strip() or proc.stdout[:500]}") \
            from exc
    by_path = {f.path: f for f in files}
    return [finding(by_path.get(r["file"]) or files[0], int(r.get("line") or 0) + 1, r["rule_name"],
                    severity="error" if r.get("level") == "Error" else "warn", why=r.get("message") or "",
                    how=r.get("help") or f"see https://squawkhq.com/docs/{r['rule_name']}", source="squawk")
            for r in reported]


def squawk_binary() -> str:
    """squawk beside this Python (the venv's), else on PATH."""
    import sys

    beside = os.path.join(os.path.dirname(sys.executable), "squawk")
    path = beside if os.path.exists(beside) else shutil.which("squawk") or beside
    if not os.path.exists(path):
        raise RuntimeError("squawk is not installed for this Python: pip install squawk-cli (requirements.txt)")
    return path


_SIZES_SQL = """
SELECT n.nspname, c.relname, greatest(c.reltuples, 0)::bigint, pg_total_relation_size(c.oid),
       coalesce(round((s.n_tup_ins + s.n_tup_upd + s.n_tup_del)
             / greatest(extract(epoch FROM now() - coalesce(d.stats_reset, pg_postmaster_start_time())), 1)
             ::numeric, 2), 0)::float
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
LEFT JOIN pg_stat_database d ON d.datname = current_database()
WHERE (n.nspname, c.relname) IN (SELECT * FROM unnest(%s::text[], %s::text[]))
"""


# Tables up to this size have their rows counted (a fraction of a second); bigger ones keep the planner's estimate.
EXACT_COUNT_BYTES = 16 * 2**20


def table_sizes(cur: Any, tables: list[tuple[str, str]]) -> dict[str, dict[str, Any]]:
    """Live rows (counted on small tables, else the planner's estimate: `counted` says which), total size and
    writes per second (since the statistics began) per table."""
    from psycopg import sql

    if not tables:
        return {}
    cur.execute(_SIZES_SQL, ([t[0] for t in tables], [t[1] for t in tables]))
    sizes = {}
    for schema, name, rows, size, rate in cur.fetchall():
        counted = size <= EXACT_COUNT_BYTES
        if counted:
            cur.execute(sql.SQL("SELECT count(*) FROM {}.{}").format(sql.Identifier(schema), sql.Identifier(name)))
            rows = cur.fetchone()[0]
        sizes[f"{schema}.{name}"] = {"rows": rows, "bytes": size, "writes_per_second": rate, "counted": counted}
    return sizes


def human(rows: int, size: int, counted: bool = True) -> str:
    count = f"{rows / 1e6:.1f} M" if rows >= 1e6 else f"{rows / 1e3:.1f} k" if rows >= 1e3 else str(rows)
    amount = f"{size / 2**30:.1f} GB" if size >= 2**30 else f"{size / 2**20:.0f} MB" if size >= 2**20 else \
        f"{size / 2**10:.0f} kB"
    return f"{count} rows{'' if counted else ' (estimated)'}, {amount}"


def annotate(report: dict[str, Any], files: list[tuple[MigrationFile, str]], cur: Any, big_rows: int,
             big_bytes: int) -> None:
    """Each finding on existing tables gets their size; above either threshold a finding becomes an error."""
    from . import locks

    by_path = {mf.path: mf for mf, _unused in files}
    for item in report["findings"]:
        if item.get("file_level"):
            continue
        mf = by_path.get(item["file"])
        statement = next((st for st in reversed(mf.statements) if st.line <= item["line"]), None) if mf else None
        if statement is None:
            continue
        # a CREATE TABLE locks only the tables its foreign keys reference: a finding about the new table
        # is not about them (only the reference rules are)
        creates = all(type(node).__name__ == "CreateStmt" for node in nodes(statement))
        planned = {} if creates and item["rule"] not in REFERENCE_RULES else locks.lock_plan([statement])
        resolved = locks.resolve(cur, planned)
        sizes = table_sizes(cur, [(s, n) for s, n, _unused in resolved])
        if not sizes:
            continue
        item["tables"] = sizes
        item["why"] += " — on " + "; ".join(
            f"{t} ({human(v['rows'], v['bytes'], v['counted'])}, {v['writes_per_second']} writes/s)"
            for t, v in sizes.items())
        if item["severity"] != "error" and any(v["rows"] > big_rows or v["bytes"] > big_bytes
                                               for v in sizes.values()):
            item["severity"], item["raised"] = "error", f"a table above {big_rows} rows or {big_bytes} bytes"
    report["blocking"] = [f for f in report["findings"] if f["severity"] == "error" and "ignored" not in f
                          and not f.get("acknowledged")]
    report["summary"] = summary(report["findings"])


def rollback_findings(layout: Any, files: list[tuple[MigrationFile, str]]) -> list[dict[str, Any]]:
    """A no-rollback-file finding for each forward file of `files` (files_to_lint's) without its rollback file."""
    forward = {mf.path: mf for mf, direction in files if direction == "up"}
    # about the file, not a statement: never raised by the size of the tables its first statement locks
    return [{**finding(forward[m.up], 1, "no-rollback-file", f"expected at {m.down}"), "file_level": True}
            for m in layout.migrations() if m.up in forward and not os.path.exists(m.down)]


def lint(files: list[tuple[MigrationFile, str]], exposed: list[str], acknowledged: list[str] = (),
         squawk_config: str | None = None, use_squawk: bool = True,
         extra: list[dict[str, Any]] = (), pg_version: str | None = None) -> dict[str, Any]:
    """Findings for (file, direction) pairs, and `extra` ones; errors not ignored or acknowledged are `blocking`.

    One finding per problem: the same rule on the same line with the same words (a policy's USING and
    WITH CHECK both calling auth.uid()) is reported once."""
    findings: list[dict[str, Any]] = list(extra)
    if use_squawk:
        binary = squawk_binary()
        for transactional in (True, False):
            group = [mf for mf, _unused in files if mf.transactional is transactional]
            findings += _squawk(group, binary, squawk_config, transactional, pg_version)
    for mf, direction in files:
        findings += _own_rules(mf, exposed, direction)
    findings = list({(f["file"], f["line"], f["rule"], f["why"], f["how"]): f for f in findings}.values())
    ignored = {(mf.path, rule): reason.strip() or "no reason given"
               for mf, _unused in files for rule, reason in IGNORE_RE.findall(mf.text)}
    acked = set(acknowledged)
    for item in findings:
        key = f"{item['rule']}:{os.path.basename(item['file'])}"
        if (item["file"], item["rule"]) in ignored:
            item["ignored"] = ignored[(item["file"], item["rule"])]
        elif key in acked:
            item["acknowledged"] = True
    findings.sort(key=lambda f: (f["file"], f["line"], f["rule"]))
    blocking = [f for f in findings if f["severity"] == "error" and "ignored" not in f and not f.get("acknowledged")]
    return {"findings": findings, "blocking": blocking, "files": [mf.path for mf, _unused in files],
            "summary": summary(findings)}


def summary(findings: list[dict[str, Any]]) -> list[str]:
    lines = []
    for f in findings:
        state = " (ignored: " + f["ignored"] + ")" if "ignored" in f else " (acknowledged)" if f.get("acknowledged") \
            else ""
        lines.append(f"{f['severity'].upper():5} {os.path.basename(f['file'])}:{f['line']} {f['rule']}{state}: "
                     f"{f['why'].rstrip('.')}. Safer: {f['how']}")
    return lines


def junit(report: dict[str, Any]) -> str:
    """One test case per file and rule found (and one passing case per clean file), through junit.py."""
    from .junit import case, suite

    cases = []
    for path in report["files"]:
        mine = [f for f in report["findings"] if f["file"] == path]
        name = os.path.basename(path)
        if not mine:
            cases.append(case("pgrollout.lint", name))
        for f in mine:
            label, classname = f"{name}:{f['line']}", f"pgrollout.lint.{f['rule']}"
            if f in report["blocking"]:
                cases.append(case(classname, label, failure=f"{f['why']}\nSafer: {f['how']}"))
            else:
                cases.append(case(classname, label, system_out=f"{f['severity']}: {f['why']}"))
    return suite("pgrollout migration lint", cases)


def files_to_lint(layout: Any, versions: list[str] | None,
                  loaded: list[MigrationFile] = ()) -> list[tuple[MigrationFile, str]]:
    """Forward and (existing) rollback files of the given versions, or of every migration.

    Forward files already read and parsed (`loaded`, the plan's) are not read again.
    """
    from .sqlfile import load

    wanted = {int(v) for v in versions} if versions is not None else None
    known = {mf.path: mf for mf in loaded}
    pairs: list[tuple[MigrationFile, str]] = []
    for m in layout.migrations():
        if wanted is not None and m.number not in wanted:
            continue
        pairs.append((known.get(m.up) or load(m.up, m.version, m.name), "up"))
        if os.path.exists(m.down):
            pairs.append((load(m.down, m.version, m.name), "down"))
    return pairs


def write_reports(report: dict[str, Any], json_path: str | None, junit_path: str | None) -> None:
    for path, text in ((json_path, json.dumps(report, indent=2, sort_keys=True)), (junit_path, junit(report))):
        if path:
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(text)


def default_squawk_config(path: str | None) -> str | None:
    """The given squawk config, else a .squawk.toml in the working folder (the project's root), else none."""
    if path is None and os.path.exists(".squawk.toml"):
        return os.path.abspath(".squawk.toml")
    return path


def review(layout: Any, versions: list[str] | None, exposed: list[str], acknowledged: list[str] = (),
           squawk_config: str | None = None, pg_version: str | None = None, cur: Any = None,
           big_rows: int = 1000000, big_bytes: int = 1073741824,
           loaded: list[MigrationFile] = ()) -> dict[str, Any]:
    """The review of `versions` (forward and rollback files; all when None), annotated with table sizes on `cur`."""
    files = files_to_lint(layout, versions, loaded)
    report = lint(files, exposed, acknowledged, default_squawk_config(squawk_config),
                  extra=rollback_findings(layout, files), pg_version=pg_version)
    if cur is not None:
        annotate(report, files, cur, big_rows, big_bytes)
    return report
