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
  },
  {
    version: 2,
    name: 'lease history',
    sql: `
-- Lease-shaping events reduced to what derivation needs; replays hit the primary key.
CREATE TABLE lease_obs (
  event_id TEXT PRIMARY KEY,
  key      TEXT NOT NULL,              -- scope|type|address or prefix
  ts       INTEGER NOT NULL,           -- epoch ms
  seq      TEXT NOT NULL,              -- source + zero-padded offset: orders equal ts
  doc      TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX lease_obs_key ON lease_obs (key, ts, seq);

-- Derived intervals (origin 'log') and intervals from Kea's own lease state ('kea-state').
-- lo/hi: fixed-width hex of the address or prefix range (src/leases/address.ts).
CREATE TABLE lease_intervals (
  id        TEXT PRIMARY KEY,
  key       TEXT NOT NULL,
  origin    TEXT NOT NULL,
  scope     TEXT NOT NULL,
  type      TEXT NOT NULL,
  lo        TEXT NOT NULL,
  hi        TEXT NOT NULL,
  start     INTEGER,                   -- epoch ms; NULL: began before collection
  start_seq TEXT,
  pos_ts    INTEGER NOT NULL,          -- the first observation's (ts, seq): derivation order
  pos_seq   TEXT NOT NULL,
  end       INTEGER,                   -- epoch ms; NULL: unknown lifetime, still open
  hwaddr    TEXT,
  client_id TEXT,
  duid      TEXT,
  duid_ll   TEXT,
  hostname  TEXT,
  doc       TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX lease_intervals_key      ON lease_intervals (key, origin, start);
CREATE INDEX lease_intervals_pos      ON lease_intervals (key, origin, pos_ts, pos_seq);
CREATE INDEX lease_intervals_lo       ON lease_intervals (lo, start);
CREATE INDEX lease_intervals_hwaddr   ON lease_intervals (hwaddr, start) WHERE hwaddr IS NOT NULL;
CREATE INDEX lease_intervals_clientid ON lease_intervals (client_id, start) WHERE client_id IS NOT NULL;
CREATE INDEX lease_intervals_duid     ON lease_intervals (duid, start) WHERE duid IS NOT NULL;
CREATE INDEX lease_intervals_duid_ll  ON lease_intervals (duid_ll, start) WHERE duid_ll IS NOT NULL;
CREATE INDEX lease_intervals_hostname ON lease_intervals (hostname, start) WHERE hostname IS NOT NULL;

-- What keatrail has collected, per scope (host.name): "nobody held it" is only said inside.
CREATE TABLE coverage (
  scope TEXT PRIMARY KEY,
  first INTEGER NOT NULL,
  last  INTEGER NOT NULL
) WITHOUT ROWID;
`
  },
  {
    version: 3,
    name: 'kea snapshots',
    sql: `
-- One row per server, service and time bucket (a second poll in the bucket replaces it).
CREATE TABLE snapshots (
  id      TEXT PRIMARY KEY,
  server  TEXT NOT NULL,
  service TEXT NOT NULL,
  ts      INTEGER NOT NULL,            -- epoch ms
  state   TEXT NOT NULL,
  doc     TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX snapshots_server ON snapshots (server, service, ts);
CREATE INDEX snapshots_ts     ON snapshots (ts);
`
  },
  {
    version: 4,
    name: 'full text: underscores join words',
    sql: `
-- Elasticsearch's standard tokenizer keeps DHCP4_LEASE_ALLOC or $lease4_add one word; FTS5's
-- unicode61 split them, so the two stores answered the same words differently.
DROP TABLE events_fts;
CREATE VIRTUAL TABLE events_fts USING fts5 (message, content = 'events', content_rowid = 'rowid', tokenize = "unicode61 tokenchars '_'");
INSERT INTO events_fts (events_fts) VALUES ('rebuild');
`
  },
  {
    version: 5,
    name: 'collection gaps',
    sql: `
-- Time ranges in which input was lost (UDP datagrams dropped with the spill queue full).
CREATE TABLE gaps (
  scope   TEXT NOT NULL,               -- host.name, or '*' for every server
  from_ts INTEGER NOT NULL,
  to_ts   INTEGER NOT NULL,
  reason  TEXT NOT NULL
);
CREATE INDEX gaps_time ON gaps (from_ts, to_ts);
`
  },
  {
    version: 6,
    name: 'event documents in deflated blocks',
    sql: `
-- events.doc held each event's JSON (~1 KB, 40 % of the file); new rows leave it '' and their
-- documents live here, deflated in blocks of consecutive rowids (src/store/sqlite/doc-blocks.ts).
-- Rows written before this version keep their doc.
CREATE TABLE event_docs (
  first INTEGER PRIMARY KEY,           -- rowid of the block's first event
  n     INTEGER NOT NULL,              -- its events are rowids first .. first + n - 1
  dict  INTEGER NOT NULL,              -- preset dictionary version
  data  BLOB NOT NULL                  -- raw deflate of the documents joined by newlines
);
-- What queries read from the JSON document before (SQL cannot inflate a block mid-query).
ALTER TABLE events ADD COLUMN kind TEXT;
ALTER TABLE events ADD COLUMN tid TEXT;
ALTER TABLE events ADD COLUMN hostname TEXT;
ALTER TABLE events ADD COLUMN iaid INTEGER;
UPDATE events SET kind = json_extract(doc, '$.event.kind'), tid = json_extract(doc, '$.kea.transaction_id'),
  hostname = json_extract(doc, '$.kea.hostname'), iaid = json_extract(doc, '$.kea.iaid');
`
  },
  {
    version: 7,
    name: 'contentless full text',
    sql: `
-- The full-text index kept events.message as its external content (~140 bytes per event, the
-- text is also in the event's document). Contentless with deletes, it needs nothing but its
-- index: new rows leave message ''. Rebuilt here from the rows that have it.
DROP TRIGGER events_ad;
DROP TABLE events_fts;
CREATE VIRTUAL TABLE events_fts USING fts5 (message, content = '', contentless_delete = 1, tokenize = "unicode61 tokenchars '_'");
INSERT INTO events_fts (rowid, message) SELECT rowid, message FROM events;
CREATE TRIGGER events_ad AFTER DELETE ON events BEGIN
  DELETE FROM events_fts WHERE rowid = old.rowid;
  DELETE FROM event_ips WHERE event = old.rowid;
END;
`
  },
  {
    version: 8,
    name: 'lease derivation after the events',
    sql: `
-- Lease intervals are derived in transactions of their own, after the events' (SqliteLeases):
-- leases_through is the greatest event rowid whose observations are derived. Until now every
-- write derived its own, so all stored events are.
CREATE TABLE meta (
  key   TEXT PRIMARY KEY,
  value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO meta (key, value) VALUES ('leases_through', (SELECT coalesce(max(rowid), 0) FROM events));
`
  },
  {
    version: 9,
    name: 'addresses as comparable hex',
    sql: `
-- ip:<cidr> compared keatrail_ip_hex(ip) (a JavaScript function) on every row of event_ips:
-- 7.1 s for a 20-clause CIDR query on 200k events, the process frozen meanwhile (issue 17).
-- event_ips is now keyed by each address's fixed-width hex form (src/leases/address.ts),
-- written by the store with the row: a range is BETWEEN lo AND hi on the primary key, an
-- address an equality. Keyed by hex instead of a second index beside the text key: the same
-- bytes written per event as before (a second index wrote +1.7 KiB per event, bench/sqlite).
-- Text that is no address (none is stored) keeps 'x:' + itself: outside every range.
DROP TRIGGER events_ad;
CREATE TABLE event_ips_by_hex (
  hex   TEXT NOT NULL,
  ts    INTEGER NOT NULL,
  event INTEGER NOT NULL,
  ip    TEXT NOT NULL,                 -- as Kea printed it (top values answer this)
  PRIMARY KEY (hex, ts, event)
) WITHOUT ROWID;
INSERT OR IGNORE INTO event_ips_by_hex (hex, ts, event, ip) SELECT coalesce(keatrail_ip_hex(ip), 'x:' || ip), ts, event, ip FROM event_ips;
DROP TABLE event_ips;
ALTER TABLE event_ips_by_hex RENAME TO event_ips;
CREATE INDEX event_ips_event ON event_ips (event);
CREATE TRIGGER events_ad AFTER DELETE ON events BEGIN
  DELETE FROM events_fts WHERE rowid = old.rowid;
  DELETE FROM event_ips WHERE event = old.rowid;
END;
-- client.ip is one of related.ip: a CIDR on it takes candidates from event_ips and checks this
-- column of the candidate rows (no index of its own: no extra write per event).
ALTER TABLE events ADD COLUMN client_hex TEXT;
UPDATE events SET client_hex = keatrail_ip_hex(client_ip) WHERE client_ip IS NOT NULL;
`
  },
  {
    version: 10,
    name: 'lease history: one row per interval, not per event',
    sql: `
-- Lease history cost ~540 bytes and ~20 CPU-µs per lease-shaping event: a lease_obs row each
-- (a JSON document and two B-tree entries) and several reads per key per flush. Now one row per
-- derived interval holds the observations it was derived from, delta-encoded (~9 bytes per
-- renewal, src/store/sqlite/lease-codec.ts); a key's address and scope live once, in lease_keys.
-- Indexes hold what queries select by and never the end: extending an interval touches no index.
-- IF NOT EXISTS: a file whose user_version was set back (tests do) may run this again.
CREATE TABLE IF NOT EXISTS lease_keys (
  kid   INTEGER PRIMARY KEY,
  key   TEXT NOT NULL UNIQUE,          -- scope|type|address or prefix
  scope TEXT NOT NULL,
  type  TEXT NOT NULL,
  lease TEXT NOT NULL,
  lo    TEXT NOT NULL,                 -- fixed-width hex of the range (src/leases/address.ts)
  hi    TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS lease_keys_lo ON lease_keys (lo, hi);
-- Intervals derived from logs (origin 'log'); lease_intervals keeps those from Kea's lease state.
CREATE TABLE IF NOT EXISTS lease_log (
  rowid     INTEGER PRIMARY KEY,
  kid       INTEGER NOT NULL,
  pos       INTEGER NOT NULL,          -- start, or end when the start was before collection
  start     INTEGER,                   -- epoch ms
  "end"     INTEGER,
  n         INTEGER NOT NULL,          -- observations of the interval (here and in lease_log_obs)
  hwaddr    TEXT,
  client_id TEXT,
  duid      TEXT,
  duid_ll   TEXT,
  hostname  TEXT,                      -- lowercased
  doc       TEXT NOT NULL,             -- the other fields, a JSON array (lease-codec.ts intervalDoc)
  obs       BLOB NOT NULL              -- its latest observations (at most 64), delta-encoded
);
CREATE INDEX IF NOT EXISTS lease_log_kid      ON lease_log (kid, pos);
CREATE INDEX IF NOT EXISTS lease_log_hwaddr   ON lease_log (hwaddr) WHERE hwaddr IS NOT NULL;
CREATE INDEX IF NOT EXISTS lease_log_clientid ON lease_log (client_id) WHERE client_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS lease_log_duid     ON lease_log (duid) WHERE duid IS NOT NULL;
CREATE INDEX IF NOT EXISTS lease_log_duid_ll  ON lease_log (duid_ll) WHERE duid_ll IS NOT NULL;
CREATE INDEX IF NOT EXISTS lease_log_hostname ON lease_log (hostname) WHERE hostname IS NOT NULL;
-- Older observations of long intervals, in sealed chunks of 64: a row stays small.
CREATE TABLE IF NOT EXISTS lease_log_obs (
  iv    INTEGER NOT NULL,              -- lease_log.rowid
  first INTEGER NOT NULL,              -- index of the chunk's first observation in the interval
  obs   BLOB NOT NULL,
  PRIMARY KEY (iv, first)
) WITHOUT ROWID;
-- Changed by every process deriving lease history: another value than its own tells one that
-- another process changed the history it keeps in memory.
INSERT OR IGNORE INTO meta (key, value) VALUES ('leases_gen', 0);
-- The lease_obs table of earlier versions stays until SqliteLeases opens the file: it moves
-- those observations and the log intervals derived from them into lease_log (JavaScript
-- decodes and encodes them), deletes the moved lease_intervals rows, and replaces the table by
-- the view LEASE_OBS_VIEW, in one transaction.
`
  },
  {
    version: 11,
    name: 'event blocks',
    sql: `
-- The block layout (src/store/sqlite/blocks/, issue 19): events in compressed blocks of up to
-- 4,096 of one source instead of a row each with ten indexes and full text (1.2 KB per event).
-- Columns in this order: pruning reads the summary, then the times, bloom or payload it needs;
-- SQLite reads a row's overflow pages only for the columns asked for.
CREATE TABLE blocks (
  id        INTEGER PRIMARY KEY,
  source_id TEXT NOT NULL,             -- kea.source_id of every event in the block
  min_ts    INTEGER NOT NULL,          -- µs
  max_ts    INTEGER NOT NULL,
  min_off   INTEGER,                   -- offsets of the events whose id is <source_id>-<hex offset>
  max_off   INTEGER,
  n         INTEGER NOT NULL,
  seq       INTEGER NOT NULL,          -- write sequence of the last batch stored in it (lease watermark)
  codec     INTEGER NOT NULL,          -- 1 deflate-raw, 2 zstd (src/store/sqlite/blocks/compress.ts)
  times     BLOB NOT NULL,             -- zigzag varint deltas of the events' µs times
  bloom     BLOB NOT NULL,             -- full-text token bloom (compressed while the block is small)
  payload   BLOB NOT NULL              -- the events (src/store/sqlite/blocks/codec.ts)
);
CREATE INDEX blocks_time   ON blocks (max_ts);
CREATE INDEX blocks_source ON blocks (source_id, max_off);
CREATE INDEX blocks_seq    ON blocks (seq);
-- Which blocks hold an identifier, deduplicated per block (src/store/sqlite/blocks/plan.ts), and
-- in which of its frames of 256 events (bit k: frame k): a query decompresses only those.
CREATE TABLE block_postings (
  term   TEXT NOT NULL,
  block  INTEGER NOT NULL,
  frames INTEGER NOT NULL,
  PRIMARY KEY (term, block)
) WITHOUT ROWID;
-- Events whose id does not name their offset (journal cursors): id → block.
CREATE TABLE block_ids (
  id    TEXT PRIMARY KEY,
  block INTEGER NOT NULL
) WITHOUT ROWID;
INSERT OR IGNORE INTO meta (key, value) VALUES ('block_seq', 0);
`
  },
  {
    version: 12,
    name: 'documents re-derived from raw records',
    sql: `
-- What a parser needs besides a raw record to make its event's document again (pattern, source
-- fields, parser version: src/parse/derivation.ts), once per distinct spec; a block's payload
-- names one per event whose document it does not store.
CREATE TABLE parse_contexts (
  id   INTEGER PRIMARY KEY,
  spec TEXT NOT NULL UNIQUE            -- JSON
);
-- The lowest parser version among a block's re-derived events (NULL: none): a block older than
-- the running parser is scanned, not pruned by postings its rules built.
ALTER TABLE blocks ADD COLUMN pv INTEGER;
`
  },
  {
    version: 13,
    name: 'packed lease identifiers',
    sql: `
-- No table changes: from here on lease_log stores colon-hex identifiers (hwaddr, client_id,
-- duid, duid_ll) as BLOBs of their bytes (src/store/sqlite/ident-blob.ts; rows written before
-- keep TEXT and are read as they are), and its observation bytes pack identifiers and source
-- ids (lease-codec.ts C_PACKED, X_SOURCE_PACKED). The version is what makes a keatrail of
-- schema 12 refuse the file (KEATRAIL_ERR_STORE_SCHEMA) instead of misreading those bytes.
SELECT 1;
`
  },
  {
    version: 14,
    name: 'block summaries indexed apart',
    sql: `
-- A block's row is ~4 KB in its table page (times, bloom and the start of the payload live
-- there), so reading the summaries of every block in a time range read one page per block:
-- 2,951 pages, 9 ms, for each query over a 10M-event file. The summaries in an index of their
-- own (~60 bytes a block) answer the same selects from ~45 pages.
CREATE INDEX blocks_summary ON blocks (max_ts, min_ts, source_id, n, codec, seq, pv, min_off, max_off);
`
  },
  {
    version: 15,
    name: 'block payload version 3',
    sql: `
-- Blocks written from now on keep each frame's line lengths in the frame and ids as offsets
-- (src/store/sqlite/blocks/codec.ts, payload version 3). No table changes: the version is what
-- makes a keatrail of schema 14, which cannot read those payloads, refuse the file
-- (KEATRAIL_ERR_STORE_SCHEMA) instead of failing its reads and storing replays again.
SELECT 1;
`
  },
  {
    version: 16,
    name: 'lease keys by server',
    sql: `
-- A lease wipe probes the keys of one server (src/store/sqlite/leases.ts, wipeObservations):
-- without this every wipe batch read every key of every server, and a flood of wipe lines
-- naming servers that do not exist cost a scan of all keys each.
CREATE INDEX IF NOT EXISTS lease_keys_scope ON lease_keys (scope, type);
`
  },
  {
    version: 17,
    name: 'lease observations name their server',
    sql: `
-- In a lease domain (leases.domains) each stored observation may name the server that logged it
-- (src/store/sqlite/lease-codec.ts, X_SERVER), and an interval's document the servers it holds.
-- No table changes: the version makes a keatrail of schema 16, which would misread those bytes,
-- refuse the file (KEATRAIL_ERR_STORE_SCHEMA).
SELECT 1;
`
  },
  {
    version: 18,
    name: 'tamper-evidence chain',
    sql: `
-- One link per write batch over the raw records it stored (src/store/sqlite/chain.ts): a report
-- names the newest link, and keatrail verify re-computes them all. Records stored before this
-- version are in no link (verify counts them).
CREATE TABLE chain (
  seq     INTEGER PRIMARY KEY,         -- the batch's write sequence (blocks.seq)
  time    INTEGER NOT NULL,            -- ms, when it was stored
  n       INTEGER NOT NULL,            -- records it stored
  dropped INTEGER NOT NULL DEFAULT 0,  -- of those, removed since by retention or store delete
  digest  BLOB NOT NULL,               -- SHA-256 over its records
  prev    BLOB NOT NULL,               -- the link before it (32 zero bytes for the first)
  link    BLOB NOT NULL                -- SHA-256 over prev, seq, n, time and digest
);
-- Where a batch's records are: positions pos … pos + n - 1 of a block, the batch's records
-- ord … ord + n - 1; tags: the first 4 bytes of each record's leaf (which record of a broken link
-- differs).
CREATE TABLE chain_runs (
  block INTEGER NOT NULL,
  pos   INTEGER NOT NULL,
  seq   INTEGER NOT NULL,
  ord   INTEGER NOT NULL,
  n     INTEGER NOT NULL,
  tags  BLOB NOT NULL,
  PRIMARY KEY (block, pos)
) WITHOUT ROWID;
CREATE INDEX chain_runs_seq ON chain_runs (seq, ord);
-- The leaves (SHA-256 of the framed record) of records removed since their batch was stored
-- (retention, store delete, a re-import that changed the text; NULL: a block dropped because it
-- could not be decoded): their links still re-compute from the kept records and these.
CREATE TABLE chain_dropped (
  seq  INTEGER NOT NULL,
  ord  INTEGER NOT NULL,
  leaf BLOB,
  PRIMARY KEY (seq, ord)
) WITHOUT ROWID;
-- Records stored before this version: in no link, and verify accepts no more than these.
INSERT OR REPLACE INTO meta (key, value) SELECT 'chain_base', coalesce(sum(n), 0) FROM blocks;
`
  }
]


/**
 * What lease_obs is from schema 10 on: one row per stored observation (its interval and place
 * in it), for tools that counted them; the observations themselves are in lease_log.
 */
export const LEASE_OBS_VIEW = `CREATE VIEW lease_obs (interval, idx) AS
  WITH RECURSIVE o (interval, idx, n) AS (
    SELECT rowid, 0, n FROM lease_log WHERE n > 0
    UNION ALL SELECT interval, idx + 1, n FROM o WHERE idx + 1 < n)
  SELECT interval, idx FROM o`
