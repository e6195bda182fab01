#!/usr/bin/python
"""Review migration files for lock risk and Supabase security mistakes, with no database."""
from __future__ import annotations

DOCUMENTATION = r"""
module: pgrollout_lint
short_description: Lint migration files (forward and rollback) with squawk and pgrollout's own rules
description:
  - Runs squawk (squawk-cli) on every file, telling it which files run in a
    transaction, honouring a C(.squawk.toml), and pgrollout's own rules on the
    parse tree - a table in an exposed schema without row-level security, a
    policy calling auth.uid()/auth.jwt() per row, a foreign key to auth.users,
    a SECURITY DEFINER function without SET search_path, a grant to anon, a
    DROP of a table or column on the forward path.
  - "Each finding has file, line, rule, severity, why and how to do it safely.
    An inline C(-- pgrollout: lint-ignore RULE reason) comment, or C(rule:file)
    in O(acknowledged), lets it through (recorded). Errors left are C(blocking)."
  - Needs no database. With O(annotate), each finding on an existing table of
    the target gets its live rows, size and write rate, and rises to an error
    above O(big_table_rows) or O(big_table_bytes).
  - Writes the report as JSON and JUnit when asked.
version_added: "0.2.0"
options:
  migrations_dir: {description: Folder of the migration files., type: path, required: true}
  rollbacks_dir: {description: Folder of the rollback files (layout supabase)., type: path}
  layout:
    description: How migration and rollback files are named.
    type: str
    choices: [supabase, updown]
    default: supabase
  versions:
    description: Lint only these versions (forward and rollback files); all when omitted.
    type: list
    elements: str
  exposed_schemas: {description: Schemas the API exposes., type: list, elements: str, default: [public]}
  acknowledged: {description: "Findings let through, as rule:file.", type: list, elements: str, default: []}
  squawk_config:
    description:
      - A .squawk.toml to use (default - one in the current folder). Its C(excluded_rules) are added to
        the rules pgrollout excludes (squawk's own --exclude would replace them).
    type: path
  pg_version:
    description: The target's PostgreSQL version (major.minor) squawk judges by; default 15.0.
    type: str
  json_path: {description: Write the report here as JSON., type: path}
  junit_path: {description: Write the report here as JUnit XML., type: path}
  fail_on_error:
    description: Fail when an error is neither ignored nor acknowledged.
    type: bool
    default: true
  annotate:
    description: Connect to the target and annotate findings with the sizes of the tables they touch.
    type: bool
    default: false
  big_table_rows:
    description: With O(annotate), a finding on a table with more rows (estimate) is an error.
    type: int
    default: 1000000
  big_table_bytes:
    description: With O(annotate), a finding on a table larger than this (bytes) is an error.
    type: int
    default: 1073741824
extends_documentation_fragment: [pgrollout.postgresql.pgrollout]
attributes:
  check_mode:
    support: full
    description: Reads files only; writes the reports in check mode too.
author: pgrollout developers (@pgrollout)
"""

EXAMPLES = r"""
- name: Lint every migration (a pull request pipeline)
  pgrollout.postgresql.pgrollout_lint:
    migrations_dir: supabase/migrations
    rollbacks_dir: supabase/rollbacks
    junit_path: .ops/lint/junit.xml
"""

RETURN = r"""
findings:
  description: Every finding (file, line, rule, severity, why, how, source, ignored, acknowledged).
  returned: always
  type: list
blocking: {description: Errors neither ignored nor acknowledged., returned: always, type: list}
summary: {description: "One line per finding, for people.", returned: always, type: list}
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.pgrollout.postgresql.plugins.module_utils.connection import CONNECTION_ARGUMENT_SPEC, connect
from ansible_collections.pgrollout.postgresql.plugins.module_utils.lint import review, write_reports
from ansible_collections.pgrollout.postgresql.plugins.module_utils.plan import Layout
from ansible_collections.pgrollout.postgresql.plugins.module_utils.sqlfile import MigrationFileError


def main() -> None:
    module = AnsibleModule(argument_spec=dict(
        CONNECTION_ARGUMENT_SPEC,
        annotate={"type": "bool", "default": False},
        big_table_rows={"type": "int", "default": 1000000},
        big_table_bytes={"type": "int", "default": 1073741824},
        migrations_dir={"type": "path", "required": True},
        rollbacks_dir={"type": "path"},
        layout={"type": "str", "choices": ["supabase", "updown"], "default": "supabase"},
        versions={"type": "list", "elements": "str"},
        exposed_schemas={"type": "list", "elements": "str", "default": ["public"]},
        acknowledged={"type": "list", "elements": "str", "default": []},
        squawk_config={"type": "path"},
        pg_version={"type": "str"},
        json_path={"type": "path"},
        junit_path={"type": "path"},
        fail_on_error={"type": "bool", "default": True},
    ), supports_check_mode=True)
    p = module.params
    try:
        layout = Layout(p["migrations_dir"], p["rollbacks_dir"], layout=p["layout"])
        args = (layout, p["versions"], p["exposed_schemas"], p["acknowledged"], p["squawk_config"], p["pg_version"])
        if p["annotate"]:
            with connect(p) as conn, conn.transaction(), conn.cursor() as cur:
                cur.execute("SET TRANSACTION READ ONLY")
                report = review(*args, cur=cur, big_rows=p["big_table_rows"], big_bytes=p["big_table_bytes"])
        else:
            report = review(*args)
        write_reports(report, p["json_path"], p["junit_path"])
    except (MigrationFileError, RuntimeError, OSError) as exc:
        module.fail_json(msg=str(exc))
    result = dict(changed=False, **report)
    if report["blocking"] and p["fail_on_error"]:
        module.fail_json(msg=f"{len(report['blocking'])} lint error(s) stop the run before anything changes: "
                             + "; ".join(f"{f['rule']}:{os.path.basename(f['file'])} line {f['line']}"
                                         for f in report["blocking"])
                             + ". Fix them, or let one through on purpose: -- pgrollout: lint-ignore RULE reason "
                               "in the file, or pgrollout_acknowledged_lint: [\"rule:file\"] (recorded)", **result)
    module.exit_json(msg=f"{len(report['findings'])} finding(s), {len(report['blocking'])} blocking", **result)


if __name__ == "__main__":
    main()
