import type { KeaEvent } from '../../src/parse/event.js'
import { parseQuery } from '../../src/query/parse.js'
import type { EventQuery } from '../../src/store/types.js'
import { parseBuffer, plainCopy, readFixture } from './fixtures.js'

// Queries and events shared by test/query/evaluate.test.ts (answers against the SQLite store) and
// test/store/sqlite/plan.test.ts (block pruning never drops a block with a match).

/** The queries of test/store/query-contract.test.ts (every store), also evaluated in JS and planned. */
export const CONTRACT_QUERIES = [
  'code:DHCP4_LEASE_ALLOC',
  'code:DHCP6_*',
  'action:allocate OR action:release',
  'action:release AND NOT host:kea-a',
  'mac:00-0c-01-02-03-05',
  'mac:00:0c:01:02:03:05 OR duid:00:03:00:01:02:00:00:00:06:0a',
  'ip:192.0.2.0/28',
  'ip:2001:db8:8000::/52',
  'ip:192.0.2.10',
  'client.ip:192.0.2.0/24',
  'NOT ip:192.0.2.0/28 AND client.ip:2001:db8::/32',
  'level:warn OR level:error',
  'NOT level:info',
  'subnet_id >= 1',
  'time >= 2026-11-24T18:03:00Z AND time < 2026-11-24T18:03:30Z',
  'logger:kea-dhcp6.leases AND (action:renew OR action:reuse)',
  'tid:0x5122c3',
  'hostname:admin-added.example.org',
  'released',
  '"was released properly"',
  'msg:declined NOT host:kea-b',
  'allocated AND code:DHCP6_PD_*',
  'lease4-add OR "lease6-add"'
]

/** More query-language cases: NULL columns under NOT, nesting, prefixes, ranges, CIDRs, phrases. */
export const MORE_QUERIES = [
  // NOT over columns that are NULL for many events (SQL: NOT coalesce(NULL, 0) is true).
  'NOT mac:00-0c-01-02-03-05',
  'NOT duid:00:03:00:01:02:00:00:00:06:0a',
  'NOT hostname:host-a',
  'NOT tid:0x5122c3',
  'NOT subnet_id:1',
  'NOT iaid > 10',
  'NOT action:allocate',
  'NOT client.ip:192.0.2.10',
  'NOT client.ip:192.0.2.0/24',
  'NOT ip:192.0.2.0/24',
  'NOT code:DHCP4_*',
  // NULL inside OR / AND under NOT: NULL OR false is NULL, NULL OR true is true.
  'NOT (mac:00-0c-01-02-03-05 OR level:debug)',
  'NOT (mac:00-0c-01-02-03-05 OR code:DHCP4_LEASE_ALLOC)',
  'NOT (hostname:host-a AND level:info)',
  'NOT (action:release OR action:allocate) AND dataset:kea.dhcp4',
  'NOT (NOT action:release)',
  'NOT NOT NOT iaid:1',
  'NOT (client.ip:192.0.2.0/24 OR subnet_id:1)',
  'NOT (client.ip:2001:db8::/32 AND NOT mac:02-00-00-00-00-0a)',
  '(mac:02:00:00:00:00:0a OR duid:00:03:00:01:02:00:00:00:06:0c) AND NOT (level:debug OR action:offer)',
  '((code:DHCP4_LEASE_ALLOC OR code:DHCP6_LEASE_ALLOC) AND NOT host:kea-c) OR (action:renew AND iaid >= 10)',
  // Prefixes (case-sensitive), on keywords and identifiers.
  'code:DHCP4_LEASE_*',
  'code:dhcp4_*',
  'code:HOSTS_CFG_GET_ONE_*',
  'mac:00-0c-01-02-03-0*',
  'duid:00:03:00:01:02:00:00:00:06:0*',
  'cid:01:00:0c:01:02:03:0*',
  'hostname:admin*',
  'hostname:zz-*',
  'logger:kea-dhcp6.*',
  'id:a*',
  'tid:0x5*',
  // Ranges on numbers and time.
  'iaid > 10',
  'iaid >= 10 AND iaid < 13',
  'iaid <= 1',
  'subnet_id > 1',
  'subnet_id < 2',
  'time > 2026-11-24T18:03:00.500Z',
  'time <= 2026-11-24T18:02:30Z OR time >= 2026-11-24T18:05:00Z',
  // Addresses and CIDRs, v4 and v6, on client.ip and related.ip.
  'ip:192.0.2.250',
  'ip:192.0.2.0/24',
  'ip:192.0.2.0/30',
  'ip:0.0.0.0/0',
  'ip:2001:db8:1::',
  'ip:2001:db8:1::/48',
  'ip:fe80::/10',
  'ip:ff02::1:2',
  'ip:::/0',
  'client.ip:192.0.2.10',
  'client.ip:192.0.2.0/28',
  'client.ip:2001:db8:1::/64',
  'client.ip:fe80::/10',
  'client.ip:2001:db8:1::10',
  'related.ip:255.255.255.255',
  // Full text: phrases with punctuation, several words, tokens joined by punctuation.
  '"tid=0x13640266"',
  '"192.0.2.10 will be advertised"',
  '"lease 192.0.2.10 has been allocated"',
  '"00:63:6c:69:65:6e:74:2d:41"',
  'allocated seconds',
  'lease AND allocated AND NOT seconds',
  'kt-s0',
  'socket_type',
  'host_backends',
  '"the following host backend"',
  '"following the host"',
  'msg:"will be advertised"',
  'ALLOCATED',
  '"..."',
  '"ñandú"',
  'msg:"CAFÉ"',
  '"café crème"',
  // ASCII words that match only folded non-ASCII text: a byte test of the frame must let it through.
  'cafe',
  'creme AND nandu',
  'NOT released',
  'released OR code:DHCP4_LEASE_ALLOC'
]

