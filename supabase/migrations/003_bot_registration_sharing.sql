-- 003: bot registration and validation sharing.
--   bots                   a user's registered bots
--   bot_api_keys           API keys of a bot, stored ONLY as SHA-256 hashes
--   validation_runs        a validation run of a bot, owned by the bot's owner
--   validation_run_shares  a run shared read-only with another user
-- and the row-level security that migration 002 left off the five kb_* tables.
--
-- Policies on validation_runs and validation_run_shares that queried each
-- other's table would recurse ("infinite recursion detected in policy"): the
-- cross-checks go through SECURITY DEFINER helpers in schema private, which is
-- not exposed by the API and answers only yes/no about the calling user.
-- auth.uid() is wrapped in a sub-select so it is evaluated once per query.

CREATE TABLE public.bots (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  owner_id uuid NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
  name text NOT NULL,
  description text,
  status text NOT NULL DEFAULT 'active',
  created_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT bots_name_length CHECK (char_length(name) BETWEEN 1 AND 100),
  CONSTRAINT bots_status_valid CHECK (status IN ('active', 'paused', 'retired')),
  CONSTRAINT bots_owner_id_name_key UNIQUE (owner_id, name)
);

CREATE TABLE public.bot_api_keys (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  bot_id uuid NOT NULL REFERENCES public.bots (id) ON DELETE CASCADE,
  label text NOT NULL DEFAULT 'default',
  key_prefix text NOT NULL,
  key_hash text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  last_used_at timestamptz,
  revoked_at timestamptz,
  CONSTRAINT bot_api_keys_key_hash_key UNIQUE (key_hash),
  CONSTRAINT bot_api_keys_key_hash_is_sha256 CHECK (key_hash ~ '^[0-9a-f]{64}$'),
  CONSTRAINT bot_api_keys_key_prefix_length CHECK (char_length(key_prefix) BETWEEN 4 AND 12)
);

CREATE TABLE public.validation_runs (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  bot_id uuid NOT NULL REFERENCES public.bots (id) ON DELETE CASCADE,
  owner_id uuid NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
  status text NOT NULL DEFAULT 'queued',
  score numeric(5, 2),
  summary jsonb NOT NULL DEFAULT '{}',
  started_at timestamptz,
  finished_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT validation_runs_status_valid
    CHECK (status IN ('queued', 'running', 'passed', 'failed', 'error')),
  CONSTRAINT validation_runs_score_range CHECK (score BETWEEN 0 AND 100),
  CONSTRAINT validation_runs_finished_after_started CHECK (finished_at >= started_at)
);

CREATE TABLE public.validation_run_shares (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  run_id uuid NOT NULL REFERENCES public.validation_runs (id) ON DELETE CASCADE,
  shared_with uuid NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz,
  CONSTRAINT validation_run_shares_run_id_shared_with_key UNIQUE (run_id, shared_with),
  CONSTRAINT validation_run_shares_expires_after_created CHECK (expires_at > created_at)
);

-- Every foreign key is indexed (bots.owner_id by its unique constraint).
CREATE INDEX bot_api_keys_bot_id_idx ON public.bot_api_keys (bot_id);
CREATE INDEX validation_runs_bot_id_created_at_idx ON public.validation_runs (bot_id, created_at DESC);
CREATE INDEX validation_runs_owner_id_idx ON public.validation_runs (owner_id);
CREATE INDEX validation_run_shares_shared_with_idx ON public.validation_run_shares (shared_with);

CREATE SCHEMA private;
REVOKE ALL ON SCHEMA private FROM PUBLIC;
GRANT USAGE ON SCHEMA private TO authenticated;

CREATE FUNCTION private.owns_run(p_run_id uuid) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' AS $$
  SELECT EXISTS (
    SELECT 1 FROM public.validation_runs r
    WHERE r.id = p_run_id AND r.owner_id = (SELECT auth.uid())
  )
$$;

CREATE FUNCTION private.run_is_shared_with_me(p_run_id uuid) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' AS $$
  SELECT EXISTS (
    SELECT 1 FROM public.validation_run_shares s
    WHERE s.run_id = p_run_id
      AND s.shared_with = (SELECT auth.uid())
      AND (s.expires_at IS NULL OR s.expires_at > now())
  )
$$;

