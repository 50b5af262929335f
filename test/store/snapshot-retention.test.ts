import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import type { KeaSnapshot } from '../../src/kea/snapshot.js'
import type { KeaEvent } from '../../src/parse/event.js'
import { SqliteStore } from '../../src/store/sqlite/store.js'
import { parseBuffer, readFixture } from '../helpers/fixtures.js'

// Kea status snapshots obey retention (audit: nothing ever deleted them, and with maxSizeMiB
// the size retention deleted every event to keep them). Age: they go like events. Size: they
// give way first — thinned to one per hour past the last day, then the oldest evicted, all but
// the newest of each server and service — and events only after.

const dir = mkdtempSync(join(tmpdir(), 'kt-snapret-'))
afterAll(() => { rmSync(dir, { recursive: true, force: true }) })
let n = 0
const fresh = (): string => join(dir, `k${n++}.db`)

const MIB = 1024 * 1024
const HOUR = 3_600_000
// The fixture's events are of 2026-11-24 09:16 UTC; "now" is a few hours later.
const NOW = Date.parse('2026-11-24T12:00:00Z')

/** 2,000 events: copies of a fixture's, a minute apart, with ids of their own. */
async function events2000 (): Promise<KeaEvent[]> {
  const base = (await parseBuffer(readFixture('kea-2.2.0-dhcp4-INFO-full.log'))).events
  const out: KeaEvent[] = []
  for (let r = 0; out.length < 2000; r++) {
    for (const e of base) {
      if (out.length === 2000) break
      out.push({ ...e, '@timestamp': new Date(Date.parse(e['@timestamp']) + r * 60_000).toISOString(), event: { ...e.event, id: `${r}-${e.event.id}` } })
    }
  }
  return out
}

/** A snapshot of `subnets` subnets (1,000: ~90 KB of JSON, the audit's ~82 KB). */
function snap (server: string, time: number, subnets: number): KeaSnapshot {
  const list = Array.from({ length: subnets }, (_, i) => ({ id: i + 1, subnet: `10.${i >> 8}.${i & 255}.0/24`, total: 254, assigned: 100, declined: 0, free: 154, utilization: 39.37 }))
  return {
    '@timestamp': new Date(time).toISOString(), id: `${server}|dhcp4|${time}`, server, service: 'dhcp4', state: 'up', pid: 100,
    subnets: list, shared_networks: [], totals: { total: 254 * subnets, assigned: 100 * subnets, declined: 0, free: 154 * subnets, utilization: 39.37 }, packets: {}
  }
}

/** Snapshots of `servers` every `everyMs` from `from` up to (not including) `to`. */
function series (servers: string[], from: number, to: number, everyMs: number, subnets: number): KeaSnapshot[] {
  const out: KeaSnapshot[] = []
  for (let t = from; t < to; t += everyMs) for (const s of servers) out.push(snap(s, t, subnets))
  return out
}

const times = (list: readonly KeaSnapshot[]): number[] => list.map((s) => Date.parse(s['@timestamp']))

