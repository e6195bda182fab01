-- pgrollout STUB of pg_net: what migrations and triggers call, shaped as
-- pg_net declares it (schema net, the request queue, the response table, the
-- result types, http_get/http_post/http_delete). Requests are queued and never
-- sent: no background worker exists, and http_collect_response says so.
CREATE SCHEMA IF NOT EXISTS net;
COMMENT ON SCHEMA net IS 'pgrollout STUB of pg_net: requests are queued and never sent';

CREATE DOMAIN net.http_method AS text
  CHECK (value ILIKE 'get' OR value ILIKE 'post' OR value ILIKE 'delete');

CREATE UNLOGGED TABLE net.http_request_queue (
  id bigserial NOT NULL,
  method net.http_method NOT NULL,
  url text NOT NULL,
  headers jsonb NOT NULL,
  body bytea,
  timeout_milliseconds integer NOT NULL
);

CREATE UNLOGGED TABLE net._http_response (
  id bigint,
  status_code integer,
  content_type text,
  headers jsonb,
  content text,
  timed_out boolean,
  error_msg text,
  created timestamptz NOT NULL DEFAULT now()
);

CREATE TYPE net.request_status AS ENUM ('PENDING', 'SUCCESS', 'ERROR');
CREATE TYPE net.http_response AS (status_code integer, headers jsonb, body text);
CREATE TYPE net.http_response_result AS (status net.request_status, message text, response net.http_response);

CREATE FUNCTION net._stub_enqueue(method text, url text, headers jsonb, body jsonb, timeout_milliseconds integer)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
  request_id bigint;
BEGIN
  RAISE NOTICE 'pgrollout STUB pg_net: % % queued, never sent', upper(method), url;
  INSERT INTO net.http_request_queue (method, url, headers, body, timeout_milliseconds)
  VALUES (method, url, coalesce(headers, '{}'::jsonb), convert_to(body::text, 'UTF8'), timeout_milliseconds)
  RETURNING id INTO request_id;
  RETURN request_id;
END
$$;

CREATE FUNCTION net.http_get(url text, params jsonb DEFAULT '{}'::jsonb, headers jsonb DEFAULT '{}'::jsonb,
                             timeout_milliseconds integer DEFAULT 5000)
RETURNS bigint LANGUAGE sql AS $$ SELECT net._stub_enqueue('GET', url, headers, NULL, timeout_milliseconds) $$;

CREATE FUNCTION net.http_post(url text, body jsonb DEFAULT '{}'::jsonb, params jsonb DEFAULT '{}'::jsonb,
                              headers jsonb DEFAULT '{"Content-Type": "application/json"}'::jsonb,
                              timeout_milliseconds integer DEFAULT 5000)
RETURNS bigint LANGUAGE sql AS $$ SELECT net._stub_enqueue('POST', url, headers, body, timeout_milliseconds) $$;

CREATE FUNCTION net.http_delete(url text, params jsonb DEFAULT '{}'::jsonb, headers jsonb DEFAULT '{}'::jsonb,
                                timeout_milliseconds integer DEFAULT 5000, body jsonb DEFAULT NULL::jsonb)
RETURNS bigint LANGUAGE sql AS $$ SELECT net._stub_enqueue('DELETE', url, headers, body, timeout_milliseconds) $$;

CREATE FUNCTION net.http_collect_response(request_id bigint, async boolean DEFAULT true)
RETURNS net.http_response_result LANGUAGE sql AS $$
  SELECT ('PENDING', 'pgrollout STUB pg_net: nothing is sent, no response will come', NULL)::net.http_response_result
$$;

-- as Supabase grants pg_net (extensions.grant_pg_net_access)
GRANT USAGE ON SCHEMA net TO PUBLIC;
REVOKE ALL ON FUNCTION net.http_get(text, jsonb, jsonb, integer),
  net.http_post(text, jsonb, jsonb, jsonb, integer),
  net.http_delete(text, jsonb, jsonb, integer, jsonb) FROM PUBLIC;
DO $$
DECLARE
  api_role text;
BEGIN
  FOREACH api_role IN ARRAY ARRAY['anon', 'authenticated', 'service_role'] LOOP
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = api_role) THEN
      EXECUTE format('GRANT EXECUTE ON FUNCTION net.http_get(text, jsonb, jsonb, integer), '
                     'net.http_post(text, jsonb, jsonb, jsonb, integer), '
                     'net.http_delete(text, jsonb, jsonb, integer, jsonb) TO %I', api_role);
    END IF;
  END LOOP;
END
$$;
