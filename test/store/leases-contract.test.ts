import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { history, historyPage, holderAt } from '../../src/leases/query.js'
import type { LeaseInterval } from '../../src/leases/types.js'
import type { KeaEvent } from '../../src/parse/event.js'
import { SqliteStore } from '../../src/store/sqlite/store.js'
import type { Store } from '../../src/store/types.js'
import { engineStore, searchEngines } from '../helpers/engines.js'
import { parseBuffer, readFixture } from '../helpers/fixtures.js'
import { expectedIntervals } from '../helpers/lease-truth.js'
import { leaseSetup, type LeasesConfig } from '../../src/leases/config.js'
import type { LeaseDomains } from '../../src/leases/domains.js'
import type { SubnetMap } from '../../src/leases/wipes.js'

// Lease history, every store: the same real Kea events (two servers, v4 and v6, addresses and
// prefixes) written in order, out of order and twice; every store must hold exactly the
// intervals one full derivation gives, and answer holderAt / history identically.

const FIXTURES = [
  ['kea-2.2.0-dhcp4-INFO-full.log', 'kea-a'],
  ['kea-2.2.0-dhcp6-INFO-full.log', 'kea-a'],
  ['captured/kea-dhcp4-INFO-file.log', 'kea-b'],
  ['captured/kea-dhcp6-INFO-file.log', 'kea-b'],
  // The same v4 log from another server: equal addresses at two sites must never merge.
  ['captured/kea-dhcp4-INFO-file.log', 'kea-c'],
  // DEBUG 99: reclamation logs two lines per lease (the second one is evidence, not a lease).
  ['kea-2.2.0-dhcp4-DEBUG99-full.log.gz', 'kea-d'],
  ['kea-2.2.0-dhcp6-DEBUG99-full.log.gz', 'kea-d'],
  // Every lease message once (lines grouped by message ID, out of time order), with lease4-add
  // (its subnet-id) and lease4-wipe of subnet 1 at 09:16:16.490.
  ['golden/dhcp4-INFO-lease-events.log', 'kea-e'],
  ['golden/dhcp4-DEBUG99-lease-events.log', 'kea-f']
] as const
const WIPED = { scope: 'kea-e', address: '192.0.2.203', at: Date.parse('2026-11-24T09:16:30Z'), wipe: Date.parse('2026-11-24T09:16:16.490Z') }

async function fixtureEvents (): Promise<KeaEvent[]> {
  const all: KeaEvent[] = []
  for (const [file, host] of FIXTURES) {
    const { events } = await parseBuffer(readFixture(file), { host, path: `${host}/${file}` })
    all.push(...events)
  }
  return all
}

/** A deterministic shuffle (the test must not flake): a linear congruential generator. */
function shuffled<T> (items: readonly T[], seed: number): T[] {
  const out = [...items]
  let s = seed
  for (let i = out.length - 1; i > 0; i--) {
    s = (s * 1103515245 + 12345) % 2147483648
    const j = s % (i + 1)
    ;[out[i], out[j]] = [out[j] as T, out[i] as T]
  }
  return out
}


const engines = searchEngines()
const missing = engines.filter((e) => e.skip !== '')
const esSkip = missing.map((e) => `${e.name}: ${e.skip}`).join('; ')
let seq = 0
function setupOf (leases?: LeasesConfig): [SubnetMap | undefined, LeaseDomains | undefined] {
  return leases === undefined ? [undefined, undefined] : leaseSetup(leases)
}
/** `leases`: the configuration's `leases` part (subnets, lease domains), as the composition root hands it over. */
const makers: Record<string, (leases?: LeasesConfig) => Promise<Store>> = {
  sqlite: async (leases) => new SqliteStore({ path: join(mkdtempSync(join(tmpdir(), 'kt-lease-')), 'keatrail.db') }, ...setupOf(leases)),
  // Deriving after every write, as with a small maxPending: each batch meets the history the
  // earlier ones left (the default derives many batches at once, before the first read).
  'sqlite, deriving each write': async (leases) => new SqliteStore({ path: join(mkdtempSync(join(tmpdir(), 'kt-lease-')), 'keatrail.db'), leaseDerivation: { maxPending: 1, maxDelayMs: 0 } }, ...setupOf(leases)),
  ...Object.fromEntries(engines.filter((e) => e.skip === '').map((engine) => [engine.name, async (leases?: LeasesConfig) => {
    // No refresh per write, as in production: derivation must refresh what it reads itself.
    const s = engineStore(engine, { namespace: `leases${Date.now().toString(36)}${seq++}`, refresh: false })
    if (leases !== undefined) {
      const [subnets, domains] = leaseSetup(leases)
      s.domains = domains
      s.leases.subnets = subnets
    }
    await s.ensureTemplates()
    return s
  }]))
}
const kinds = Object.keys(makers)

