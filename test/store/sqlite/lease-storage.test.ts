import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { parseAddressOrPrefix } from '../../../src/leases/address.js'
import { deriveIntervals } from '../../../src/leases/derive.js'
import { compareObservations, sequenceOf } from '../../../src/leases/observe.js'
import type { LeaseInterval, LeaseObservation } from '../../../src/leases/types.js'
import { ObsWriter, readIds, readObs } from '../../../src/store/sqlite/lease-codec.js'
import { SubnetMap, wipeObservation, WipeRegistry, type LeaseWipe } from '../../../src/leases/wipes.js'
import { packageRoot } from '../../../src/paths.js'
import { everyWipe } from '../../helpers/lease-truth.js'
import { identBlob, identText } from '../../../src/store/sqlite/ident-blob.js'
import { SqliteLeases } from '../../../src/store/sqlite/leases.js'
import { ByteReader } from '../../../src/store/sqlite/varint.js'
import { MIGRATIONS } from '../../../src/store/sqlite/migrations.js'

// Schema 10 keeps a key's observations inside its interval rows (older ones in sealed chunks)
// and its last interval in memory. Whatever order observations arrive in, are withdrawn in, or
// were stored in by earlier versions, the intervals must be those of one full derivation.

const T0 = Date.parse('2026-11-24T04:00:00Z')

/** A deterministic generator (the test must not flake). */
function lcg (seed: number): () => number {
  let s = seed
  return () => {
    s = (s * 1103515245 + 12345) % 2147483648
    return s / 2147483648
  }
}

function keyOf (scope: string, type: 'V4' | 'IA_NA' | 'IA_PD', lease: string): Pick<LeaseObservation, 'key' | 'scope' | 'type' | 'lease' | 'lo' | 'hi'> {
  const r = parseAddressOrPrefix(lease)
  return { key: `${scope}|${type}|${r.text}`, scope, type, lease: r.text, lo: r.lo, hi: r.hi }
}

/**
 * Observations of a few keys: long runs of renewals by one client (more than a row holds),
 * lifetime-less renewals, other clients, every kind of end, equal times, odd event ids.
 */
function history (seed: number): LeaseObservation[] {
  const rnd = lcg(seed)
  const keys = [keyOf('kea-a', 'V4', '192.0.2.23'), keyOf('kea-a', 'IA_NA', '2001:db8::5'), keyOf('kea-b', 'IA_PD', '2001:db8:100::/56'), keyOf('', 'V4', '192.0.2.24')]
  const clients = [
    { hwaddr: '02:00:00:00:00:0a', client_id: '01:02:00:00:00:00:0a' },
    { hwaddr: '02:00:00:00:00:0b', hostname: 'Host-B.example' },
    { duid: '00:03:00:01:02:00:00:00:00:0c', duid_ll: '02:00:00:00:00:0c', iaid: 7 },
    { duid: '00:01:00:01:aa:bb:cc:dd:02:00:00:00:00:0d', iaid: 1 }
  ]
  const out: LeaseObservation[] = []
  let off = 0
  for (const k of keys) {
    let t = T0
    let client = clients[0] as Record<string, unknown>
    for (let i = 0; i < 700; i++) {
      const r = rnd()
      // Mostly renewals by the holder, every 30 s (lifetime 60 s); sometimes a gap past the lifetime.
      // Observations 100-399: one client renewing, a 300-observation interval.
      const steady = i >= 100 && i < 400
      t += r < 0.03 ? 0 : r < 0.06 && !steady ? 90_000 : 30_000
      if (rnd() < 0.02 && !steady) client = clients[Math.floor(rnd() * clients.length)] as Record<string, unknown>
      const a = steady ? rnd() * 0.86 : rnd()
      const action = a < 0.8 ? 'allocate' : a < 0.86 ? 'renew' : a < 0.9 ? 'release' : a < 0.93 ? 'reclaim' : a < 0.95 ? 'expire' : a < 0.97 ? 'decline' : a < 0.99 ? 'lease-update' : 'lease-delete'
      off += 1 + Math.floor(rnd() * 300)
      // Ids as file sources make them, and a few that are not (a leading zero, no offset).
      const id = i % 97 === 5 ? `kea-a-src-0${off.toString(16)}` : i % 101 === 7 ? `journal:${off}` : `${i % 50 < 25 ? 'a1b2c3d4e5f60718' : '99aa88bb77cc66dd'}-${off.toString(16)}`
      const o: LeaseObservation = { ...k, event_id: id, ts: t, seq: sequenceOf(id), action, ...client }
      if (action === 'allocate' || action === 'lease-update') o.lifetime = rnd() < 0.1 ? 3.5 : 60
      if (rnd() < 0.5) o.subnet_id = 1 + Math.floor(rnd() * 3)
      out.push(o)
    }
  }
  return out
}

