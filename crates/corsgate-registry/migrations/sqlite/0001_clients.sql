-- The registry's revision: bumped by every write, in the writing transaction.
-- `instance` is random at creation, so that a node notices a different database
-- (a restored backup, a new file) even when the revision happens to match.
CREATE TABLE corsgate_registry_meta (
  id       INTEGER PRIMARY KEY CHECK (id = 1),
  instance TEXT    NOT NULL,
  revision INTEGER NOT NULL
);

CREATE TABLE corsgate_clients (
  id              TEXT    PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 255),
  name            TEXT    NOT NULL DEFAULT '',
  -- A JSON array of strings, validated on every write path.
  allowed_origins TEXT    NOT NULL,
  -- The registry revision of the client's last change (its ETag).
  revision        INTEGER NOT NULL,
  created_at      TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
  updated_at      TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
);
