import { beforeAll, describe, expect, it } from 'vitest'
import { parseAddressOrPrefix } from '../../../src/leases/address.js'
import type { KeaEvent } from '../../../src/parse/event.js'
import { compileQuery, textTokens } from '../../../src/query/evaluate.js'
import { parseQuery } from '../../../src/query/parse.js'
import { admits, eventTerms, planOf, POSTED_FIELDS, type Plan } from '../../../src/store/sqlite/blocks/plan.js'
import type { EventQuery } from '../../../src/store/types.js'
import { eventQueries, loadEvents } from '../../helpers/query-cases.js'

// Pruning plans (issue 19): a block may be skipped only when none of its events matches. Blocks
// here are 64 consecutive fixture events with their exact postings and token sets (a bloom can
// only say yes more often), and compileQuery says which events match.

interface Block { events: KeaEvent[], terms: Set<string>, sorted: string[], tokens: Set<string> }

function blockOf (events: KeaEvent[]): Block {
  const terms = new Set<string>()
  const tokens = new Set<string>()
  for (const e of events) {
    eventTerms(e, terms)
    for (const t of textTokens(e.message)) tokens.add(t)
  }
  // Sorted in JS string order, the order Plan ranges are stated in.
  return { events, terms, sorted: [...terms].sort(), tokens }
}

function keeps (plan: Plan, b: Block): boolean {
  const inRange = (lo: string, hi: string): boolean => {
    let a = 0
    let z = b.sorted.length
    while (a < z) { const m = (a + z) >> 1; if ((b.sorted[m] as string) < lo) a = m + 1; else z = m }
    return a < b.sorted.length && (b.sorted[a] as string) <= hi
  }
  return admits(plan, (t) => b.terms.has(t), inRange, (t) => b.tokens.has(t))
}

const where = (q: string): EventQuery => ({ where: parseQuery(q) })

describe('planOf: pruning blocks by postings and token blooms', () => {
  let events: KeaEvent[] = []
  const blocks: Block[] = []
  beforeAll(async () => {
    events = await loadEvents()
    // The edge cases (test/helpers/query-cases.ts) in a block of their own, so that their
    // oddities decide whether it is kept.
    const plain = events.filter((e) => !e.event.id.startsWith('edge-'))
    for (let i = 0; i < plain.length; i += 64) blocks.push(blockOf(plain.slice(i, i + 64)))
    blocks.push(blockOf(events.filter((e) => e.event.id.startsWith('edge-'))))
  }, 60_000)

  const pruned = new Map<string, number>()
  for (const { name, q } of eventQueries()) {
    it(`never drops a block with a match: ${name}`, () => {
      const plan = planOf(q)
      const match = compileQuery(q)
      let dropped = 0
      for (const [i, b] of blocks.entries()) {
        const kept = keeps(plan, b)
        if (!kept) dropped++
        if (!kept) expect(b.events.filter(match).map((e) => e.event.id), `block ${i} of ${JSON.stringify(plan)}`).toEqual([])
      }
      pruned.set(name, dropped)
    })
  }

  it('drops blocks for identifier queries', () => {
    const useful = [
      'mac:00-0c-01-02-03-05', 'mac:00:0c:01:02:03:05 OR duid:00:03:00:01:02:00:00:00:06:0a', 'NOT duid:00:03:00:01:02:00:00:00:06:0a AND duid:00:03:00:01:02:00:00:00:06:0c',
      'ip:192.0.2.10', 'ip:192.0.2.0/28', 'ip:2001:db8:8000::/52', 'client.ip:2001:db8:1::/64', 'code:DHCP6_*', 'code:DHCP4_LEASE_*', 'duid:00:03:00:01:02:00:00:00:06:0*',
      'tid:0x5122c3', '"tid=0x13640266"', 'hostname:admin*', 'filters ip', 'filters mac and level', 'filters client_id', 'filters logger source_id'
    ]
    for (const name of useful) {
      const n = pruned.get(name) ?? planDrops(where(name))
      expect(n, name).toBeGreaterThan(0)
    }
    // Nothing is dropped for what blocks cannot tell.
    for (const name of ['NOT mac:00-0c-01-02-03-05', 'iaid > 10', 'time > 2026-11-24T18:03:00.500Z', 'id:a*']) expect(pruned.get(name), name).toBe(0)
  })

  function planDrops (q: EventQuery): number {
    const plan = planOf(q)
    return blocks.filter((b) => !keeps(plan, b)).length
  }

  it('finds every transaction id of the fixtures among its message\'s tokens (what the tid plan relies on)', () => {
    const withTid = events.filter((e) => e.kea.transaction_id !== undefined)
    expect(withTid.length).toBeGreaterThan(100)
    const missing = withTid.filter((e) => {
      const tokens = new Set(textTokens(e.message))
      return !textTokens(e.kea.transaction_id as string).every((t) => tokens.has(t))
    })
    expect(missing.map((e) => [e.kea.transaction_id, e.message])).toEqual([])
  })
})