/** Full queries (time bounds, words, filters) and `where` combined with the rest. */
export function eventQueries (): Array<{ name: string, q: EventQuery }> {
  const t = (iso: string): number => Date.parse(iso)
  const list: Array<{ name: string, q: EventQuery }> = [
    { name: 'from/to', q: { from: t('2026-11-24T18:03:00Z'), to: t('2026-11-24T18:03:30Z') } },
    { name: 'from only, fractional ms', q: { from: t('2026-11-24T18:04:00Z') + 0.5 } },
    { name: 'to only', q: { to: t('2026-11-24T18:02:40Z') } },
    { name: 'text words', q: { text: 'lease allocated' } },
    { name: 'text with punctuation words', q: { text: 'tid=0x13640266 192.0.2.10' } },
    { name: 'text without tokens', q: { text: '... ,,,' } },
    { name: 'text blank', q: { text: '   ' } },
    { name: 'text case', q: { text: 'LEASE Advertised' } },
    { name: 'filters several fields', q: { filters: { code: ['DHCP4_LEASE_ALLOC', 'DHCP4_LEASE_ADVERT'], host: ['kea-a', 'kea-c'] } } },
    { name: 'filters mac and level', q: { filters: { mac: ['02-00-00-00-00-0A', '00-0C-01-02-03-05'], level: ['info', 'debug'] } } },
    { name: 'filters ip', q: { filters: { ip: ['192.0.2.10', '2001:db8:1::', 'fe80::882a:49ff:feb7:fca8:546'] } } },
    { name: 'filters ip spelling', q: { filters: { ip: ['2001:DB8:1:0::'] } } },
    { name: 'filters ip as a CIDR is its network address', q: { filters: { ip: ['192.0.2.0/24'] } } },
    { name: 'filters subnet_id', q: { filters: { subnet_id: [1, '2'] } } },
    { name: 'filters subnet_id text', q: { filters: { subnet_id: ['01'] } } },
    { name: 'filters subnet_id not a number', q: { filters: { subnet_id: ['one'] } } },
    { name: 'filters duid client_id hwaddr', q: { filters: { duid: ['00:03:00:01:02:00:00:00:06:0a'], action: ['allocate', 'renew', 'release'] } } },
    { name: 'filters client_id', q: { filters: { client_id: ['00:63:6c:69:65:6e:74:2d:41'], hwaddr: ['02:00:00:00:00:0a'] } } },
    { name: 'filters status dataset', q: { filters: { status: ['ok', 'partial'], dataset: ['kea.dhcp6'] } } },
    { name: 'filters logger source_id', q: { filters: { logger: ['kea-dhcp4.leases'], source_id: ['nope'] } } },
    { name: 'filters empty list', q: { filters: { code: [] } } },
    { name: 'everything', q: { from: t('2026-11-24T18:02:00Z'), to: t('2026-11-24T18:06:00Z'), text: 'lease', filters: { dataset: ['kea.dhcp4'] }, where: parseQuery('NOT mac:00-0c-01-02-03-05 AND client.ip:192.0.2.0/24') } }
  ]
  for (const q of [...CONTRACT_QUERIES, ...MORE_QUERIES]) list.push({ name: q, q: { where: parseQuery(q) } })
  return list
}

