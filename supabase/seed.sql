-- Dev and test data only (Supabase applies supabase/seed.sql on `db reset`).
INSERT INTO auth.users (id, email) VALUES
  ('00000000-0000-4000-8000-00000000a11c', 'alice@example.test'),
  ('00000000-0000-4000-8000-000000000b0b', 'bob@example.test')
ON CONFLICT (id) DO NOTHING;

INSERT INTO public.kb_patterns (name, description, pattern_type, confidence, created_by) VALUES
  ('Double bottom', 'Two lows near the same level', 'reversal', 0.720, NULL),
  ('Bull flag', 'Consolidation after a sharp rise', 'continuation', 0.650, NULL),
  ('Head and shoulders', 'Three peaks, the middle highest', 'reversal', 0.690,
   '00000000-0000-4000-8000-00000000a11c');

INSERT INTO public.kb_market_regimes (name, regime, starts_on, ends_on, notes) VALUES
  ('2020 crash', 'high-volatility', '2020-02-20', '2020-04-07', 'Pandemic sell-off'),
  ('2021 melt-up', 'trending-up', '2020-11-01', '2021-11-30', NULL);

INSERT INTO public.kb_lessons_learned (title, body, tags, created_by) VALUES
  ('Size down in chop', 'Range-bound markets ate the trend bot''s edge.', '{risk,sizing}', NULL),
  ('Respect the stop', 'Moving a stop turned a small loss into a large one.', '{risk}',
   '00000000-0000-4000-8000-000000000b0b');

INSERT INTO public.kb_macro_events (event_name, event_date, impact, notes) VALUES
  ('FOMC rate decision', '2025-12-10', 'high', NULL),
  ('US CPI release', '2026-01-13', 'high', 'Core above consensus');

INSERT INTO public.kb_correlations (asset_a, asset_b, coefficient, window_days) VALUES
  ('BTC', 'ETH', 0.8700, 90),
  ('SPX', 'VIX', -0.7400, 30),
  ('GOLD', 'DXY', -0.4100, 180);
