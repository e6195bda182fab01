-- 002: the trading knowledge base. Shipped WITHOUT row-level security: the
-- gap that migration 003 closes. Rows with created_by NULL are curated ones.

CREATE TABLE public.kb_patterns (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name text NOT NULL,
  description text,
  pattern_type text NOT NULL,
  confidence numeric(4, 3),
  created_by uuid REFERENCES auth.users (id) ON DELETE SET NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE public.kb_market_regimes (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name text NOT NULL,
  regime text NOT NULL,
  starts_on date,
  ends_on date,
  notes text,
  created_by uuid REFERENCES auth.users (id) ON DELETE SET NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE public.kb_lessons_learned (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  title text NOT NULL,
  body text NOT NULL,
  tags text[] NOT NULL DEFAULT '{}',
  created_by uuid REFERENCES auth.users (id) ON DELETE SET NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE public.kb_macro_events (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  event_name text NOT NULL,
  event_date date NOT NULL,
  impact text,
  notes text,
  created_by uuid REFERENCES auth.users (id) ON DELETE SET NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE public.kb_correlations (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  asset_a text NOT NULL,
  asset_b text NOT NULL,
  coefficient numeric(5, 4) NOT NULL,
  window_days integer NOT NULL,
  created_by uuid REFERENCES auth.users (id) ON DELETE SET NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX kb_patterns_created_by_idx ON public.kb_patterns (created_by);
CREATE INDEX kb_market_regimes_created_by_idx ON public.kb_market_regimes (created_by);
CREATE INDEX kb_lessons_learned_created_by_idx ON public.kb_lessons_learned (created_by);
CREATE INDEX kb_macro_events_created_by_idx ON public.kb_macro_events (created_by);
CREATE INDEX kb_correlations_created_by_idx ON public.kb_correlations (created_by);