/** Fixture events (query-contract's plus the DEBUG captures), and edge cases derived from them. */
export async function loadEvents (): Promise<KeaEvent[]> {
  const events: KeaEvent[] = []
  for (const [file, host] of [
    ['captured/kea-dhcp4-INFO-file.log', 'kea-a'], ['captured/kea-dhcp6-INFO-file.log', 'kea-a'],
    ['kea-2.2.0-dhcp4-INFO-full.log', 'kea-b'], ['kea-2.2.0-dhcp6-INFO-full.log', 'kea-b'],
    ['captured/kea-dhcp4-DEBUG-file.log.gz', 'kea-c'], ['captured/kea-dhcp6-DEBUG-file.log.gz', 'kea-c']
  ] as const) {
    events.push(...(await parseBuffer(readFixture(file), { host, path: `${host}/${file}`, rederivable: true })).events)
  }
  // Fixture events re-derivable (the block store keeps their raw records only); edge cases not.
  const plain = events.map(plainCopy)
  return [...plain, ...edgeCases(plain)]
}

/** Events that the fixtures lack: other subnets, missing host, odd addresses, non-ASCII text. */
function edgeCases (events: readonly KeaEvent[]): KeaEvent[] {
  const withClient = events.filter((e) => e.client?.ip !== undefined && e.kea.subnet_id !== undefined)
  const out: KeaEvent[] = []
  const variant = (i: number, change: (e: KeaEvent) => void): void => {
    const e = JSON.parse(JSON.stringify(withClient[i % withClient.length])) as KeaEvent
    e.event.id = `edge-${i}`
    change(e)
    out.push(e)
  }
  variant(0, (e) => { e.kea.subnet_id = 2; e.kea.iaid = 1000; e.kea.parse.status = 'partial' })
  variant(1, (e) => { delete e.host; e.message += ' ñandú CAFÉ crème' })
  variant(2, (e) => { e.client = { ...e.client, ip: '2001:DB8:1::10' }; e.related = { ip: ['2001:DB8:1::10'] } })
  variant(3, (e) => { e.client = { ...e.client, ip: 'not-an-address' }; e.related = { ip: ['not-an-address', '192.0.2.10'] } })
  variant(4, (e) => { e.kea.subnet_id = 12; e.event.code = 'DHCP4_LEASE_ALLOC_X'; e.message = 'Ñandú… 𐐀bc İstanbul ß straße 🏳️‍🌈 lease_allocated' })
  variant(5, (e) => { delete e.event.code; delete e.log.level; e.message = '...' })
  variant(6, (e) => { e.kea.hostname = 'zz-\uffff\uffffx'; e.kea.iaid = 13 })
  return out
}
