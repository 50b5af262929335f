import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { holderAt } from '../src/leases/query.js'
import { packageRoot } from '../src/paths.js'
import { fill, shape, STEPS, T0, ip, type Shape } from './generate.js'
import { ElasticsearchStore } from '../src/store/elasticsearch/store.js'
import { SqliteStore } from '../src/store/sqlite/store.js'
import type { Store } from '../src/store/types.js'

// bench/leases: holderAt latency (p50/p99) on a store filled with real-shaped Kea DHCPv4 lease
// logs: every interval is an allocation, 8 renewals and a release (10 events), so EVENTS/10
// intervals over EVENTS/100 addresses, each address passing between clients 10 times.
// Usage: npm run bench:leases [-- SQLITE_EVENTS [ES_EVENTS]]   (defaults 10,000,000 and 1,000,000;
// ES_EVENTS 0 skips Elasticsearch; ES_URL or scripts/elasticsearch.sh)

const SQLITE_EVENTS = Number(process.argv[2] ?? 10_000_000)
const ES_EVENTS = Number(process.argv[3] ?? 1_000_000)
const QUERIES = 2000

/** A deterministic sequence of (address, time) inside the data: holders, gaps, prefixes of time. */
function queries (s: Shape): Array<[string, number]> {
  const out: Array<[string, number]> = []
  let x = 12345
  const span = s.rounds * STEPS * s.stepS * 1000
  for (let i = 0; i < QUERIES; i++) {
    x = (x * 1103515245 + 12345) % 2147483648
    const a = x % s.addresses
    x = (x * 1103515245 + 12345) % 2147483648
    out.push([ip(a), T0 + (x % span)])
  }
  return out
}

async function measure (store: Store, s: Shape): Promise<{ p50: number, p99: number, max: number, withHolder: number }> {
  const qs = queries(s)
  for (const [a, t] of qs.slice(0, 100)) await holderAt(store.leases, a, t) // warm up
  const times: number[] = []
  let withHolder = 0
  for (const [a, t] of qs) {
    const t0 = process.hrtime.bigint()
    const ans = await holderAt(store.leases, a, t)
    times.push(Number(process.hrtime.bigint() - t0) / 1e6)
    if (ans.holders.length > 0) withHolder++
  }
  times.sort((x, y) => x - y)
  const pct = (p: number): number => times[Math.min(times.length - 1, Math.floor(times.length * p))] as number
  return { p50: pct(0.5), p99: pct(0.99), max: times[times.length - 1] as number, withHolder }
}

function report (name: string, fillRes: { events: number, seconds: number }, intervals: number, m: Awaited<ReturnType<typeof measure>>): void {
  process.stdout.write(`${name.padEnd(14)} ${fillRes.events.toLocaleString('en')} events, ${intervals.toLocaleString('en')} intervals (filled in ${fillRes.seconds.toFixed(0)} s, ` +
    `${Math.round(fillRes.events / fillRes.seconds).toLocaleString('en')} events/s with lease derivation)\n`)
  process.stdout.write(`${''.padEnd(14)} holderAt over ${QUERIES} queries (${m.withHolder} with a holder): p50 ${m.p50.toFixed(2)} ms  p99 ${m.p99.toFixed(2)} ms  max ${m.max.toFixed(2)} ms\n`)
}

const s1 = shape(SQLITE_EVENTS)
process.stdout.write(`bench/leases: DHCPv4 INFO logs, ${STEPS} events per interval, ${s1.addresses.toLocaleString('en')} addresses × ${s1.rounds} holders each\n`)
// KEATRAIL_BENCH_DB=path keeps the filled database (bench/api can reuse it).
const keep = process.env.KEATRAIL_BENCH_DB
const dir = mkdtempSync(join(tmpdir(), 'kt-bench-leases-'))
const sqlite = new SqliteStore({ path: keep ?? join(dir, 'keatrail.db') })
const f1 = await fill(sqlite, s1)
report('sqlite', f1, (await sqlite.leases.stats()).intervals, await measure(sqlite, s1))
await sqlite.close()
rmSync(dir, { recursive: true, force: true })

if (ES_EVENTS > 0) {
  let esUrl = process.env.ES_URL ?? ''
  if (esUrl === '') esUrl = execFileSync('bash', [join(packageRoot(), 'scripts', 'elasticsearch.sh'), 'start'], { encoding: 'utf8' }).trim().split('\n').pop() ?? ''
  const s2 = shape(ES_EVENTS)
  const es = new ElasticsearchStore({ url: esUrl, namespace: `benchl${Date.now().toString(36)}` })
  await es.ensureTemplates()
  const f2 = await fill(es, s2)
  await es.refresh()
  report('elasticsearch', f2, (await es.leases.stats()).intervals, await measure(es, s2))
  await es.close()
}
