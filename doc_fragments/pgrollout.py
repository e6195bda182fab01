"""Connection options shared by every pgrollout module (ansible-doc renders them)."""
from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  login_host:
    description:
      - Host of the PostgreSQL server (use the direct connection, not a transaction pooler). Empty - libpq's
        choice (PGHOST, a service file in O(connect_params), else O(login_unix_socket) or the local socket).
    type: str
    default: ''
    aliases: [host]
  login_unix_socket:
    description: Folder of the server's Unix socket, used when O(login_host) is empty.
    type: str
    default: ''
  login_port:
    description: Port of the PostgreSQL server. Not given - libpq's choice (PGPORT, a service file, else 5432).
    type: int
    aliases: [port]
  login_user:
    description: Role to connect as.
    type: str
    default: postgres
    aliases: [user]
  login_password:
    description:
      - Password of O(login_user). Never logged, never passed in argv; client
        programs receive it through a temporary 0600 passfile. Empty - libpq's
        own sources, for the client programs too (PGPASSWORD, PGPASSFILE, ~/.pgpass).
    type: str
    default: ''
    aliases: [password]
  login_db:
    description: Database to connect to.
    type: str
    default: postgres
    aliases: [db]
  ssl_mode:
    description: libpq sslmode.
    type: str
    default: prefer
    choices: [allow, disable, prefer, require, verify-ca, verify-full]
  ca_cert:
    description: File of the CA certificate(s) to verify the server with (libpq sslrootcert).
    type: str
    aliases: [ssl_rootcert]
  ssl_cert:
    description: The client certificate file (libpq sslcert).
    type: path
  ssl_key:
    description: The client certificate's key file (libpq sslkey).
    type: path
  connect_timeout:
    description: Seconds to wait for a connection.
    type: int
    default: 10
  connect_params:
    description: Further libpq connection parameters (for example sslrootcert).
    type: dict
    default: {}
requirements:
  - psycopg >= 3.2 on the host that runs the module
"""

    # Where a plan's files are and how they are named (modules that read them).
    LAYOUT = r"""
options:
  rollbacks_dir:
    description: Folder of the rollback files (layout C(supabase)).
    type: path
  verification_dir:
    description: Folder of the verification specs.
    type: path
  layout:
    description: C(supabase) (NNN_name.sql, rollbacks/NNN_name_rollback.sql) or C(updown) (NNN_name.up.sql, .down.sql).
    type: str
    choices: [supabase, updown]
    default: supabase
"""

    # Modules that commit only while the ansible-playbook that ran them lives, async jobs too (pg_migrate,
    # pg_restore): their action plugin sets the option.
    CONTROLLER = r"""
options:
  controller_pid:
    description:
      - The ansible-playbook to watch before a COMMIT when the module runs detached (C(async)); its
        action plugin sets it. Not for playbooks.
    type: int
"""
