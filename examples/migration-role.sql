-- A migration role that is not a superuser, shaped like Supabase's `postgres`
-- (README, "A migration role that is not a superuser"). Run it as a superuser
-- (or, on your own server, the database's owner) in the target database, with
-- app_migrator replaced by your role's name. On Supabase the postgres role has
-- all of this already; nothing here needs to run there.
CREATE ROLE app_migrator LOGIN NOSUPERUSER CREATEROLE CREATEDB BYPASSRLS;  -- then: \password app_migrator

-- pgrollout's records (schemas pgrollout and supabase_migrations) and CREATE SCHEMA in migrations
DO $$ BEGIN EXECUTE format('GRANT CREATE ON DATABASE %I TO app_migrator', current_database()); END $$;
-- the application schema the migrations create objects in
GRANT USAGE, CREATE ON SCHEMA public TO app_migrator;
-- schemas the migrations only refer to (auth.uid() in policies, extensions' functions)
GRANT USAGE ON SCHEMA auth, extensions TO app_migrator;
-- foreign keys to auth.users, and the rows the verification specs' setup writes there
GRANT SELECT, INSERT, UPDATE, DELETE, REFERENCES ON auth.users TO app_migrator;
-- the behaviour checks run as the API roles (SET ROLE)
GRANT anon, authenticated, service_role TO app_migrator;
-- pg_dump reads every table and schema (PostgreSQL 14 and later); BYPASSRLS above lets it read
-- tables with row-level security it does not own
GRANT pg_read_all_data TO app_migrator;
-- as Supabase does for postgres: what the role creates in public is granted to the API roles, so
-- row-level security is what stands between them and the rows
ALTER DEFAULT PRIVILEGES FOR ROLE app_migrator IN SCHEMA public GRANT ALL ON TABLES TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES FOR ROLE app_migrator IN SCHEMA public GRANT ALL ON SEQUENCES TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES FOR ROLE app_migrator IN SCHEMA public GRANT ALL ON FUNCTIONS TO anon, authenticated, service_role;
