-- The registry's revision: bumped by every write, in the writing transaction
-- (the row lock also serializes writers across gateways). `instance` is random
-- at creation, so that a node notices a different database (a restored
-- backup) even when the revision happens to match.
CREATE TABLE corsgate_registry_meta (
  id       smallint PRIMARY KEY CHECK (id = 1),
  instance text     NOT NULL,
  revision bigint   NOT NULL
);

CREATE TABLE corsgate_clients (
  id              text        PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 255),
  name            text        NOT NULL DEFAULT '',
  -- A JSON array of strings, validated on every write path.
  allowed_origins jsonb       NOT NULL,
  -- The registry revision of the client's last change (its ETag).
  revision        bigint      NOT NULL,
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now()
);

-- Every change of the revision notifies the gateways listening, when its
-- transaction commits (NOTIFY is transactional): corsgate's writes, and a
-- change made by hand that bumps the revision as corsgate's writes do. The
-- payload is only a hint; a gateway always reads the registry again.
CREATE FUNCTION corsgate_registry_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('corsgate_registry', NEW.revision::text);
  RETURN NULL;
END
$$;

CREATE TRIGGER corsgate_registry_changed
  AFTER INSERT OR UPDATE ON corsgate_registry_meta
  FOR EACH ROW EXECUTE FUNCTION corsgate_registry_notify();