function open (schema = Infinity): Database.Database {
  const db = new Database(':memory:')
  db.function('keatrail_ip_hex', { deterministic: true }, (_ip: unknown) => null)
  for (const m of MIGRATIONS) if (m.version <= schema) db.exec(m.sql)
  return db
}

function expected (obs: readonly LeaseObservation[]): LeaseInterval[] {
  const byKey = new Map<string, LeaseObservation[]>()
  for (const o of obs) byKey.set(o.key, [...(byKey.get(o.key) ?? []), o])
  return sorted([...byKey.values()].flatMap((list) => deriveIntervals([...list].sort(compareObservations))))
}

function sorted (ivs: LeaseInterval[]): LeaseInterval[] {
  return [...ivs].sort((a, b) => a.key < b.key ? -1 : a.key > b.key ? 1 : (a.start ?? a.end ?? 0) - (b.start ?? b.end ?? 0) || (a.id < b.id ? -1 : 1))
}

async function stored (leases: SqliteLeases, obs: readonly LeaseObservation[]): Promise<LeaseInterval[]> {
  const keys = new Map(obs.map((o) => [o.key, o]))
  const all: LeaseInterval[] = []
  for (const o of keys.values()) all.push(...await leases.intervals(o.type === 'IA_PD' ? { prefix: o.lease, scope: o.scope } : { address: o.lease, scope: o.scope }))
  return sorted(all)
}

function batches<T> (items: readonly T[], rnd: () => number): T[][] {
  const out: T[][] = []
  for (let i = 0; i < items.length;) {
    const n = 1 + Math.floor(rnd() * 120)
    out.push(items.slice(i, i + n))
    i += n
  }
  return out
}