REVOKE ALL ON FUNCTION private.owns_run(uuid), private.run_is_shared_with_me(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION private.owns_run(uuid), private.run_is_shared_with_me(uuid) TO authenticated;

ALTER TABLE public.bots ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.bot_api_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.validation_runs ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.validation_run_shares ENABLE ROW LEVEL SECURITY;

-- Owners read all their bots; they change only bots that are not retired
-- (a retired bot stays as the record of its past runs).
CREATE POLICY bots_select_own ON public.bots
  FOR SELECT TO authenticated
  USING (owner_id = (SELECT auth.uid()));

CREATE POLICY bots_manage_own ON public.bots
  FOR ALL TO authenticated
  USING (owner_id = (SELECT auth.uid()) AND status <> 'retired')
  WITH CHECK (owner_id = (SELECT auth.uid()));

CREATE POLICY bot_api_keys_manage_own ON public.bot_api_keys
  FOR ALL TO authenticated
  USING (EXISTS (SELECT 1 FROM public.bots b
                 WHERE b.id = bot_id AND b.owner_id = (SELECT auth.uid())))
  WITH CHECK (EXISTS (SELECT 1 FROM public.bots b
                      WHERE b.id = bot_id AND b.owner_id = (SELECT auth.uid())));

CREATE POLICY validation_runs_manage_own ON public.validation_runs
  FOR ALL TO authenticated
  USING (owner_id = (SELECT auth.uid()))
  WITH CHECK (owner_id = (SELECT auth.uid())
              AND EXISTS (SELECT 1 FROM public.bots b
                          WHERE b.id = bot_id AND b.owner_id = (SELECT auth.uid())));

CREATE POLICY validation_runs_select_shared ON public.validation_runs
  FOR SELECT TO authenticated
  USING (private.run_is_shared_with_me(id));

CREATE POLICY validation_run_shares_manage_own ON public.validation_run_shares
  FOR ALL TO authenticated
  USING (private.owns_run(run_id))
  WITH CHECK (private.owns_run(run_id) AND shared_with <> (SELECT auth.uid()));

CREATE POLICY validation_run_shares_select_grantee ON public.validation_run_shares
  FOR SELECT TO authenticated
  USING (shared_with = (SELECT auth.uid()));

-- The kb_* tables: any signed-in user reads the knowledge base; users add
-- entries as themselves and change or delete only their own. Curated rows
-- (created_by NULL) are changed by service_role, which bypasses RLS.

ALTER TABLE public.kb_patterns ENABLE ROW LEVEL SECURITY;
CREATE POLICY kb_patterns_select_authenticated ON public.kb_patterns
  FOR SELECT TO authenticated USING (true);
CREATE POLICY kb_patterns_insert_own ON public.kb_patterns
  FOR INSERT TO authenticated WITH CHECK (created_by = (SELECT auth.uid()));
CREATE POLICY kb_patterns_update_own ON public.kb_patterns
  FOR UPDATE TO authenticated
  USING (created_by = (SELECT auth.uid())) WITH CHECK (created_by = (SELECT auth.uid()));
CREATE POLICY kb_patterns_delete_own ON public.kb_patterns
  FOR DELETE TO authenticated USING (created_by = (SELECT auth.uid()));

ALTER TABLE public.kb_market_regimes ENABLE ROW LEVEL SECURITY;
CREATE POLICY kb_market_regimes_select_authenticated ON public.kb_market_regimes
  FOR SELECT TO authenticated USING (true);
CREATE POLICY kb_market_regimes_insert_own ON public.kb_market_regimes
  FOR INSERT TO authenticated WITH CHECK (created_by = (SELECT auth.uid()));
CREATE POLICY kb_market_regimes_update_own ON public.kb_market_regimes
  FOR UPDATE TO authenticated
  USING (created_by = (SELECT auth.uid())) WITH CHECK (created_by = (SELECT auth.uid()));
CREATE POLICY kb_market_regimes_delete_own ON public.kb_market_regimes
  FOR DELETE TO authenticated USING (created_by = (SELECT auth.uid()));

ALTER TABLE public.kb_lessons_learned ENABLE ROW LEVEL SECURITY;
CREATE POLICY kb_lessons_learned_select_authenticated ON public.kb_lessons_learned
  FOR SELECT TO authenticated USING (true);
CREATE POLICY kb_lessons_learned_insert_own ON public.kb_lessons_learned
  FOR INSERT TO authenticated WITH CHECK (created_by = (SELECT auth.uid()));
CREATE POLICY kb_lessons_learned_update_own ON public.kb_lessons_learned
  FOR UPDATE TO authenticated
  USING (created_by = (SELECT auth.uid())) WITH CHECK (created_by = (SELECT auth.uid()));
CREATE POLICY kb_lessons_learned_delete_own ON public.kb_lessons_learned
  FOR DELETE TO authenticated USING (created_by = (SELECT auth.uid()));

ALTER TABLE public.kb_macro_events ENABLE ROW LEVEL SECURITY;
CREATE POLICY kb_macro_events_select_authenticated ON public.kb_macro_events
  FOR SELECT TO authenticated USING (true);
CREATE POLICY kb_macro_events_insert_own ON public.kb_macro_events
  FOR INSERT TO authenticated WITH CHECK (created_by = (SELECT auth.uid()));
CREATE POLICY kb_macro_events_update_own ON public.kb_macro_events
  FOR UPDATE TO authenticated
  USING (created_by = (SELECT auth.uid())) WITH CHECK (created_by = (SELECT auth.uid()));
CREATE POLICY kb_macro_events_delete_own ON public.kb_macro_events
  FOR DELETE TO authenticated USING (created_by = (SELECT auth.uid()));

ALTER TABLE public.kb_correlations ENABLE ROW LEVEL SECURITY;
CREATE POLICY kb_correlations_select_authenticated ON public.kb_correlations
  FOR SELECT TO authenticated USING (true);
CREATE POLICY kb_correlations_insert_own ON public.kb_correlations
  FOR INSERT TO authenticated WITH CHECK (created_by = (SELECT auth.uid()));
CREATE POLICY kb_correlations_update_own ON public.kb_correlations
  FOR UPDATE TO authenticated
  USING (created_by = (SELECT auth.uid())) WITH CHECK (created_by = (SELECT auth.uid()));
CREATE POLICY kb_correlations_delete_own ON public.kb_correlations
  FOR DELETE TO authenticated USING (created_by = (SELECT auth.uid()));
