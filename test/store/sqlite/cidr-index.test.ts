import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parseAddressOrPrefix } from '../../../src/leases/address.js'
import type { KeaEvent } from '../../../src/parse/event.js'
import { parseQuery, type QueryNode } from '../../../src/query/parse.js'
import { toSql } from '../../../src/query/translate.js'
import { MIGRATIONS } from '../../../src/store/sqlite/migrations.js'
import { SqliteRowStore as SqliteStore } from '../../../src/store/sqlite/row-store.js'
import { parseBuffer, readFixture } from '../../helpers/fixtures.js'

// The row layout (store.layout: rows). Issue 17: ip:<cidr> used to call a JavaScript function on every row of event_ips (7.1 s for
// 20 clauses on 200k events, the whole process frozen). It is now a range of an index of the
// addresses' fixed-width hex forms; the answers must be the ones the old scan gave.

const dir = mkdtempSync(join(tmpdir(), 'kt-cidr-'))
afterAll(() => { rmSync(dir, { recursive: true, force: true }) })

const CIDRS = [
  'ip:192.0.2.0/24', 'ip:192.0.2.0/28', 'ip:192.0.0.0/8', 'ip:0.0.0.0/0', 'ip:2001:db8::/32', 'ip:2001:db8:8000::/52', 'ip:::/0',
  'client.ip:192.0.2.0/24', 'client.ip:2001:db8:1::/64', 'NOT ip:192.0.2.0/28', 'client.ip:192.0.2.0/28 OR ip:2001:db8:1::/48',
  'NOT client.ip:192.0.2.0/24'
]

/** What the old full scan answered: the addresses' ranges compared event by event. */
function inRange (ip: string | undefined, cidr: string): boolean {
  if (ip === undefined) return false
  const r = parseAddressOrPrefix(cidr)
  const a = parseAddressOrPrefix(ip).lo
  return a >= r.lo && a <= r.hi
}
function evaluate (n: QueryNode, e: KeaEvent): boolean {
  switch (n.type) {
    case 'or': return n.children.some((c) => evaluate(c, e))
    case 'and': return n.children.every((c) => evaluate(c, e))
    case 'not': return !evaluate(n.child, e)
    case 'cidr': return n.field === 'client.ip' ? inRange(e.client?.ip, n.value) : (e.related?.ip ?? []).some((ip) => inRange(ip, n.value))
    default: throw new Error(`not a CIDR query: ${n.type}`)
  }
}

async function fixtureEvents (): Promise<KeaEvent[]> {
  const out: KeaEvent[] = []
  for (const [file, host] of [['kea-2.2.0-dhcp4-INFO-full.log', 'kea-a'], ['kea-2.2.0-dhcp6-INFO-full.log', 'kea-a'], ['captured/kea-dhcp6-INFO-file.log', 'kea-b']] as const) {
    out.push(...(await parseBuffer(readFixture(file), { host, path: file })).events)
  }
  return out.map((e) => JSON.parse(JSON.stringify(e)) as KeaEvent)
}

async function allIds (store: SqliteStore, where: QueryNode): Promise<string[]> {
  const out: string[] = []
  let cursor: string | undefined
  for (let i = 0; i < 100; i++) {
    const page = await store.search({ where, sort: 'asc', size: 1000, ...(cursor === undefined ? {} : { cursor }) })
    out.push(...page.events.map((e) => e.event.id))
    cursor = page.cursor
    if (cursor === undefined) break
  }
  return out.sort()
}