describe('sqlite lease storage (schema 10)', () => {
  const obs = history(7)

  it('the observation codec gives back every observation as it was', () => {
    const w = new ObsWriter()
    const one = obs.filter((o) => o.key === obs[0]?.key)
    for (const o of one) w.add(o)
    expect(readObs(w.bytes(), one[0] as LeaseObservation)).toEqual(one)
    const last = one[one.length - 1] as LeaseObservation
    expect(readIds(w.bytes())).toEqual({ ids: one.map((o) => o.event_id), ts: last.ts, seq: last.seq })
    // A writer over stored bytes appends as the one that wrote them would have.
    const more = ObsWriter.over(Buffer.from(w.bytes().subarray(0)), w.n)
    const w2 = new ObsWriter()
    for (const o of one) w2.add(o)
    for (const o of one.slice(0, 3)) { more.add({ ...o, ts: o.ts + 1e9 }); w2.add({ ...o, ts: o.ts + 1e9 }) }
    expect(Buffer.compare(more.bytes(), w2.bytes())).toBe(0)
  })

  it('the observation codec keeps a wipe among a key\'s observations (no client, a subnet, an action by its text)', () => {
    const one = obs.filter((o) => o.key === obs[0]?.key).slice(0, 6)
    const k = one[0] as LeaseObservation
    const wipe = wipeObservation({ scope: k.scope, family: k.type === 'V4' ? 4 : 6, subnet_id: 3, ts: (one[2] as LeaseObservation).ts + 1, seq: 'wipe-src-' + '0'.repeat(12) + '1', event_id: 'wipe-src-1' }, k)
    const list = [...one.slice(0, 3), wipe, ...one.slice(3)]
    const w = new ObsWriter()
    for (const o of list) w.add(o)
    expect(readObs(w.bytes(), k)).toEqual(list)
  })

  it('a wipe stored after a release in its own millisecond, but logged before it, ends the lease', async () => {
    const k = keyOf('kea-a', 'V4', '192.0.2.60')
    const leases = new SqliteLeases(open())
    leases.apply([
      { ...k, event_id: 'b0-10', ts: T0, seq: sequenceOf('b0-10'), action: 'lease-add', subnet_id: 1, hwaddr: '02:00:00:00:00:0a', lifetime: 3600 },
      { ...k, event_id: 'b0-30', ts: T0 + 100_000, seq: sequenceOf('b0-30'), action: 'release', hwaddr: '02:00:00:00:00:0a' }
    ])
    leases.apply([], [{ scope: 'kea-a', family: 4, subnet_id: 1, ts: T0 + 100_000, seq: sequenceOf('b0-20'), event_id: 'b0-20' }])
    expect((await leases.intervals({ address: '192.0.2.60' })).map((i) => [i.end, i.end_reason, i.evidence])).toEqual([[T0 + 100_000, 'wiped', ['b0-10', 'b0-20', 'b0-30']]])
  })

  it('a wipe reaches a lease whose key also holds an interval without a start at the same position', async () => {
    const k = keyOf('kea-a', 'V4', '192.0.2.61')
    const leases = new SqliteLeases(open())
    leases.apply([{ ...k, event_id: 'b0-20', ts: T0 + 1000, seq: sequenceOf('b0-20'), action: 'allocate', hwaddr: '02:00:00:00:00:bb', lifetime: 3600 }])
    // A late release by another client in the same millisecond, logged before: an interval without a start, ending there.
    leases.apply([{ ...k, event_id: 'b0-10', ts: T0 + 1000, seq: sequenceOf('b0-10'), action: 'release', hwaddr: '02:00:00:00:00:cc' }])
    leases.apply([], [{ scope: 'kea-a', family: 4, subnet_id: 0, ts: T0 + 2000, seq: sequenceOf('b0-30'), event_id: 'b0-30' }])
    expect((await leases.intervals({ address: '192.0.2.61' })).map((i) => [i.hwaddr, i.end, i.end_reason])).toEqual([
      ['02:00:00:00:00:cc', T0 + 1000, 'release'],
      ['02:00:00:00:00:bb', T0 + 2000, 'wiped']
    ])
  })

  it('a stored wipe is judged again with the subnets configured now when its key is derived again', async () => {
    const db = open()
    const k = keyOf('kea-a', 'V4', '192.0.2.62')
    const alloc: LeaseObservation = { ...k, event_id: 'b1-10', ts: T0, seq: sequenceOf('b1-10'), action: 'allocate', hwaddr: '02:00:00:00:00:0a', lifetime: 3600 }
    const wipe: LeaseWipe = { scope: 'kea-a', family: 4, subnet_id: 1, ts: T0 + 60_000, seq: sequenceOf('b1-20'), event_id: 'b1-20' }
    const before = new SqliteLeases(db)
    before.apply([alloc], [wipe])
    expect((await before.intervals({ address: '192.0.2.62' })).map((i) => [i.end_reason, i.certainty])).toEqual([['expiry-by-lifetime', 'gap']])
    const after = new SqliteLeases(db)
    after.subnets = new SubnetMap([{ server: 'kea-a', id: 1, prefix: '192.0.2.0/24' }])
    after.wipesStored = () => [wipe]
    // A late observation re-derives the key from its first interval.
    after.apply([{ ...alloc, event_id: 'b1-5', seq: sequenceOf('b1-5'), ts: T0 - 1000, action: 'allocate' }])
    expect((await after.intervals({ address: '192.0.2.62' })).map((i) => [i.end, i.end_reason, i.certainty])).toEqual([[T0 + 60_000, 'wiped', 'observed']])
  })

  it('a file derived before wipes ended leases has its stored wipes applied once, by its next derivation', async () => {
    const db = open()
    const k = keyOf('kea-a', 'V4', '192.0.2.50')
    const alloc: LeaseObservation = { ...k, event_id: 'src-10', ts: T0, seq: sequenceOf('src-10'), action: 'lease-add', subnet_id: 1, hwaddr: '02:00:00:00:00:0a', lifetime: 3600 }
    const wipe = { scope: 'kea-a', family: 4 as const, subnet_id: 1, ts: T0 + 60_000, seq: sequenceOf('src-20'), event_id: 'src-20' }
    // Derived as a keatrail that ignored wipes left it: open for the hour, no mark in meta.
    const old = new SqliteLeases(db)
    old.apply([alloc])
    db.prepare('DELETE FROM meta WHERE key = \'lease_wipes\'').run()
    expect((await old.intervals({ address: '192.0.2.50' })).map((i) => i.end_reason)).toEqual(['expiry-by-lifetime'])
    // The wipe is among the stored events; an unrelated observation of another key comes in.
    const other: LeaseObservation = { ...keyOf('kea-a', 'V4', '192.0.2.51'), event_id: 'src-30', ts: T0 + 120_000, seq: sequenceOf('src-30'), action: 'allocate', hwaddr: '02:00:00:00:00:0b', lifetime: 60 }
    for (const round of [1, 2]) {
      const next = new SqliteLeases(db)
      next.wipesStored = () => [wipe]
      next.apply(round === 1 ? [other] : [{ ...other, event_id: 'src-40', seq: sequenceOf('src-40'), ts: T0 + 200_000 }])
      expect((await next.intervals({ address: '192.0.2.50' })).map((i) => [i.end, i.end_reason, i.evidence])).toEqual([[wipe.ts, 'wiped', ['src-10', 'src-20']]])
    }
    expect(db.prepare('SELECT value FROM meta WHERE key = \'lease_wipes\'').pluck().get()).toBe(1)
    expect((await new SqliteLeases(db).stats()).observations).toBe(4)
  })

  it('a flood of wipe lines costs a handful of wipes per lease, not one per line, and derives what every wipe would', async () => {
    const leases = new SqliteLeases(open())
    leases.subnets = new SubnetMap([{ server: 'kea-a', id: 3, prefix: '192.0.2.0/25' }])
    const all: LeaseObservation[] = []
    for (let i = 0; i < 200; i++) {
      const k = keyOf('kea-a', 'V4', `192.0.2.${i}`)
      // Some leases name their subnet (lease-add), some lie in a configured one, the rest are unknown.
      all.push({ ...k, event_id: `f0-${(i * 16).toString(16)}`, ts: T0 + i * 10, seq: sequenceOf(`f0-${(i * 16).toString(16)}`), action: i % 5 === 0 ? 'lease-add' : 'allocate', hwaddr: '02:00:00:00:00:0a', lifetime: 86_400, ...(i % 5 === 0 ? { subnet_id: 1 + (i % 3) } : {}) })
    }
    leases.apply(all)
    const wipes: LeaseWipe[] = []
    const merged = { wipes: 0 }
    const merge = WipeRegistry.prototype.merge
    const spy = function (this: WipeRegistry, ...args: Parameters<typeof merge>): LeaseObservation[] {
      const out = merge.apply(this, args)
      merged.wipes += out.filter((o) => o.action === 'lease-wipe').length
      return out
    }
    WipeRegistry.prototype.merge = spy
    try {
      // 3,000 lines in 6 batches: a subnet no lease is in, then subnets 1 and 2 (the last batch: every subnet), a second apart.
      for (let b = 0; b < 6; b++) {
        const batch: LeaseWipe[] = []
        for (let j = 0; j < 500; j++) {
          const n = b * 500 + j
          const id = `f1-${n.toString(16)}`
          batch.push({ scope: 'kea-a', family: 4, subnet_id: b === 5 && j === 499 ? 0 : b < 2 ? 9 : 1 + (n % 2), ts: T0 + 10_000 + n * 1000, seq: sequenceOf(id), event_id: id })
        }
        wipes.push(...batch)
        leases.apply([], batch)
      }
    } finally {
      WipeRegistry.prototype.merge = merge
    }
    const byKey = new Map(all.map((o) => [o.key, [o]]))
    const want = sorted([...byKey.values()].flatMap((list) => deriveIntervals(everyWipe(list, wipes, new SubnetMap([{ server: 'kea-a', id: 3, prefix: '192.0.2.0/25' }])))))
    expect(await stored(leases, all)).toEqual(want)
    expect(want.filter((iv) => iv.end_reason === 'wiped').length).toBe(200)
    expect(want.filter((iv) => iv.certainty === 'gap').length).toBeGreaterThan(50)
    // Each of the 200 leases met at most a few wipes per batch (one per line would be 600,000).
    expect(merged.wipes).toBeLessThan(200 * 6 * 4)
  })

  it('wipes past the bound are not applied: counted, reported once stored, their time a collection gap', async () => {
    const leases = new SqliteLeases(open())
    leases.wipeLimit = 2
    const reported: unknown[] = []
    leases.onWipesIgnored = (scope, n, from, to) => { reported.push([scope, n, from, to]) }
    const k = keyOf('kea-a', 'V4', '192.0.2.70')
    leases.apply([{ ...k, event_id: 'g0-10', ts: T0, seq: sequenceOf('g0-10'), action: 'lease-add', subnet_id: 4, hwaddr: '02:00:00:00:00:0a', lifetime: 86_400 }])
    const wipe = (i: number, subnet: number): LeaseWipe => ({ scope: 'kea-a', family: 4, subnet_id: subnet, ts: T0 + i * 1000, seq: sequenceOf(`g1-${i}`), event_id: `g1-${i}` })
    // As the store hands them over: in a transaction that settles.
    leases.enqueue([], 2, [wipe(1, 7), wipe(2, 8), wipe(3, 4), wipe(4, 4)])
    leases.flush()
    expect(leases.wipesIgnored).toBe(2)
    expect(reported).toEqual([['kea-a', 2, T0 + 3000, T0 + 4000]])
    // Not ended by the wipes of its subnet that were not applied; the answer says input is missing there.
    expect((await leases.intervals({ address: '192.0.2.70' })).map((i) => i.end_reason)).toEqual(['expiry-by-lifetime'])
    expect((await leases.gapsIn('kea-a', T0, T0 + 10_000)).map((g) => [g.from, g.to, g.reason])).toEqual([[T0 + 3000, T0 + 4000, '2 lease wipe(s) not applied: more than 2 wipes']])
    // A rolled-back batch is not reported (nor counted): its retry will be.
    const db = (leases as unknown as { db: Database.Database }).db
    expect(() => { leases.settled(db.transaction(() => { leases.apply([], [wipe(5, 4)]); throw new Error('rolled back') })) }).toThrow('rolled back')
    expect(leases.wipesIgnored).toBe(2)
    expect(reported).toHaveLength(1)
  })

  it('wipes arriving with any batch, in order or shuffled, some in an observation\'s millisecond: one full derivation with every wipe', async () => {
    // The server '' logs no subnet (as DHCPv4 allocations at INFO): its leases are marked, not ended.
    const all = history(11).map((o) => { if (o.scope !== '') return o; const { subnet_id: _, ...rest } = o; return rest })
    const rnd = lcg(12)
    const wipes: LeaseWipe[] = []
    const unknown = all.filter((o) => o.scope === '')
    for (let i = 1; i <= 16; i++) {
      // Some inside the long run of renewals of the server without subnets (a mark that must
      // survive the interval being resumed by later batches).
      const o = (i % 4 === 0 ? unknown[100 + Math.floor(rnd() * 250)] : all[Math.floor(rnd() * all.length)]) as LeaseObservation
      // Half of the ids sort before the observations' at the same millisecond, half after.
      const id = i % 2 === 0 ? `0wipe-${i.toString(16)}` : `wipe-${i.toString(16)}`
      // Mostly the subnet of the observation it follows (it ends something), some at random (a lease of unknown subnet is marked).
      wipes.push({ scope: o.scope, family: o.type === 'V4' ? 4 : 6, subnet_id: rnd() < 0.2 ? 0 : i % 3 === 0 ? 1 + Math.floor(rnd() * 3) : o.subnet_id ?? 1 + Math.floor(rnd() * 3), ts: rnd() < 0.4 ? o.ts : o.ts + Math.floor(rnd() * 20_000), seq: sequenceOf(id), event_id: id })
    }
    const byKey = new Map<string, LeaseObservation[]>()
    for (const o of all) byKey.set(o.key, [...(byKey.get(o.key) ?? []), o])
    // Every wipe, not only those WipeRegistry.merge keeps.
    const want = sorted([...byKey.values()].flatMap((list) => deriveIntervals(everyWipe([...list].sort(compareObservations), wipes))))
    expect(want.filter((iv) => iv.end_reason === 'wiped').length).toBeGreaterThan(1)
    expect(want.filter((iv) => iv.certainty === 'gap' && iv.start !== null).length).toBeGreaterThan(0)
    for (const seed of [1, 2, 3]) {
      for (const shuffle of [false, true]) {
        const r = lcg(seed)
        const leases = new SqliteLeases(open())
        const bs = batches([...all].sort(compareObservations), r)
        let order = bs.map((b) => ({ obs: b, wipes: [] as LeaseWipe[] }))
        // In order: a wipe comes with the batch holding its moment; shuffled: with any batch.
        for (const w of wipes) {
          const at = shuffle ? Math.floor(r() * order.length) : Math.max(0, order.findIndex((b) => (b.obs[b.obs.length - 1] as LeaseObservation).ts >= w.ts))
          order[at]?.wipes.push(w)
        }
        if (shuffle) order = order.map((b) => [r(), b] as const).sort((x, y) => x[0] - y[0]).map(([, b]) => b)
        for (const b of order) leases.apply(b.obs, b.wipes)
        expect(await stored(leases, all), `seed ${seed}${shuffle ? ', shuffled' : ''}`).toEqual(want)
      }
    }
  })

  it('in order, in batches of any size: one full derivation, every observation kept once', async () => {
    const rnd = lcg(1)
    const leases = new SqliteLeases(open(), { maxPending: 1_000_000, maxDelayMs: 60_000 })
    const inOrder = [...obs].sort(compareObservations)
    for (const b of batches(inOrder, rnd)) leases.apply(b)
    leases.apply(inOrder.slice(0, 50)) // a replay
    expect(await stored(leases, obs)).toEqual(expected(obs))
    expect((await leases.stats()).observations).toBe(obs.length)
  })

  it('shuffled batches with replays, deriving every few: one full derivation', async () => {
    for (const seed of [2, 3, 4]) {
      const rnd = lcg(seed)
      const db = open()
      const leases = new SqliteLeases(db, { maxPending: 500, maxDelayMs: 60_000 })
      const bs = batches([...obs].sort(compareObservations), rnd)
      const order = [...bs, ...bs.slice(0, 5)].map((b) => [rnd(), b] as const).sort((x, y) => x[0] - y[0]).map(([, b]) => b)
      let rowid = 0
      for (const b of order) leases.enqueue(b, ++rowid)
      leases.flush()
      expect(await stored(leases, obs), `seed ${seed}`).toEqual(expected(obs))
      expect((db.prepare('SELECT count(*) AS n FROM lease_obs').get() as { n: number }).n).toBe(obs.length)
      // Long intervals moved their older observations out of the row.
      expect((db.prepare('SELECT count(*) AS n FROM lease_log_obs').get() as { n: number }).n).toBeGreaterThan(0)
      leases.stop()
    }
  })

  it('reads observations written before identifiers were packed (schema 12), and packs them shorter now', () => {
    const fixture = JSON.parse(readFileSync(join(packageRoot(), 'test', 'fixtures', 'store', 'lease-obs-schema12.json'), 'utf8')) as { observations: LeaseObservation[], hex: string }
    const old = Buffer.from(fixture.hex, 'hex')
    const k = fixture.observations[0] as LeaseObservation
    expect(readObs(old, k)).toEqual(fixture.observations)
    expect(readIds(old).ids).toEqual(fixture.observations.map((o) => o.event_id))
    const w = new ObsWriter()
    for (const o of fixture.observations) w.add(o)
    expect(readObs(w.bytes(), k)).toEqual(fixture.observations)
    expect(readIds(w.bytes()).ids).toEqual(fixture.observations.map((o) => o.event_id))
    expect(w.bytes().length).toBeLessThan(old.length - 60)
    // Appending to old bytes: both forms in one row.
    const more = ObsWriter.over(Buffer.from(old), fixture.observations.length)
    const next: LeaseObservation = { key: k.key, scope: k.scope, type: k.type, lease: k.lease, lo: k.lo, hi: k.hi, event_id: '2ed252dd1a26bf0b9725-ffff', seq: sequenceOf('2ed252dd1a26bf0b9725-ffff'), ts: k.ts + 1e9, action: 'renew', hwaddr: '02:00:00:00:00:ee' }
    more.add(next)
    const back = readObs(more.bytes(), k)
    expect(back.slice(0, -1)).toEqual(fixture.observations)
    expect(back[back.length - 1]).toMatchObject({ event_id: next.event_id, hwaddr: '02:00:00:00:00:ee' })
  })

  it('bytes that end inside a value fail to read, at once (they looped forever)', () => {
    const w = new ObsWriter()
    const one = obs.filter((o) => o.key === obs[0]?.key).slice(0, 20)
    for (const o of one) w.add(o)
    const bytes = w.bytes()
    for (const cut of [1, 2, 5, bytes.length - 1]) {
      const part = bytes.subarray(0, cut)
      // Some cuts end between two observations: those read; the others throw. None hangs.
      for (const read of [() => readIds(part), () => readObs(part, one[0] as LeaseObservation)]) {
        try { read() } catch (err) { expect((err as Error).message).toMatch(/end inside a value/) }
      }
    }
    expect(() => readObs(Buffer.from([0x80 | 0x03, 0x01]), one[0] as LeaseObservation)).toThrow(/end inside a value/)
    expect(() => new ByteReader(Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01])).uint()).toThrow(/end inside a value/)
  })

  it('keeps colon-hex identifiers as bytes, finds clients by them and by rows written as text before', async () => {
    expect(identText(identBlob('02:00:00:00:00:0a'))).toBe('02:00:00:00:00:0a')
    for (const kept of ['02:00:0A:00:00:0a', 'Host-B.example', '0', '02:00:00:00:00:0a:']) expect(identBlob(kept)).toBe(kept)
    // The same bytes as the regex and hex decoding they replaced, and the same text back through an observation.
    const colonHex = /^[0-9a-f]{2}(?::[0-9a-f]{2})*$/
    const sample = obs[0] as LeaseObservation
    fc.assert(fc.property(fc.oneof(fc.stringMatching(/^[0-9a-fA-F:]{0,40}$/), fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 1, maxLength: 300 }).map((b) => b.map((x) => x.toString(16).padStart(2, '0')).join(':'))), (id) => {
      expect(identBlob(id)).toEqual(colonHex.test(id) ? Buffer.from(id.replaceAll(':', ''), 'hex') : id)
      const o: LeaseObservation = { ...sample, hwaddr: id, client_id: id, duid: id }
      const w = new ObsWriter()
      w.add(o)
      const [back] = readObs(w.bytes(), sample)
      expect([back?.hwaddr, back?.client_id, back?.duid]).toEqual([id, id, id])
    }), { numRuns: 500 })
    const db = open()
    const leases = new SqliteLeases(db, { maxPending: 1, maxDelayMs: 0 })
    leases.apply([...obs].sort(compareObservations))
    const types = db.prepare('SELECT DISTINCT typeof(hwaddr) FROM lease_log WHERE hwaddr IS NOT NULL UNION SELECT DISTINCT typeof(duid) FROM lease_log WHERE duid IS NOT NULL').pluck().all()
    expect(types).toEqual(['blob'])
    const queries = [{ mac: '02:00:00:00:00:0a' }, { client_id: '02:00:00:00:00:0a' }, { duid: '00:03:00:01:02:00:00:00:00:0c' }, { mac: '02:00:00:00:00:0c' }, { hostname: 'host-b.example' }]
    const before = await Promise.all(queries.map(async (q) => await leases.intervals(q)))
    for (const found of before) expect(found.length).toBeGreaterThan(0)
    // Rows as schema 12 wrote them (text): found the same.
    const rows = db.prepare('SELECT rowid, hwaddr, client_id, duid, duid_ll FROM lease_log').all() as Array<Record<string, unknown>>
    const asText = db.prepare('UPDATE lease_log SET hwaddr = ?, client_id = ?, duid = ?, duid_ll = ? WHERE rowid = ?')
    for (const r of rows.filter((_, i) => i % 2 === 0)) asText.run(identText(r.hwaddr), identText(r.client_id), identText(r.duid), identText(r.duid_ll), r.rowid)
    expect(db.prepare('SELECT count(*) FROM lease_log WHERE typeof(hwaddr) = \'text\'').pluck().get()).toBeGreaterThan(0)
    expect(await Promise.all(queries.map(async (q) => await leases.intervals(q)))).toEqual(before)
    expect(await stored(leases, obs)).toEqual(expected(obs))
  })

  it('withdrawn events, with and without their observations: the derivation of the rest', async () => {
    const rnd = lcg(5)
    const leases = new SqliteLeases(open(), { maxPending: 1, maxDelayMs: 0 })
    leases.apply([...obs].sort(compareObservations))
    const gone = obs.filter(() => rnd() < 0.05)
    const half = Math.floor(gone.length / 2)
    expect(leases.withdraw(gone.slice(0, half).map((o) => o.event_id), gone.slice(0, half))).toBeGreaterThan(0)
    expect(leases.withdraw(gone.slice(half).map((o) => o.event_id))).toBeGreaterThan(0)
    const left = obs.filter((o) => !gone.includes(o))
    expect(await stored(leases, obs)).toEqual(expected(left))
    expect((await leases.stats()).observations).toBe(left.length)
    // And they can come back.
    leases.apply(gone)
    expect(await stored(leases, obs)).toEqual(expected(obs))
  })

  it('another process deriving the same keys in between: nothing of its history is lost', async () => {
    const db = open()
    const a = new SqliteLeases(db, { maxPending: 1, maxDelayMs: 0 })
    const b = new SqliteLeases(db, { maxPending: 1, maxDelayMs: 0 })
    const inOrder = [...obs].sort(compareObservations)
    for (const [i, batch] of batches(inOrder, lcg(6)).entries()) (i % 3 === 0 ? b : a).apply(batch)
    expect(await stored(a, obs)).toEqual(expected(obs))
  })

  it('moves the lease_obs rows and log intervals of schema 9 over unchanged, and derives on from them', async () => {
    const db = open(9)
    const first = obs.filter((o) => o.ts < T0 + 10_000_000)
    const insObs = db.prepare('INSERT INTO lease_obs (event_id, key, ts, seq, doc) VALUES (?, ?, ?, ?, ?)')
    const insIv = db.prepare(`INSERT INTO lease_intervals (id, key, origin, scope, type, lo, hi, start, start_seq, pos_ts, pos_seq, end, hwaddr, client_id, duid, duid_ll, hostname, doc)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
    for (const o of first) {
      const { event_id: id, key, ts, seq, ...rest } = o
      insObs.run(id, key, ts, seq, JSON.stringify(rest))
    }
    const old = expected(first)
    for (const iv of old) {
      const seq = sequenceOf(iv.evidence[0] as string)
      insIv.run(iv.id, iv.key, iv.origin, iv.scope, iv.type, iv.lo, iv.hi, iv.start, iv.start === null ? null : seq, iv.start ?? iv.end ?? 0, seq, iv.end,
        iv.hwaddr ?? null, iv.client_id ?? null, iv.duid ?? null, iv.duid_ll ?? null, iv.hostname?.toLowerCase() ?? null, JSON.stringify(iv))
    }
    // A Kea-state interval stays where it is.
    insIv.run('kea-state-1', 'kea-a|V4|192.0.2.99', 'kea-state', 'kea-a', 'V4', parseAddressOrPrefix('192.0.2.99').lo, parseAddressOrPrefix('192.0.2.99').hi, T0, null, T0, '', T0 + 1000,
      null, null, null, null, null, JSON.stringify({ id: 'kea-state-1', origin: 'kea-state', start: T0, end: T0 + 1000 }))
    db.exec((MIGRATIONS.find((m) => m.version === 10) as { sql: string }).sql)
    const leases = new SqliteLeases(db, { maxPending: 1, maxDelayMs: 0 })
    expect(await stored(leases, first)).toEqual(old)
    expect((await leases.stats())).toEqual({ intervals: old.length + 1, observations: first.length })
    expect(db.prepare('SELECT type FROM sqlite_master WHERE name = \'lease_obs\'').get()).toEqual({ type: 'view' })
    leases.apply([...obs].sort(compareObservations))
    expect(await stored(leases, obs)).toEqual(expected(obs))
  })

  it('retention forgets the intervals that ended before the cutoff, and derivation carries on', async () => {
    const leases = new SqliteLeases(open(), { maxPending: 1, maxDelayMs: 0 })
    const inOrder = [...obs].sort(compareObservations)
    const half = Math.floor(inOrder.length / 2)
    leases.apply(inOrder.slice(0, half))
    const cutoff = (inOrder[Math.floor(half / 2)] as LeaseObservation).ts
    leases.prune(cutoff)
    const kept = expected(inOrder.slice(0, half)).filter((iv) => iv.end === null || iv.end >= cutoff)
    expect(await stored(leases, obs)).toEqual(kept)
    leases.apply(inOrder.slice(half))
    const all = expected(inOrder)
    const got = await stored(leases, obs)
    // What started after the cutoff is derived as before.
    expect(got.filter((iv) => (iv.start ?? 0) > cutoff + 1_000_000)).toEqual(all.filter((iv) => (iv.start ?? 0) > cutoff + 1_000_000))
  })
})
