import { spawnSync } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { beforeAll, describe, expect, it } from 'vitest'
import { observeAll } from '../../../src/leases/observe.js'
import type { LeaseInterval } from '../../../src/leases/types.js'
import type { KeaEvent } from '../../../src/parse/event.js'
import { packageRoot } from '../../../src/paths.js'
import { SqliteStore } from '../../../src/store/sqlite/store.js'
import { parseBuffer, readFixture } from '../../helpers/fixtures.js'
import { expectedIntervals, expectedObservations } from '../../helpers/lease-truth.js'
import { COUNT_STORED_SQL } from '../../helpers/stored.js'

// The SQLite store derives lease intervals after the events' own commit (SqliteLeases.flush):
// what a crash leaves underived must be derived when the file is opened again, and a writer
// that goes quiet must still derive within maxDelayMs for other processes to read.

async function realEvents (): Promise<KeaEvent[]> {
  const all: KeaEvent[] = []
  for (const [file, host] of [['kea-2.2.0-dhcp4-INFO-full.log', 'kea-a'], ['kea-2.2.0-dhcp6-INFO-full.log', 'kea-a'], ['captured/kea-dhcp4-INFO-file.log', 'kea-b']] as const) {
    all.push(...(await parseBuffer(readFixture(file), { host, path: `${host}/${file}` })).events)
  }
  return all
}

/** The lease watermark and the write sequence of the newest block (the block layout's watermark unit), from another connection. */
function raw (path: string): { through: number, newest: number, stored: number, observations: number } {
  const db = new Database(path, { readonly: true })
  try {
    return {
      through: (db.prepare('SELECT value FROM meta WHERE key = \'leases_through\'').get() as { value: number }).value,
      newest: db.prepare('SELECT value FROM meta WHERE key = \'block_seq\'').pluck().get() as number,
      stored: (db.prepare(COUNT_STORED_SQL).get() as { n: number }).n,
      observations: (db.prepare('SELECT count(*) AS n FROM lease_obs').get() as { n: number }).n
    }
  } finally {
    db.close()
  }
}

async function intervalsOf (store: SqliteStore, expected: Map<string, LeaseInterval[]>): Promise<Map<string, LeaseInterval[]>> {
  const got = new Map<string, LeaseInterval[]>()
  for (const key of expected.keys()) {
    const [scope, type, lease] = key.split('|') as [string, string, string]
    got.set(key, await store.leases.intervals(type === 'IA_PD' ? { prefix: lease, scope } : { address: lease, scope }))
  }
  return got
}