describe('sqlite ip:<cidr> from event_ips keyed by hex', () => {
  let events: KeaEvent[] = []
  const path = join(dir, 'k.db')
  beforeAll(async () => {
    events = await fixtureEvents()
    const store = new SqliteStore({ path })
    await store.write(events)
    await store.close()
  })

  it('plans every CIDR leaf as a search of the primary key, without calling keatrail_ip_hex', () => {
    const db = new Database(path, { readonly: true })
    try {
      for (const q of CIDRS) {
        const w = toSql(parseQuery(q) as QueryNode)
        expect(w.sql, q).not.toMatch(/keatrail_ip_hex/)
        const plan = (db.prepare(`EXPLAIN QUERY PLAN SELECT rowid FROM events WHERE ${w.sql}`).all(...w.params) as Array<{ detail: string }>).map((r) => r.detail)
        expect(plan.join('\n'), q).toMatch(/SEARCH event_ips USING PRIMARY KEY \(hex>\? AND hex<\?\)/)
        expect(plan.join('\n'), q).not.toMatch(/SCAN event_ips/)
      }
    } finally {
      db.close()
    }
  })

  it('answers addresses (query terms and ip filters) by the hex key too, whatever their spelling', async () => {
    const store = new SqliteStore({ path })
    try {
      const want = events.filter((e) => (e.related?.ip ?? []).includes('2001:db8:1::100')).map((e) => e.event.id).sort()
      expect(want.length).toBeGreaterThan(0)
      expect(await allIds(store, parseQuery('ip:2001:DB8:1:0::100') as QueryNode)).toEqual(want)
      expect(await store.count({ filters: { ip: ['2001:db8:1::100'] } })).toBe(want.length)
      expect(await store.count({ filters: { ip: ['not an address'] } })).toBe(0)
      const top = await store.top('ip', {}, 3)
      expect(top[0]?.value).toMatch(/^[0-9a-f.:]+$/)
    } finally {
      await store.close()
    }
  })

  it('answers what the full scan answered, for related.ip and client.ip, IPv4 and IPv6, with NOT', async () => {
    const store = new SqliteStore({ path })
    try {
      for (const q of CIDRS) {
        const where = parseQuery(q) as QueryNode
        const want = events.filter((e) => evaluate(where, e)).map((e) => e.event.id).sort()
        expect(await allIds(store, where), q).toEqual(want)
        expect(await store.count({ where }), q).toBe(want.length)
      }
      // The fixtures hold hits on both sides of each range.
      expect(events.filter((e) => evaluate(parseQuery('ip:192.0.2.0/28') as QueryNode, e)).length).toBeGreaterThan(0)
      expect(events.filter((e) => evaluate(parseQuery('client.ip:2001:db8:1::/64') as QueryNode, e)).length).toBeGreaterThan(0)
    } finally {
      await store.close()
    }
  })

  it('a database from before schema 9 gets event_ips keyed by the hex of every stored address, and client_hex', async () => {
    const old = join(dir, 'old.db')
    const writer = new SqliteStore({ path: old })
    await writer.write(events)
    await writer.close()
    // Back to schema 8: as an older keatrail left the file (event_ips keyed by the text, no block tables).
    const db = new Database(old)
    db.exec(`DROP TRIGGER events_ad;
      CREATE TABLE v8 (ip TEXT NOT NULL, ts INTEGER NOT NULL, event INTEGER NOT NULL, PRIMARY KEY (ip, ts, event)) WITHOUT ROWID;
      INSERT INTO v8 SELECT ip, ts, event FROM event_ips;
      DROP TABLE event_ips;
      ALTER TABLE v8 RENAME TO event_ips;
      CREATE INDEX event_ips_event ON event_ips (event);
      CREATE TRIGGER events_ad AFTER DELETE ON events BEGIN
        DELETE FROM events_fts WHERE rowid = old.rowid;
        DELETE FROM event_ips WHERE event = old.rowid;
      END;
      ALTER TABLE events DROP COLUMN client_hex;
      DROP TABLE blocks; DROP TABLE block_postings; DROP TABLE block_ids; DROP TABLE parse_contexts; DROP TABLE chain_runs; DROP TABLE chain; DROP TABLE chain_dropped; DELETE FROM meta WHERE key IN ('block_seq', 'chain_base')`)
    db.pragma(`user_version = ${(MIGRATIONS.find((m) => m.name === 'addresses as comparable hex')?.version ?? 0) - 1}`)
    db.close()
    const store = new SqliteStore({ path: old })
    try {
      for (const q of CIDRS) {
        const where = parseQuery(q) as QueryNode
        expect(await allIds(store, where), q).toEqual(events.filter((e) => evaluate(where, e)).map((e) => e.event.id).sort())
      }
    } finally {
      await store.close()
    }
    const check = new Database(old, { readonly: true })
    try {
      expect(check.prepare('SELECT count(*) AS n FROM event_ips WHERE hex NOT LIKE \'4:%\' AND hex NOT LIKE \'6:%\'').get()).toEqual({ n: 0 })
      expect(check.prepare('SELECT count(*) AS n FROM event_ips').get()).toEqual({ n: events.reduce((n, e) => n + (e.related?.ip?.length ?? 0), 0) })
      expect(check.prepare('SELECT count(*) AS n FROM events WHERE client_ip IS NOT NULL AND client_hex IS NULL').get()).toEqual({ n: 0 })
    } finally {
      check.close()
    }
  })
})
