/**
 * Versioned schema migrations, applied in order inside one transaction each; the applied
 * version is kept in `PRAGMA user_version`. Never edit a released migration: add one.
 */
export const MIGRATIONS: ReadonlyArray<{ version: number, name: string, sql: string }> = [
  {
    version: 1,
    name: 'events',
    sql: `
CREATE TABLE events (
  rowid     INTEGER PRIMARY KEY,
  id        TEXT NOT NULL UNIQUE,      -- event.id: replays hit this and are ignored
  ts        INTEGER NOT NULL,          -- @timestamp in microseconds since the epoch
  dataset   TEXT NOT NULL,
  code      TEXT,
  action    TEXT,
  level     TEXT,
  logger    TEXT,
  host      TEXT,
  status    TEXT NOT NULL,
  mac       TEXT,
  hwaddr    TEXT,
  client_id TEXT,
  duid      TEXT,
  client_ip TEXT,
  subnet_id INTEGER,
  source_id TEXT,
  message   TEXT NOT NULL,
  doc       TEXT NOT NULL              -- the whole event as JSON
);
CREATE INDEX events_ts        ON events (ts, id);
CREATE INDEX events_code      ON events (code, ts);
CREATE INDEX events_action    ON events (action, ts) WHERE action IS NOT NULL;
CREATE INDEX events_level     ON events (level, ts);
CREATE INDEX events_logger    ON events (logger, ts);
CREATE INDEX events_host      ON events (host, ts);
CREATE INDEX events_mac       ON events (mac, ts) WHERE mac IS NOT NULL;
CREATE INDEX events_hwaddr    ON events (hwaddr, ts) WHERE hwaddr IS NOT NULL;
CREATE INDEX events_client_id ON events (client_id, ts) WHERE client_id IS NOT NULL;
CREATE INDEX events_duid      ON events (duid, ts) WHERE duid IS NOT NULL;

-- related.ip is multi-valued (client.ip is always one of them).
CREATE TABLE event_ips (
  ip    TEXT NOT NULL,
  ts    INTEGER NOT NULL,
  event INTEGER NOT NULL,
  PRIMARY KEY (ip, ts, event)
) WITHOUT ROWID;
CREATE INDEX event_ips_event ON event_ips (event);

-- Rows are added to events_fts by the store itself, in the same transaction: an AFTER INSERT
-- trigger made inserts 2.3x slower (bench/store). Deletes (retention) use the trigger.
CREATE VIRTUAL TABLE events_fts USING fts5 (message, content = 'events', content_rowid = 'rowid');
CREATE TRIGGER events_ad AFTER DELETE ON events BEGIN
  INSERT INTO events_fts (events_fts, rowid, message) VALUES ('delete', old.rowid, old.message);
  DELETE FROM event_ips WHERE event = old.rowid;
END;
`
  }
]