describe('sqlite store: lease derivation after the events', () => {
  let events: KeaEvent[]
  let expected: Map<string, LeaseInterval[]>
  beforeAll(async () => {
    events = await realEvents()
    expected = expectedIntervals(events)
  })

  it('a writer killed with observations pending: reopening derives exactly one full derivation', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kt-derive-'))
    const path = join(dir, 'keatrail.db')
    const input = join(dir, 'events.ndjson')
    writeFileSync(input, events.map((e) => JSON.stringify(e)).join('\n'))
    // The built store in a process of its own, SIGKILLed after its last write: no close, no flush.
    const script = `
      import { readFileSync } from 'node:fs'
      const { SqliteStore } = await import(${JSON.stringify(join(packageRoot(), 'dist', 'src', 'store', 'sqlite', 'store.js'))})
      const events = readFileSync(${JSON.stringify(input)}, 'utf8').split('\\n').map((l) => JSON.parse(l))
      const store = new SqliteStore({ path: ${JSON.stringify(path)}, leaseDerivation: { maxPending: ${Math.floor(observeAll(events).length / 3)}, maxDelayMs: 600000 } })
      for (let i = 0; i < events.length; i += 200) await store.write(events.slice(i, i + 200))
      process.kill(process.pid, 'SIGKILL')`
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' })
    expect(r.signal, r.stderr).toBe('SIGKILL')
    const before = raw(path)
    expect(before.stored).toBe(events.length)
    // Some observations were derived (maxPending reached), the newest were not.
    expect(before.through).toBeGreaterThan(0)
    expect(before.through).toBeLessThan(before.newest)
    expect(before.observations).toBeLessThan(observeAll(events).length)

    const store = new SqliteStore({ path })
    try {
      expect(raw(path).through).toBe(before.newest)
      expect(await intervalsOf(store, expected)).toEqual(expected)
      expect((await store.leases.stats()).observations).toBe(expectedObservations(events))
    } finally {
      await store.close()
    }
  })

  it('a writer that goes quiet derives its pending observations within maxDelayMs', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'kt-derive-')), 'keatrail.db')
    const store = new SqliteStore({ path, leaseDerivation: { maxPending: 1_000_000, maxDelayMs: 200 } })
    try {
      await store.write(events.slice(0, 500))
      expect(raw(path).observations).toBe(0)
      await new Promise((resolve) => setTimeout(resolve, 600))
      // Read by another connection, as `keatrail serve` beside `keatrail run` does.
      const after = raw(path)
      expect(after.observations).toBe(expectedObservations(events.slice(0, 500)))
      expect(after.through).toBe(after.newest)
      // Events without lease activity move the watermark too: recovery would re-read them.
      const quiet = events.slice(500).filter((e) => e.event.action === undefined).slice(0, 20)
      expect(quiet.length).toBe(20)
      await store.write(quiet)
      await new Promise((resolve) => setTimeout(resolve, 600))
      expect(raw(path).newest).toBeGreaterThan(after.newest)
      expect(raw(path).through).toBe(raw(path).newest)
    } finally {
      await store.close()
    }
  })

  /** A store holding the first 80 % of the events (closed); the rest, and the keys they touch. */
  async function storedBefore (prefix: string): Promise<{ path: string, before: KeaEvent[], after: KeaEvent[], later: Set<string> }> {
    const path = join(mkdtempSync(join(tmpdir(), prefix)), 'damaged.db')
    const cut = Math.floor(events.length * 0.8)
    const [before, after] = [events.slice(0, cut), events.slice(cut)]
    const store = new SqliteStore({ path })
    await store.write(before)
    await store.close()
    return { path, before, after, later: new Set(observeAll(after).map((o) => o.key)) }
  }

  it('a key whose stored rows cannot be read is rebuilt from the stored events by the write or read that meets it', async () => {
    const { path, before, after, later } = await storedBefore('kt-lease-damage-')
    const earlier = expectedIntervals(before)
    const both = [...earlier.keys()].filter((k) => later.has(k))
    // Damaged: the last row's observation bytes (the write reads it), another key's last interval
    // document (the write too), and the first of several rows of a key no later event touches
    // (only a read meets it).
    const [lastObs, lastDoc] = both
    const older = [...earlier].find(([k, ivs]) => !later.has(k) && ivs.length > 1)?.[0]
    expect([lastObs, lastDoc, older].every((k) => k !== undefined)).toBe(true)
    const db = new Database(path)
    const kid = (key: string): number => db.prepare('SELECT kid FROM lease_keys WHERE key = ?').pluck().get(key) as number
    db.prepare('UPDATE lease_log SET obs = x\'ff\' WHERE rowid = (SELECT max(rowid) FROM lease_log WHERE kid = ?)').run(kid(lastObs as string))
    db.prepare('UPDATE lease_log SET doc = \'{not json\' WHERE rowid = (SELECT max(rowid) FROM lease_log WHERE kid = ?)').run(kid(lastDoc as string))
    db.prepare('UPDATE lease_log SET obs = x\'ff\' WHERE rowid = (SELECT min(rowid) FROM lease_log WHERE kid = ?)').run(kid(older as string))
    db.close()

    const store = new SqliteStore({ path })
    const repairs: string[] = []
    store.leases.onRepair = (key, _err, fromEvents) => { expect(fromEvents).toBe(true); repairs.push(key) }
    const ask = async (key: string): Promise<LeaseInterval[]> => {
      const [scope, type, lease] = key.split('|') as [string, string, string]
      return await store.leases.intervals(type === 'IA_PD' ? { prefix: lease, scope } : { address: lease, scope })
    }
    // Before, this write's derivation threw, and so did every one after it.
    await store.write(after)
    store.leases.flush()
    expect(repairs.sort()).toEqual([lastObs, lastDoc].sort())
    // A read meets the older damaged row: rebuilt, and answered.
    expect(await ask(older as string)).toEqual(expected.get(older as string))
    expect(store.leases.repaired).toBe(3)
    expect(await intervalsOf(store, expected)).toEqual(expected)
    // Deleting events whose key is damaged (withdraw) rebuilds it from the events left.
    const victim = both[2] as string
    const db2 = new Database(path)
    db2.prepare('UPDATE lease_log SET obs = x\'ff\' WHERE kid = (SELECT kid FROM lease_keys WHERE key = ?)').run(victim)
    db2.close()
    store.leases.flush()
    const [scope, , lease] = victim.split('|') as [string, string, string]
    const r = await store.deleteEvents({ filters: { ip: [lease], host: [scope] } })
    expect(r.deleted).toBeGreaterThan(0)
    expect(await ask(victim)).toEqual([])
    expect(store.leases.repaired).toBe(4)
    await store.close()
  })

  it('a rebuild whose transaction rolls back is neither counted nor reported; the retry that commits is, once', async () => {
    const { path, before, after, later } = await storedBefore('kt-lease-rollback-')
    const victim = [...expectedIntervals(before).keys()].find((k) => later.has(k)) as string
    const db = new Database(path)
    db.prepare('UPDATE lease_log SET obs = x\'ff\' WHERE rowid = (SELECT max(rowid) FROM lease_log WHERE kid = (SELECT kid FROM lease_keys WHERE key = ?))').run(victim)
    // Every lease row written fails while the flag is set: the derivation that rebuilt the key rolls back.
    db.exec('CREATE TABLE test_fail (x); INSERT INTO test_fail VALUES (1); CREATE TRIGGER test_fail_rows BEFORE INSERT ON lease_log WHEN EXISTS (SELECT 1 FROM test_fail) BEGIN SELECT RAISE(ABORT, \'injected failure\'); END')
    const store = new SqliteStore({ path })
    const repairs: string[] = []
    // A listener that throws is told after the commit: the flush that stored the rebuild does not fail.
    store.leases.onRepair = (key) => { repairs.push(key); throw new Error('listener failed') }
    try {
      await store.write(after).catch(() => {})
      expect(() => { store.leases.flush() }).toThrow(/injected failure/)
      expect(() => { store.leases.flush() }).toThrow(/injected failure/)
      expect(store.leases.repaired).toBe(0)
      expect(repairs).toEqual([])
      db.exec('DELETE FROM test_fail')
      store.leases.flush()
      expect(repairs).toEqual([victim])
      expect(store.leases.repaired).toBe(1)
      expect(await intervalsOf(store, expected)).toEqual(expected)
    } finally {
      db.close()
      await store.close()
    }
  })

  it('a replayed batch adds no observation, and after retention emptied the store new events are derived', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'kt-derive-')), 'keatrail.db')
    const store = new SqliteStore({ path, retention: { maxAgeDays: 1 } })
    try {
      await store.write(events)
      await store.write(events)
      expect((await store.leases.stats()).observations).toBe(expectedObservations(events))
      // Every fixture event is years old: retention deletes them all; block ids start again, the
      // write sequence (the watermark's unit) does not.
      expect(store.applyRetention(Date.parse('2040-01-01T00:00:00Z'))).toBe(events.length)
      expect(raw(path).stored).toBe(0)
      await store.write(events.slice(0, 300))
    } finally {
      await store.close()
    }
    expect(raw(path).through).toBe(raw(path).newest)
    expect(raw(path).stored).toBe(300)
  })
})
