-- Rollback of 003_bot_registration_sharing: back to the exact state after 002.
--
-- WARNING: this turns row-level security OFF again on the five kb_* tables,
-- re-opening the security gap that 003 closed: anon and authenticated can then
-- read and change every kb_* row. Run the post-rollback verification, which
-- flags it, and plan the fix.
--
-- DROP TABLE takes ACCESS EXCLUSIVE on auth.users too (the foreign keys):
-- sign-ups and logins wait for the rollback's transaction.

DROP POLICY kb_patterns_select_authenticated ON public.kb_patterns;
DROP POLICY kb_patterns_insert_own ON public.kb_patterns;
DROP POLICY kb_patterns_update_own ON public.kb_patterns;
DROP POLICY kb_patterns_delete_own ON public.kb_patterns;
ALTER TABLE public.kb_patterns DISABLE ROW LEVEL SECURITY;

DROP POLICY kb_market_regimes_select_authenticated ON public.kb_market_regimes;
DROP POLICY kb_market_regimes_insert_own ON public.kb_market_regimes;
DROP POLICY kb_market_regimes_update_own ON public.kb_market_regimes;
DROP POLICY kb_market_regimes_delete_own ON public.kb_market_regimes;
ALTER TABLE public.kb_market_regimes DISABLE ROW LEVEL SECURITY;

DROP POLICY kb_lessons_learned_select_authenticated ON public.kb_lessons_learned;
DROP POLICY kb_lessons_learned_insert_own ON public.kb_lessons_learned;
DROP POLICY kb_lessons_learned_update_own ON public.kb_lessons_learned;
DROP POLICY kb_lessons_learned_delete_own ON public.kb_lessons_learned;
ALTER TABLE public.kb_lessons_learned DISABLE ROW LEVEL SECURITY;

DROP POLICY kb_macro_events_select_authenticated ON public.kb_macro_events;
DROP POLICY kb_macro_events_insert_own ON public.kb_macro_events;
DROP POLICY kb_macro_events_update_own ON public.kb_macro_events;
DROP POLICY kb_macro_events_delete_own ON public.kb_macro_events;
ALTER TABLE public.kb_macro_events DISABLE ROW LEVEL SECURITY;

DROP POLICY kb_correlations_select_authenticated ON public.kb_correlations;
DROP POLICY kb_correlations_insert_own ON public.kb_correlations;
DROP POLICY kb_correlations_update_own ON public.kb_correlations;
DROP POLICY kb_correlations_delete_own ON public.kb_correlations;
ALTER TABLE public.kb_correlations DISABLE ROW LEVEL SECURITY;

-- Dropping a table drops its policies, indexes and constraints. No CASCADE:
-- anything built on these tables since 003 makes the rollback stop here.
DROP TABLE public.validation_run_shares;
DROP TABLE public.validation_runs;
DROP TABLE public.bot_api_keys;
DROP TABLE public.bots;

DROP FUNCTION private.run_is_shared_with_me(uuid);
DROP FUNCTION private.owns_run(uuid);
DROP SCHEMA private;