describe('sqlite retention of Kea snapshots', () => {
  it('by size (the audit\'s case): snapshots give way before events, oldest first, the newest of each server kept', async () => {
    const store = new SqliteStore({ path: fresh(), readers: { workers: 0 }, retention: { maxSizeMiB: 2 } })
    try {
      const events = await events2000()
      await store.write(events)
      // Two servers polled every 30 s for an hour, 1,000 subnets each: 240 snapshots, ~20 MB.
      const snaps = series(['kea-a', 'kea-b'], NOW - HOUR, NOW, 30_000, 1000)
      for (let i = 0; i < snaps.length; i += 20) await store.snapshots.write(snaps.slice(i, i + 20))
      expect(store.usedBytes()).toBeGreaterThan(2 * MIB)
      const latest = await store.snapshots.latest()

      expect(store.applyRetention(NOW)).toBe(0)
      expect(await store.count()).toBe(2000)
      expect(store.usedBytes()).toBeLessThanOrEqual(2 * MIB)
      // "Latest" answers as before, and what is left is the newest: the oldest went first.
      expect(await store.snapshots.latest()).toEqual(latest)
      const left = await store.snapshots.query({ size: 10_000 })
      expect(left.length).toBeGreaterThanOrEqual(2)
      expect(left.length).toBeLessThan(snaps.length)
      expect(left.map((s) => s.id)).toEqual(snaps.slice(snaps.length - left.length).map((s) => s.id))
      // Counted: the run's and the store's.
      expect(store.lastRetention).toEqual({ events: 0, snapshots: snaps.length - left.length })
      expect(store.snapshots.pruned).toBe(snaps.length - left.length)
    } finally {
      await store.close()
    }
  })

  it('by size, when even the newest snapshots and the events do not fit: events go, the newest of each server stays', async () => {
    // 1 MiB: the empty schema alone is ~0.9 MiB (16 KiB pages).
    const store = new SqliteStore({ path: fresh(), readers: { workers: 0 }, retention: { maxSizeMiB: 1 } })
    try {
      await store.write(await events2000())
      const snaps = series(['kea-a', 'kea-b'], NOW - HOUR, NOW, 60_000, 1000)
      await store.snapshots.write(snaps)
      const latest = await store.snapshots.latest()
      const deleted = store.applyRetention(NOW)
      expect(deleted).toBeGreaterThan(0)
      expect(await store.snapshots.latest()).toEqual(latest)
      expect((await store.snapshots.query({ size: 10_000 })).map((s) => s.id).sort()).toEqual(latest.map((s) => s.id).sort())
      expect(store.lastRetention).toEqual({ events: deleted, snapshots: snaps.length - 2 })
    } finally {
      await store.close()
    }
  })

  it('by size, a store at its limit by its events: the snapshots within their share (a quarter) stay, events go', async () => {
    const store = new SqliteStore({ path: fresh(), readers: { workers: 0 }, retention: { maxSizeMiB: 4 } })
    try {
      const base = await events2000()
      for (let r = 0; r < 30; r++) await store.write(base.map((e) => ({ ...e, event: { ...e.event, id: `${r}/${e.event.id}` } })))
      // An hour of one server every minute, 60 subnets: ~0.4 MB of documents, within 1 MiB.
      const snaps = series(['kea-a'], NOW - HOUR, NOW, 60_000, 60)
      await store.snapshots.write(snaps)
      expect(store.usedBytes()).toBeGreaterThan(4 * MIB)
      const deleted = store.applyRetention(NOW)
      // Before (the snapshots gave way wholly first): 59 snapshots went, only the newest stayed.
      expect(deleted).toBeGreaterThan(0)
      expect(store.lastRetention.snapshots).toBe(0)
      expect(await store.snapshots.query({ size: 10_000 })).toHaveLength(snaps.length)
      expect(await store.count()).toBeGreaterThan(0)
      expect(store.usedBytes()).toBeLessThanOrEqual(4 * MIB)
    } finally {
      await store.close()
    }
  })

  it('by size: snapshots past the last day are first thinned to the earliest of each hour, and that alone may be enough', async () => {
    const store = new SqliteStore({ path: fresh(), readers: { workers: 0 }, retention: { maxSizeMiB: 10 } })
    try {
      await store.write(await events2000())
      // One server every 5 minutes for 3 days, 60 subnets (6.5 KB of JSON, ~19 KB of the file
      // each: a row over ~4 KB takes a 16 KiB overflow page): 864 snapshots, ~17 MB; the last
      // day and one an hour before it, ~7.5 MB.
      const snaps = series(['kea-a'], NOW - 72 * HOUR, NOW, 300_000, 60)
      await store.snapshots.write(snaps)
      expect(store.usedBytes()).toBeGreaterThan(10 * MIB)

      expect(store.applyRetention(NOW)).toBe(0)
      expect(await store.count()).toBe(2000)
      expect(store.usedBytes()).toBeLessThanOrEqual(10 * MIB)
      const left = times(await store.snapshots.query({ size: 10_000 }))
      // Full resolution from the whole hour a day before now.
      const cut = Math.floor((NOW - 24 * HOUR) / HOUR) * HOUR
      expect(left.filter((t) => t >= cut)).toEqual(times(snaps).filter((t) => t >= cut))
      // Before it, the earliest snapshot of each hour, and nothing else.
      const hourly = [...new Set(times(snaps).filter((t) => t < cut).map((t) => Math.floor(t / HOUR)))].map((h) => times(snaps).find((t) => Math.floor(t / HOUR) === h))
      expect(left.filter((t) => t < cut)).toEqual(hourly)
      expect(store.lastRetention).toEqual({ events: 0, snapshots: snaps.length - left.length })
      // Thinning again changes nothing: each hour keeps the same snapshot.
      await store.snapshots.write([snap('kea-a', NOW, 60)])
      store.applyRetention(NOW)
      expect(times(await store.snapshots.query({ size: 10_000, to: cut }))).toEqual(hourly)
    } finally {
      await store.close()
    }
  })

  it('by age: snapshots older than maxAgeDays go like events, a server no longer polled with them', async () => {
    const store = new SqliteStore({ path: fresh(), readers: { workers: 0 }, retention: { maxAgeDays: 1 } })
    try {
      const events = await events2000()
      await store.write(events)
      // kea-a polled every 10 minutes for 3 days up to now; kea-old last answered 2 days ago.
      const snaps = series(['kea-a'], NOW - 72 * HOUR, NOW, 600_000, 5)
      const gone = series(['kea-old'], NOW - 72 * HOUR, NOW - 48 * HOUR, 600_000, 5)
      await store.snapshots.write([...snaps, ...gone])
      const cutoff = NOW - 24 * HOUR

      expect(store.applyRetention(NOW)).toBe(0)
      expect(await store.count()).toBe(2000)
      expect(times(await store.snapshots.query({ size: 10_000 }))).toEqual(times(snaps).filter((t) => t >= cutoff))
      expect((await store.snapshots.latest()).map((s) => [s.server, Date.parse(s['@timestamp'])])).toEqual([['kea-a', NOW - 600_000]])
      const expired = snaps.filter((s) => Date.parse(s['@timestamp']) < cutoff).length + gone.length
      expect(store.lastRetention).toEqual({ events: 0, snapshots: expired })
      expect(store.snapshots.pruned).toBe(expired)
      // Nothing more to do the next time.
      expect(store.applyRetention(NOW)).toBe(0)
      expect(store.lastRetention).toEqual({ events: 0, snapshots: 0 })
      expect(store.snapshots.pruned).toBe(expired)
    } finally {
      await store.close()
    }
  })
})
