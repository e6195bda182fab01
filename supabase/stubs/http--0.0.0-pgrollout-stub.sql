-- pgrollout STUB of http (pgsql-http): its types and request functions,
-- shaped as pgsql-http declares them, in the schema the extension is created
-- in (Supabase: extensions). Nothing is sent: every call returns status 0 and
-- says so in its content and in a NOTICE.
CREATE DOMAIN http_method AS text;
CREATE TYPE http_header AS (field varchar, value varchar);
CREATE TYPE http_request AS (method http_method, uri varchar, headers http_header[], content_type varchar,
                             content varchar);
CREATE TYPE http_response AS (status integer, content_type varchar, headers http_header[], content varchar);

CREATE FUNCTION http_header(field varchar, value varchar) RETURNS http_header
LANGUAGE sql IMMUTABLE AS $$ SELECT ROW(field, value)::@extschema@.http_header $$;

CREATE FUNCTION http(request http_request) RETURNS http_response
LANGUAGE plpgsql AS $$
BEGIN
  RAISE NOTICE 'pgrollout STUB http: % % not sent', request.method, request.uri;
  RETURN ROW(0, 'text/plain', ARRAY[]::@extschema@.http_header[],
             'pgrollout STUB http: nothing was sent')::@extschema@.http_response;
END
$$;

CREATE FUNCTION http_get(uri varchar) RETURNS http_response
LANGUAGE sql AS $$ SELECT @extschema@.http(ROW('GET', uri, NULL, NULL, NULL)::@extschema@.http_request) $$;
CREATE FUNCTION http_get(uri varchar, data jsonb) RETURNS http_response
LANGUAGE sql AS $$ SELECT @extschema@.http(ROW('GET', uri, NULL, NULL, NULL)::@extschema@.http_request) $$;
CREATE FUNCTION http_post(uri varchar, content varchar, content_type varchar) RETURNS http_response
LANGUAGE sql AS $$ SELECT @extschema@.http(ROW('POST', uri, NULL, content_type, content)::@extschema@.http_request) $$;
CREATE FUNCTION http_post(uri varchar, data jsonb) RETURNS http_response
LANGUAGE sql AS $$ SELECT @extschema@.http(ROW('POST', uri, NULL, 'application/json', data::text)::@extschema@.http_request) $$;
CREATE FUNCTION http_put(uri varchar, content varchar, content_type varchar) RETURNS http_response
LANGUAGE sql AS $$ SELECT @extschema@.http(ROW('PUT', uri, NULL, content_type, content)::@extschema@.http_request) $$;
CREATE FUNCTION http_patch(uri varchar, content varchar, content_type varchar) RETURNS http_response
LANGUAGE sql AS $$ SELECT @extschema@.http(ROW('PATCH', uri, NULL, content_type, content)::@extschema@.http_request) $$;
CREATE FUNCTION http_delete(uri varchar) RETURNS http_response
LANGUAGE sql AS $$ SELECT @extschema@.http(ROW('DELETE', uri, NULL, NULL, NULL)::@extschema@.http_request) $$;
CREATE FUNCTION http_delete(uri varchar, content varchar, content_type varchar) RETURNS http_response
LANGUAGE sql AS $$ SELECT @extschema@.http(ROW('DELETE', uri, NULL, content_type, content)::@extschema@.http_request) $$;
CREATE FUNCTION http_head(uri varchar) RETURNS http_response
LANGUAGE sql AS $$ SELECT @extschema@.http(ROW('HEAD', uri, NULL, NULL, NULL)::@extschema@.http_request) $$;
CREATE FUNCTION urlencode(string varchar) RETURNS text
LANGUAGE sql IMMUTABLE STRICT AS $$
  SELECT string_agg(CASE WHEN ch ~ '[A-Za-z0-9._~-]' THEN ch
                         ELSE upper(regexp_replace(encode(convert_to(ch, 'UTF8'), 'hex'), '(..)', '%\1', 'g')) END,
                    '' ORDER BY n)
  FROM regexp_split_to_table(string, '') WITH ORDINALITY AS t(ch, n)
$$;
CREATE FUNCTION urlencode(data jsonb) RETURNS text
LANGUAGE sql IMMUTABLE STRICT AS $$
  SELECT string_agg(@extschema@.urlencode(key) || '=' || @extschema@.urlencode(value), '&' ORDER BY key)
  FROM jsonb_each_text(data)
$$;