describe('eventTerms', () => {
  it('posts each posted field\'s exact value and every related.ip by its hex key', () => {
    const e = {
      '@timestamp': '2026-11-24T18:02:23.835Z',
      message: 'DHCP4_LEASE_ALLOC lease 192.0.2.10 has been allocated',
      event: { id: 'x', original: '', code: 'DHCP4_LEASE_ALLOC', action: 'allocate', dataset: 'kea.dhcp4', module: 'kea', kind: 'event' },
      log: { level: 'info', logger: 'kea-dhcp4.leases' },
      host: { name: 'kea-a' },
      client: { ip: '192.0.2.10', mac: '02-00-00-00-00-0A' },
      related: { ip: ['192.0.2.10', '2001:DB8::1', 'fe80::1:2:3:4:5:6:7:8'] },
      kea: { hwaddr: '02:00:00:00:00:0a', client_id: '01:02', duid: '00:01', hostname: 'h.example', subnet_id: 7, iaid: 3, transaction_id: '0x1', source_id: 'src', parse: { status: 'ok' } }
    } as unknown as KeaEvent
    const out = new Set<string>()
    eventTerms(e, out)
    expect([...out].sort()).toEqual([
      'a:allocate', 'b:7', 'c:DHCP4_LEASE_ALLOC', 'd:kea.dhcp4', 'g:kea-dhcp4.leases', 'h:kea-a', 'i:01:02', 'k:event', 'l:info',
      'm:02-00-00-00-00-0A', 'n:h.example', 'o:src',
      `p:${parseAddressOrPrefix('192.0.2.10').lo}`, `p:${parseAddressOrPrefix('2001:db8::1').lo}`, 'p:x:fe80::1:2:3:4:5:6:7:8',
      's:ok', 'u:00:01'
    ].sort())
    expect(Object.keys(POSTED_FIELDS)).toHaveLength(15)
  })
})

describe('planOf shapes', () => {
  const v4 = parseAddressOrPrefix('192.0.2.0/24')
  it.each<[string, EventQuery, Plan]>([
    ['no condition', {}, { kind: 'all' }],
    ['time only', { from: 1, to: 2 }, { kind: 'all' }],
    ['NOT', where('NOT mac:00-0c-01-02-03-05'), { kind: 'all' }],
    ['OR with an unprunable side', where('mac:00-0c-01-02-03-05 OR iaid:3'), { kind: 'all' }],
    ['AND drops the unprunable side', where('mac:00-0c-01-02-03-05 AND iaid:3'), { kind: 'term', term: 'm:00-0C-01-02-03-05' }],
    ['numbers as Number', where('subnet_id:007'), { kind: 'term', term: 'b:7' }],
    ['hwaddr through the MAC postings', where('hwaddr:02:00:00:00:00:0a'), { kind: 'term', term: 'm:02-00-00-00-00-0A' }],
    ['CIDR', where('client.ip:192.0.2.0/24'), { kind: 'range', lo: `p:${v4.lo}`, hi: `p:${v4.hi}` }],
    ['address', where('ip:2001:DB8::1'), { kind: 'term', term: `p:${parseAddressOrPrefix('2001:db8::1').lo}` }],
    ['prefix up to its successor', where('code:DHCP6_*'), { kind: 'range', lo: 'c:DHCP6_', hi: 'c:DHCP6`' }],
    ['words and phrases: tokens', { text: 'Lease a.b', where: parseQuery('"was released"') }, { kind: 'tokens', tokens: ['lease', 'a', 'b', 'was', 'released'] }],
    ['a word without tokens matches nothing', { text: 'lease ...' }, { kind: 'none' }],
    ['nothing OR a term', where('"..." OR code:X'), { kind: 'term', term: 'c:X' }],
    ['tid: its token', where('tid:0x5122C3'), { kind: 'tokens', tokens: ['0x5122c3'] }],
    ['tid prefix', where('tid:0x5*'), { kind: 'all' }],
    ['filters: OR within, AND across', { filters: { ip: ['192.0.2.1', 'junk'], subnet_id: ['1', 2, 'x'], code: [] } }, {
      kind: 'and',
      parts: [
        { kind: 'or', parts: [{ kind: 'term', term: `p:${parseAddressOrPrefix('192.0.2.1').lo}` }, { kind: 'term', term: 'p:x:junk' }] },
        { kind: 'or', parts: [{ kind: 'term', term: 'b:1' }, { kind: 'term', term: 'b:2' }] }
      ]
    }],
    ['a filter no value of which can match', { filters: { subnet_id: ['x'] } }, { kind: 'none' }],
    ['nested AND/OR flattened', where('(code:A AND (level:info AND host:h)) OR (code:B OR code:C)'), {
      kind: 'or',
      parts: [
        { kind: 'and', parts: [{ kind: 'term', term: 'c:A' }, { kind: 'term', term: 'l:info' }, { kind: 'term', term: 'h:h' }] },
        { kind: 'term', term: 'c:B' }, { kind: 'term', term: 'c:C' }
      ]
    }]
  ])('%s', (_name, q, want) => {
    expect(planOf(q)).toEqual(want)
  })
})
