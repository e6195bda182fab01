"""Migration sets written by the tests: nobody here wrote them by hand for 003.

Each set is a folder of files in one of the layouts, with names that need
quoting (quotes, spaces, capitals), chains where each file needs the one
before it, non-transactional files in both directions, long function
signatures and comment-only files.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass
class MigrationSet:
    root: Path
    layout: str = "supabase"

    @property
    def migrations(self) -> Path:
        return self.root / "migrations"

    @property
    def rollbacks(self) -> Path:
        return self.root / "rollbacks"

    @property
    def verification(self) -> Path:
        return self.root / "verification"

    def __post_init__(self) -> None:
        for folder in (self.migrations, self.rollbacks, self.verification):
            folder.mkdir(parents=True, exist_ok=True)

    def add(self, version: str, name: str, up: str, down: str | None = None, spec: str | None = None,
            rollback_spec: str | None = None) -> Path:
        if self.layout == "updown":
            path = self.migrations / f"{version}_{name}.up.sql"
            if down is not None:
                (self.migrations / f"{version}_{name}.down.sql").write_text(down)
        else:
            path = self.migrations / f"{version}_{name}.sql"
            if down is not None:
                (self.rollbacks / f"{version}_{name}_rollback.sql").write_text(down)
        path.write_text(up)
        if spec is not None:
            (self.verification / f"{version}_{name}.yml").write_text(spec)
        if rollback_spec is not None:
            (self.verification / f"{version}_{name}_rollback.yml").write_text(rollback_spec)
        return path

    def paths(self) -> list[str]:
        suffix = ".up.sql" if self.layout == "updown" else ".sql"
        return sorted(str(p) for p in self.migrations.iterdir() if p.name.endswith(suffix))

    def host_vars(self) -> dict[str, str]:
        return {"pgrollout_migrations_dir": str(self.migrations), "pgrollout_rollbacks_dir": str(self.rollbacks),
                "pgrollout_verification_dir": str(self.verification), "pgrollout_migration_layout": self.layout}


def table_name(i: int) -> str:
    return f'Chain "{i}" Table'


def chain(root: Path, count: int, layout: str = "supabase", start: int = 1) -> MigrationSet:
    """`count` files, each creating a table with a foreign key to the one the file before created,
    a policy on the table before it, and RLS on: each file needs the one before."""
    mset = MigrationSet(root, layout)
    for i in range(start, start + count):
        table = ident(table_name(i))
        lines = [f"CREATE TABLE {table} (id bigint PRIMARY KEY, \"Parent Id\" bigint"
                 + (f" REFERENCES {ident(table_name(i - 1))}(id)" if i > start else "") + ");",
                 f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;"]
        if i > start:
            lines.append(f"CREATE POLICY \"read {i}\" ON {ident(table_name(i - 1))} FOR SELECT USING (true);")
        down = [f"DROP POLICY \"read {i}\" ON {ident(table_name(i - 1))};"] if i > start else []
        down.append(f"DROP TABLE {table};")
        check = f"SELECT to_regclass('public.{ident(table_name(i))}') IS NOT NULL"
        spec = f"checks:\n  - name: table {i} exists\n    sql: |\n      {check}\n    expect: {{rows: [[true]]}}\n"
        mset.add(f"{i:03d}", f"chain_{i}", "\n".join(lines) + "\n", "\n".join(down) + "\n", spec=spec)
    return mset


def mixed(root: Path, layout: str = "updown") -> MigrationSet:
    """Transactional and non-transactional files in both directions, a long function signature,
    a comment-only file, a BOM, CRLF endings and other tools' markers."""
    mset = MigrationSet(root, layout)
    mset.add("001", "Accounts", '\ufeffCREATE TABLE "Accounts" ("Id" bigint PRIMARY KEY, "E-mail" text);\r\n',
             'DROP TABLE "Accounts";\n')
    mset.add("002", "index_email", '-- morph:nontransactional\n'
             'CREATE INDEX CONCURRENTLY "Accounts E-mail" ON "Accounts" ("E-mail");\n',
             '-- atlas:txmode none\nDROP INDEX CONCURRENTLY "Accounts E-mail";\n')
    mset.add("003", "notes_only", "-- nothing to do: kept so versions match another environment\n",
             "-- nothing to undo\n")
    mset.add("004", "long_function",
             'CREATE FUNCTION "Accounts Lookup"(p_account_identifier_for_lookup bigint, '
             'p_include_deactivated_accounts boolean DEFAULT false, "p Mixed Case Name" text DEFAULT \'x;y\') '
             'RETURNS SETOF "Accounts" LANGUAGE sql STABLE AS $body$ SELECT * FROM "Accounts" '
             'WHERE "Id" = p_account_identifier_for_lookup; $body$;\n'
             '-- a trailing comment the Supabase CLI keeps\n',
             'DROP FUNCTION "Accounts Lookup"(bigint, boolean, text);\n')
    mset.add("005", "vacuum", "-- migrate:up transaction:false\nVACUUM \"Accounts\";\n", "SELECT 1;\n")
    return mset
