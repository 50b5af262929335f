import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { beforeAll, describe, expect, it } from 'vitest'
import type { KeaEvent } from '../../src/parse/event.js'
import { parseQuery } from '../../src/query/parse.js'
import { MIGRATIONS } from '../../src/store/sqlite/migrations.js'
import { SqliteStore } from '../../src/store/sqlite/store.js'
import { SqliteRowStore } from '../../src/store/sqlite/row-store.js'
import { migrateRowsToBlocks } from '../../src/store/sqlite/migrate-layout.js'
import { isoToMicros } from '../../src/store/time.js'
import { runCli } from '../helpers/cli.js'
import { KEA_FIXTURES } from '../helpers/fixtures.js'

// keatrail lease at / history / import-csv on the captured real Kea logs and lease files.

describe('keatrail lease', () => {
  const data = mkdtempSync(join(tmpdir(), 'kt-lease-cli-'))
  beforeAll(async () => {
    const r = await runCli(['import', '--data-dir', data, '--tz', 'UTC', '--host', 'kea-b',
      join(KEA_FIXTURES, 'captured', 'kea-dhcp4-INFO-file.log'), join(KEA_FIXTURES, 'captured', 'kea-dhcp6-INFO-file.log')])
    expect(r.code).toBe(0)
  })

  it('at: one JSON object with the holder, its interval, certainty and evidence', async () => {
    const r = await runCli(['lease', 'at', '--data-dir', data, '--json', '192.0.2.10', '2026-11-24T18:02:30.000Z'])
    expect(r.code).toBe(0)
    const a = JSON.parse(r.out) as { address: string, time: string, covered: boolean, holders: Array<Record<string, unknown>> }
    expect(a).toMatchObject({ address: '192.0.2.10', time: '2026-11-24T18:02:30.000Z', covered: true })
    expect(a.holders).toHaveLength(1)
    expect(a.holders[0]).toMatchObject({ mac: expect.stringMatching(/^([0-9A-F]{2}-){5}[0-9A-F]{2}$/), end_reason: expect.any(String), certainty: expect.any(String) })
    expect((a.holders[0]?.evidence as string[]).length).toBeGreaterThan(0)
  })

  it('at: a time in another offset is the same instant; text output shows the evidence lines', async () => {
    const utc = await runCli(['lease', 'at', '--data-dir', data, '--json', '192.0.2.10', '2026-11-24T18:02:30Z'])
    const berlin = await runCli(['lease', 'at', '--data-dir', data, '--json', '192.0.2.10', '2026-11-24T19:02:30+01:00'])
    expect(berlin.out).toBe(utc.out)
    const text = await runCli(['lease', 'at', '--data-dir', data, '192.0.2.10', '2026-11-24T18:02:30Z', '--tz', 'Europe/Berlin'])
    expect(text.out).toMatch(/\| 2026-11-24 18:02:\d\d\.\d{3} INFO {2}\[kea-dhcp4\.leases/)
    expect(text.out).toContain('Europe/Berlin')
  })

  it('history: every lease of a DUID, addresses and prefixes, in time order; bad input is a usage error', async () => {
    const r = await runCli(['lease', 'history', '--data-dir', data, '--json', '--duid', '00-03-00-01-02-00-00-00-06-0A'])
    const { intervals } = JSON.parse(r.out) as { intervals: Array<{ start: string, address?: string, prefix?: string }> }
    expect(intervals.some((i) => i.address !== undefined) && intervals.some((i) => i.prefix !== undefined)).toBe(true)
    expect(intervals.map((i) => i.start)).toEqual([...intervals.map((i) => i.start)].sort())
    const bad = await runCli(['lease', 'history', '--data-dir', data, '--mac', 'nonsense'])
    expect(bad.code).toBe(2)
    expect(bad.err).toContain('KEATRAIL_ERR_USAGE')
    const badTime = await runCli(['lease', 'at', '--data-dir', data, '192.0.2.10', 'yesterday'])
    expect(badTime.err).toMatch(/RFC 3339/)
  })

  it('import-csv: Kea\'s lease file confirms what the logs show and adds only what they do not', async () => {
    const r = await runCli(['lease', 'import-csv', '--data-dir', data, join(KEA_FIXTURES, 'captured', 'kea-dhcp4-INFO-leases.csv')])
    expect(r.code).toBe(0)
    const m = /(\d+) new intervals from Kea's lease state, (\d+) already shown by the logs \(scope "kea-b"\)/.exec(r.err)
    expect(m, r.err).not.toBeNull()
    expect(Number(m?.[2])).toBeGreaterThan(Number(m?.[1]))
    const again = await runCli(['lease', 'import-csv', '--data-dir', data, join(KEA_FIXTURES, 'captured', 'kea-dhcp4-INFO-leases.csv')])
    expect(again.err).toMatch(/ 0 new intervals/)
  })
})

describe('sqlite schema 1 → current', () => {
  it('derives lease history from the events already stored when an old database is opened, and converts into the block layout with the same answers', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kt-mig-'))
    const { parseBuffer, readFixture } = await import('../helpers/fixtures.js')
    const { events } = await parseBuffer(readFixture('captured/kea-dhcp6-INFO-file.log'), { host: 'h' })
    const fresh = new SqliteStore({ path: join(dir, 'fresh.db') })
    await fresh.write(events)
    const want = await fresh.leases.intervals({ duid: '00:03:00:01:02:00:00:00:06:0a' })
    await fresh.close()
    // The file schema 1 wrote: its tables, and each event's JSON document in its row.
    const path = join(dir, 'keatrail.db')
    const db = new Database(path)
    db.exec((MIGRATIONS[0] as { sql: string }).sql)
    db.pragma('user_version = 1')
    const insert = db.prepare(`INSERT INTO events (id, ts, dataset, code, action, level, logger, host, status, mac, hwaddr, client_id, duid, client_ip, subnet_id, source_id, message, doc)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
    for (const e of events) {
      insert.run(e.event.id, isoToMicros(e['@timestamp']), e.event.dataset, e.event.code ?? null, e.event.action ?? null, e.log.level ?? null,
        e.log.logger ?? null, e.host?.name ?? null, e.kea.parse.status, e.client?.mac ?? null, e.kea.hwaddr ?? null, e.kea.client_id ?? null,
        e.kea.duid ?? null, e.client?.ip ?? null, e.kea.subnet_id ?? null, e.kea.source_id ?? null, e.message, JSON.stringify(e))
    }
    db.close()
    // The block layout refuses the file (one coded error, never an empty store); the row layout
    // upgrades its schema and derives its lease history; store migrate then converts it.
    expect(() => new SqliteStore({ path })).toThrow(expect.objectContaining({ code: 'KEATRAIL_ERR_STORE_LAYOUT' }))
    for (const layout of ['rows', 'blocks'] as const) {
      if (layout === 'blocks') expect(await migrateRowsToBlocks(path)).toBe(events.length)
      const upgraded = layout === 'rows' ? new SqliteRowStore({ path }) : new SqliteStore({ path })
      expect(want.length).toBeGreaterThan(1)
      expect(await upgraded.leases.intervals({ duid: '00:03:00:01:02:00:00:00:06:0a' })).toEqual(want)
      expect(await upgraded.leases.coverage('h')).toBeDefined()
      // Rows from before the document blocks still read back whole, and answer the columns added later.
      const first = events[0] as KeaEvent
      expect(await upgraded.get(first.event.id)).toEqual(first)
      const withTid = events.find((e) => e.kea.transaction_id !== undefined) as KeaEvent
      const page = await upgraded.search({ where: parseQuery(`tid:${withTid.kea.transaction_id ?? ''}`), size: 1000 })
      expect(page.events.map((e) => e.event.id)).toContain(withTid.event.id)
      // The full-text index was rebuilt from the old rows' text (schema 7).
      const words = await upgraded.search({ text: first.event.code ?? 'missing', size: 1000 })
      expect(words.events.map((e) => e.event.id)).toContain(first.event.id)
      await upgraded.close()
    }
  })
})