describe(`lease history contract: ${kinds.join(' and ')} ${esSkip === '' ? '' : ` (skipped: ${esSkip})`}`, () => {
  let events: KeaEvent[]
  let expected: Map<string, LeaseInterval[]>
  const inOrder: Record<string, Store> = {}
  const outOfOrder: Record<string, Store> = {}
  const concurrent: Record<string, Store> = {}

  beforeAll(async () => {
    if (process.env.CI === 'true' && esSkip !== '') throw new Error(`CI needs Elasticsearch and OpenSearch: ${esSkip}`)
    events = await fixtureEvents()
    expected = expectedIntervals(events)
    const batches: KeaEvent[][] = []
    for (let i = 0; i < events.length; i += 150) batches.push(events.slice(i, i + 150))
    for (const kind of kinds) {
      const make = makers[kind] as () => Promise<Store>
      inOrder[kind] = await make()
      for (const b of batches) await inOrder[kind].write(b)
      // Out of order (as several sources and restarts deliver them), with replays mixed in.
      outOfOrder[kind] = await make()
      for (const b of shuffled([...batches, ...batches.slice(0, 7)], 42)) await outOfOrder[kind].write(b)
      // Four writes in flight at once, as a caller with concurrent batches does.
      concurrent[kind] = await make()
      for (let i = 0; i < batches.length; i += 4) await Promise.all(batches.slice(i, i + 4).map(async (b) => await (concurrent[kind] as Store).write(b)))
    }
  }, 300_000)
  afterAll(async () => {
    for (const s of [...Object.values(inOrder), ...Object.values(outOfOrder), ...Object.values(concurrent)]) await s.close()
  })

  it('the fixtures exercise v4, v6 addresses and v6 prefixes on four servers, INFO and DEBUG', () => {
    const types = new Set([...expected.keys()].map((k) => k.split('|')[1]))
    expect(types).toEqual(new Set(['V4', 'IA_NA', 'IA_PD']))
    expect(new Set([...expected.keys()].map((k) => k.split('|')[0]))).toEqual(new Set(['kea-a', 'kea-b', 'kea-c', 'kea-d', 'kea-e', 'kea-f']))
    const all = [...expected.values()].flat()
    expect(all.length).toBeGreaterThan(200)
    const reasons = new Set(all.map((iv) => iv.end_reason))
    for (const r of ['release', 'expiry-by-lifetime', 'decline', 'reclaim', 'wiped']) expect(reasons, r).toContain(r)
    // Intervals that gained evidence from a later line (a reclamation's second line).
    expect(all.some((iv) => iv.end_reason === 'reclaim' && iv.evidence.length > 2)).toBe(true)
  })

  for (const kind of kinds) {
    for (const mode of ['in order', 'out of order with replays', 'four batches in flight'] as const) {
      it(`${kind}, ${mode}: holds exactly the intervals of one full derivation`, async () => {
        const store = (mode === 'in order' ? inOrder : mode === 'four batches in flight' ? concurrent : outOfOrder)[kind] as Store
        for (const [key, want] of expected) {
          const [scope, type, lease] = key.split('|') as [string, string, string]
          const got = await store.leases.intervals(type === 'IA_PD' ? { prefix: lease, scope } : { address: lease, scope })
          expect(got, key).toEqual(want)
        }
      })
    }
  }

  it('both stores answer holderAt identically, inside intervals, between them and outside coverage', async () => {
    const now = Date.parse('2030-01-01T00:00:00Z')
    const points: Array<[string, number, string | undefined]> = []
    for (const ivs of expected.values()) {
      for (const iv of ivs.slice(0, 4)) {
        const addr = iv.type === 'IA_PD' ? iv.lease.replace(/::\/\d+$/, '::1234') : iv.lease
        if (iv.start !== null && iv.end !== null) {
          points.push([addr, Math.floor((iv.start + iv.end) / 2), undefined], [addr, iv.end + 1, iv.scope], [addr, iv.start - 5, iv.scope])
        }
      }
    }
    points.push(['192.0.2.23', Date.parse('2001-01-01T00:00:00Z'), undefined])
    expect(points.length).toBeGreaterThan(300)
    let answersWithHolders = 0
    for (const [addr, t, scope] of points) {
      const answers = await Promise.all(kinds.map(async (k) => await holderAt((inOrder[k] as Store).leases, addr, t, scope, now)))
      for (const a of answers.slice(1)) expect(a, `${addr} @ ${new Date(t).toISOString()}`).toEqual(answers[0])
      if ((answers[0]?.holders.length ?? 0) > 0) answersWithHolders++
    }
    expect(answersWithHolders).toBeGreaterThan(100)
    // ~1,000 points × three stores, one at a time: ~20 s with Elasticsearch on an idle 2-core machine.
  }, 120_000)

  it('a wipe ends the leases of its subnet, whether it is stored after them, with them or before them', async () => {
    const lines = readFixture('golden/dhcp4-INFO-lease-events.log').toString('utf8').split('\n')
    const { events: wipeLines } = await parseBuffer(lines.filter((l) => l.includes('WIPE')).join('\n'), { host: 'kea-w', path: 'kea-w/wipe.log' })
    const { events: rest } = await parseBuffer(lines.filter((l) => !l.includes('WIPE')).join('\n'), { host: 'kea-w', path: 'kea-w/rest.log' })
    expect(wipeLines.map((e) => e.event.action)).toEqual(['lease-wipe', undefined])
    const wipeId = (wipeLines[0] as KeaEvent).event.id
    const answers: unknown[] = []
    for (const k of kinds) {
      for (const order of [[rest, wipeLines], [wipeLines, rest], [[...rest, ...wipeLines]]]) {
        const store = await makers[k]?.() as Store
        try {
          for (const batch of order) await store.write(batch)
          const a = await holderAt(store.leases, WIPED.address, WIPED.at, 'kea-w')
          expect(a.holders, k).toEqual([])
          expect(a.before, k).toMatchObject({ mac: '1A-1B-1C-1D-1E-3F', end: new Date(WIPED.wipe).toISOString(), end_reason: 'wiped', certainty: 'observed' })
          expect(a.before?.evidence.at(-1)).toBe(wipeId)
          // Before the wipe it was held.
          expect((await holderAt(store.leases, WIPED.address, WIPED.wipe - 500, 'kea-w')).holders.map((h) => h.mac)).toEqual(['1A-1B-1C-1D-1E-3F'])
          answers.push(a)
        } finally {
          await store.close()
        }
      }
    }
    for (const a of answers.slice(1)) expect(a).toEqual(answers[0])
    // The bundled sample itself (kea-e), in every store and order.
    for (const k of kinds) {
      for (const stores of [inOrder, outOfOrder, concurrent]) {
        const a = await holderAt((stores[k] as Store).leases, WIPED.address, WIPED.at, WIPED.scope)
        expect([a.holders.length, a.before?.end_reason], k).toEqual([0, 'wiped'])
      }
    }
  })

  it('a flood of wipe lines, and wipes past the bound: the same answers in every store, the unapplied ones a collection gap', async () => {
    const lines = readFixture('golden/dhcp4-INFO-lease-events.log').toString('utf8').split('\n').filter((l) => l !== '' && !l.includes('WIPE'))
    const { events: rest } = await parseBuffer(lines.join('\n'), { host: 'kea-x', path: 'kea-x/rest.log' })
    // After 192.0.2.203 was added in subnet 1 (09:16:15.783): 300 wipes of a subnet no lease
    // is in, 1 ms apart, then one of subnet 1; the bound is 200, so the last 101 are not applied.
    const wipe = (ms: number, subnet: number): string => `${new Date(WIPED.wipe + ms).toISOString().replace('T', ' ').replace('Z', '')} INFO  [kea-dhcp4.dhcpsrv/15928.140567963111936] DHCPSRV_MEMFILE_WIPE_LEASES4 removing all IPv4 leases from subnet ${subnet}`
    const flood = [...Array.from({ length: 300 }, (_, i) => wipe(-600 + i, 9)), wipe(-200, 1)]
    const { events: wipes } = await parseBuffer(flood.join('\n'), { host: 'kea-x', path: 'kea-x/wipes.log' })
    expect(wipes.filter((e) => e.event.action === 'lease-wipe')).toHaveLength(301)
    const answers: unknown[] = []
    for (const k of kinds) {
      const store = await makers[k]?.() as Store
      try {
        ;(store.leases as unknown as { wipeLimit: number }).wipeLimit = 200
        await store.write(rest)
        await store.write(wipes.slice(0, 150))
        await store.write(wipes.slice(150))
        // Still held after the wipe of its subnet that was not applied; the answer names the gap.
        const held = await holderAt(store.leases, WIPED.address, WIPED.wipe - 100, 'kea-x')
        expect(held.holders.map((h) => [h.mac, h.end_reason]), k).toEqual([['1A-1B-1C-1D-1E-3F', 'still-active']])
        const during = await holderAt(store.leases, WIPED.address, WIPED.wipe - 300, 'kea-x')
        expect(during.gaps?.map((g) => [g.from, g.to, g.reason]), k).toEqual([[new Date(WIPED.wipe - 400).toISOString(), new Date(WIPED.wipe - 200).toISOString(), '101 lease wipe(s) not applied: more than 200 wipes']])
        expect(during.holders.map((h) => h.certainty), k).toEqual(['gap'])
        expect(held.gaps, k).toBeUndefined()
        // Counted once derived (a read derives what is pending).
        expect(store.leases.wipesIgnored, k).toBe(101)
        answers.push([held, during])
      } finally {
        await store.close()
      }
    }
    for (const a of answers.slice(1)) expect(a).toEqual(answers[0])
  })

  it('a lease domain (an HA pair): one history from both servers\' lines, one holder, asked by the domain or either server', async () => {
    // Kea 2.2 hot-standby: the primary (kea-ha1) allocates and renews; the standby (kea-ha2)
    // logs only the updates it receives (no lease detail), and serves while the primary is down
    // (30 s–80 s), renewing the primary's lease; the primary renews it again after.
    const at = (s: number): string => new Date(Date.parse('2026-11-24T10:00:00Z') + s * 1000).toISOString().replace('T', ' ').replace('Z', '')
    const alloc = (s: number, mac: string, ip: string, tid: number): string => `${at(s)} INFO  [kea-dhcp4.leases/100.200] DHCP4_LEASE_ALLOC [hwtype=1 ${mac}], cid=[no info], tid=0x${tid.toString(16)}: lease ${ip} has been allocated for 40 seconds`
    const X = '02:00:00:00:00:0a'
    const primary = [alloc(0, X, '192.0.2.50', 1), alloc(20, X, '192.0.2.50', 2), alloc(25, '02:00:00:00:00:0b', '192.0.2.51', 3), alloc(85, X, '192.0.2.50', 4)]
    const standby = [
      `${at(0.5)} INFO  [kea-dhcp4.commands/300.400] COMMAND_RECEIVED Received command 'lease4-update'`,
      `${at(20.5)} INFO  [kea-dhcp4.commands/300.400] COMMAND_RECEIVED Received command 'lease4-update'`,
      // Looks like a lease line (the client's label) but allocates nothing.
      `${at(45)} INFO  [kea-dhcp4.ha-hooks/300.400] HA_COMMUNICATION_INTERRUPTED_CLIENT4 [hwtype=1 02:00:00:00:00:0c], cid=[no info], tid=0x9: new client attempting to get a lease from the partner`,
      alloc(50, X, '192.0.2.50', 5)
    ]
    const { events: a } = await parseBuffer(primary.join('\n'), { host: 'kea-ha1', path: 'kea-ha1/kea.log' })
    const { events: b } = await parseBuffer(standby.join('\n'), { host: 'kea-ha2', path: 'kea-ha2/kea.log' })
    const t = (s: number): number => Date.parse('2026-11-24T10:00:00Z') + s * 1000
    const answers: unknown[] = []
    for (const k of kinds) {
      // Each server's history on its own: two copies of one client while both fragments last.
      const apart = await makers[k]?.() as Store
      try {
        await apart.write(a)
        await apart.write(b)
        expect((await holderAt(apart.leases, '192.0.2.50', t(55))).holders.map((h) => h.scope).sort(), k).toEqual(['kea-ha1', 'kea-ha2'])
      } finally {
        await apart.close()
      }
      const store = await makers[k]?.({ subnets: [], domains: [{ name: 'ha-pair', servers: ['kea-ha1', 'kea-ha2'] }] }) as Store
      try {
        // The standby's lines first, as a collector behind on one server delivers them.
        await store.write(b)
        await store.write(a)
        // One interval, renewed by both; it ends after the last line collected (certainty gap).
        const ivs = (await historyPage(store.leases, { address: '192.0.2.50' })).intervals
        expect(ivs.map((iv) => [iv.scope, iv.mac, iv.start, iv.end, iv.end_reason, iv.certainty]), k).toEqual([['ha-pair', '02-00-00-00-00-0A', new Date(t(0)).toISOString(), new Date(t(125)).toISOString(), 'expiry-by-lifetime', 'gap']])
        // Both servers behind it, and evidence from both: the standby's renewal among the primary's lines.
        expect(ivs[0]?.servers, k).toEqual(['kea-ha1', 'kea-ha2'])
        expect(ivs[0]?.evidence, k).toEqual(expect.arrayContaining([(a[0] as KeaEvent).event.id, (b[3] as KeaEvent).event.id, (a[3] as KeaEvent).event.id]))
        for (const scope of [undefined, 'ha-pair', 'kea-ha1', 'kea-ha2']) {
          for (const s of [10, 55, 70, 95]) {
            const h = await holderAt(store.leases, '192.0.2.50', t(s), scope)
            expect(h.holders.map((x) => [x.scope, x.mac]), `${k} ${String(scope)} ${s}`).toEqual([['ha-pair', '02-00-00-00-00-0A']])
          }
        }
        expect((await historyPage(store.leases, { mac: '02:00:00:00:00:0c' })).intervals, k).toEqual([])
        answers.push([ivs, await holderAt(store.leases, '192.0.2.51', t(30), 'kea-ha2')])
      } finally {
        await store.close()
      }
    }
    for (const x of answers.slice(1)) expect(x).toEqual(answers[0])
  })

  it('the logs of a real HA pair (captured, the primary down 35 s): as a lease domain, one full derivation of both servers in every store, one holder at any time', async () => {
    const { events: a } = await parseBuffer(readFixture('captured-ha/kea-ha1.log.gz'), { host: 'kea-ha1', path: 'kea-ha1/kea.log' })
    const { events: b } = await parseBuffer(readFixture('captured-ha/kea-ha2.log.gz'), { host: 'kea-ha2', path: 'kea-ha2/kea.log' })
    const leases: LeasesConfig = { subnets: [], domains: [{ name: 'ha-pair', servers: ['kea-ha1', 'kea-ha2'] }] }
    const want = expectedIntervals([...a, ...b], leaseSetup(leases)[1])
    expect([...want.keys()].every((k) => k.startsWith('ha-pair|V4|'))).toBe(true)
    // Both servers' lines in intervals: the standby's renewals while the primary was down.
    const ids = new Set(b.map((e) => e.event.id))
    const both = [...want.values()].flat().filter((iv) => iv.evidence.some((id) => ids.has(id)) && iv.evidence.some((id) => !ids.has(id)))
    expect(both.length).toBeGreaterThan(3)
    const batches = (events: KeaEvent[]): KeaEvent[][] => Array.from({ length: Math.ceil(events.length / 400) }, (_, i) => events.slice(i * 400, i * 400 + 400))
    const answers: unknown[] = []
    for (const k of kinds) {
      const store = await makers[k]?.(leases) as Store
      try {
        // The two servers' batches interleaved, the standby's first (two collectors at their own pace).
        const bs = batches(b)
        const as = batches(a)
        for (let i = 0; i < Math.max(bs.length, as.length); i++) for (const x of [bs[i], as[i]]) if (x !== undefined) await store.write(x)
        for (const [key, ivs] of want) {
          const lease = key.split('|')[2] as string
          expect(await store.leases.intervals({ address: lease, scope: 'ha-pair' }), `${k} ${key}`).toEqual(ivs)
        }
        const held: unknown[] = []
        for (const ivs of want.values()) {
          for (const iv of ivs) {
            if (iv.start === null || iv.end === null) continue
            // Asked by either server: the domain's answer.
            const h = await holderAt(store.leases, iv.lease, Math.floor((iv.start + iv.end) / 2), held.length % 2 === 0 ? 'kea-ha1' : 'kea-ha2')
            expect(h.holders.length, `${k} ${iv.lease}`).toBe(1)
            held.push(h)
          }
        }
        answers.push(held)
      } finally {
        await store.close()
      }
    }
    for (const x of answers.slice(1)) expect(x).toEqual(answers[0])
  })

  it('a DHCPv6 address inside a delegated prefix finds the prefix holder', async () => {
    const pd = [...expected.values()].flat().find((iv) => iv.type === 'IA_PD' && iv.start !== null && iv.end !== null) as LeaseInterval
    const inside = pd.lease.replace(/::\/\d+$/, '::ab:1')
    for (const k of kinds) {
      const a = await holderAt((inOrder[k] as Store).leases, inside, (pd.start as number) + 1, pd.scope)
      expect(a.holders.map((h) => [h.lease, h.duid, h.iaid])).toContainEqual([pd.lease, pd.duid, pd.iaid])
    }
  })

  it('both stores give every client the same history, whatever spelling of its identifier', async () => {
    const macs = new Set<string>()
    const duids = new Set<string>()
    for (const iv of [...expected.values()].flat()) {
      if (iv.hwaddr !== undefined) macs.add(iv.hwaddr)
      if (iv.duid !== undefined) duids.add(iv.duid)
    }
    expect(macs.size).toBeGreaterThan(20)
    expect(duids.size).toBeGreaterThan(10)
    for (const mac of macs) {
      const want = [...expected.values()].flat().filter((iv) => iv.hwaddr === mac || iv.duid_ll === mac).length
      const spellings = [mac, mac.toUpperCase().replaceAll(':', '-'), mac.replaceAll(':', '')]
      for (const k of kinds) {
        for (const m of spellings) {
          const h = await history((inOrder[k] as Store).leases, { mac: m })
          expect(h.length, `${k} ${m}`).toBe(want)
        }
      }
    }
    for (const duid of duids) {
      const answers = await Promise.all(kinds.map(async (k) => await history((inOrder[k] as Store).leases, { duid: duid.toUpperCase() })))
      expect(answers[0]?.length).toBeGreaterThan(0)
      for (const a of answers.slice(1)) expect(a).toEqual(answers[0])
    }
  })

  it('input known to be lost (dropped datagrams) makes overlapping answers "gap", in both stores', async () => {
    const iv = [...expected.values()].flat().find((x) => x.type === 'V4' && x.start !== null && x.end !== null && x.end - x.start > 2000 && x.end_reason === 'release') as LeaseInterval
    const mid = Math.floor(((iv.start as number) + (iv.end as number)) / 2)
    const answers = []
    for (const k of kinds) {
      const leases = (outOfOrder[k] as Store).leases
      await leases.recordGap({ scope: '*', from: mid - 100, to: mid + 100, reason: 'syslog source u dropped 7 datagram(s)' })
      const h = await history(leases, { address: iv.lease, scope: iv.scope })
      const same = h.find((x) => x.start === new Date(iv.start as number).toISOString())
      expect(same?.certainty, k).toBe('gap')
      const at = await holderAt(leases, iv.lease, mid, iv.scope)
      expect(at.covered).toBe(false)
      expect(at.gaps).toEqual([{ from: new Date(mid - 100).toISOString(), to: new Date(mid + 100).toISOString(), reason: 'syslog source u dropped 7 datagram(s)' }])
      expect((await holderAt(leases, iv.lease, (iv.start as number) - 5000, iv.scope)).gaps).toBeUndefined()
      answers.push(at)
    }
    for (const a of answers.slice(1)) expect(a).toEqual(answers[0])
  })

  it('rejects what it cannot read instead of answering wrongly', async () => {
    const leases = (inOrder.sqlite as Store).leases
    await expect(holderAt(leases, '192.0.2.300', 0)).rejects.toThrow(/KEATRAIL_ERR_USAGE|not an IPv4 or IPv6/)
    await expect(history(leases, { mac: '02:00:00:00:00:0g' })).rejects.toThrow(/not a valid MAC/)
    await expect(history(leases, { duid: '0:1:2' })).resolves.toEqual([])
    await expect(history(leases, { mac: 'a', duid: 'b' })).rejects.toThrow(/exactly one/)
    const outside = await holderAt(leases, '192.0.2.10', Date.parse('1999-01-01T00:00:00Z'))
    expect(outside.covered).toBe(false)
  })
})
