import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { packageRoot } from '../src/paths.js'
import { resolvePattern } from '../src/parse/patterns.js'
import { parseStream } from '../src/parse/stream.js'
import type { KeaEvent } from '../src/parse/event.js'

// bench/parse: lines/s and MiB/s of keatrail's parser on the default file pattern, and of a
// straightforward one-regex-per-line parser of the same fields, in the same run, one core.
// Usage: npm run bench:parse [-- LINES]   (default 1,000,000)

const LINES = Number(process.argv[2] ?? 1_000_000)
const root = packageRoot()

/** Real Kea 2.2 INFO lines (v4 and v6), varied so no two generated lines are equal. */
function buildInput (count: number): Buffer {
  const sources = ['kea-2.2.0-dhcp4-INFO-full.log', 'kea-2.2.0-dhcp6-INFO-full.log']
  const templates = sources.flatMap((f) => readFileSync(join(root, 'test', 'fixtures', 'kea', f), 'utf8').split('\n').filter(Boolean))
  const parts: string[] = []
  let t = Date.UTC(2026, 10, 24, 0, 0, 0)
  for (let i = 0; i < count; i++) {
    const tpl = templates[i % templates.length] as string
    t += 7
    const ts = new Date(t).toISOString().replace('T', ' ').slice(0, 23)
    const n = (i & 0xff).toString(16).padStart(2, '0')
    parts.push(ts + tpl.slice(23).replace(/:0a\]/, `:${n}]`).replace(/tid=0x[0-9a-f]+/, `tid=0x${i.toString(16)}`))
  }
  return Buffer.from(parts.join('\n') + '\n')
}

async function * chunks (buf: Buffer): AsyncGenerator<Buffer> {
  for (let i = 0; i < buf.length; i += 1 << 20) yield buf.subarray(i, i + (1 << 20))
}

async function keatrail (buf: Buffer): Promise<number> {
  let n = 0
  await parseStream(chunks(buf), { pattern: resolvePattern('kea-file'), timeZone: 'UTC', path: 'bench.log' }, (batch) => { n += batch.length })
  return n
}

// The baseline a competent developer would write first: decode the text, split it, one regex
// per line capturing header, label, address or prefix, IAID and lifetime, and the same event
// fields keatrail produces (checked below on a sample before anything is timed).
const ONE_REGEX = /^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})\.(\d{3}) (FATAL|ERROR|WARN|INFO|DEBUG) +\[([^/\]]+)\/(\d+)\.(\d+)\] ([A-Z][A-Z0-9_]*)(?: (?:.*?(?:\[hwtype=(\d+) ([0-9a-f:]*)\], cid=\[([^\]]*)\]|duid=\[([^\]]*)\])(?:, tid=(0x[0-9a-f]+))?)?(?:.*?(?:lease|address|addr|prefix) ([0-9a-f:.]*[0-9a-f:])(?:\/(\d+))?(?=[ .]|$))?(?:.*?iaid=(\d+))?(?:.*?for (\d+|infinity) seconds)?.*)?$/
const ACTIONS: Record<string, string> = {
  DHCP4_LEASE_ADVERT: 'offer', DHCP4_LEASE_OFFER: 'offer', DHCP4_LEASE_ALLOC: 'allocate', DHCP4_LEASE_REUSE: 'reuse', DHCP4_RELEASE: 'release',
  DHCP6_LEASE_ADVERT: 'offer', DHCP6_LEASE_ALLOC: 'allocate', DHCP6_LEASE_RENEW: 'renew', DHCP6_LEASE_REUSE: 'reuse', DHCP6_RELEASE_NA: 'release',
  DHCP6_PD_LEASE_ADVERT: 'offer', DHCP6_PD_LEASE_ALLOC: 'allocate', DHCP6_PD_LEASE_RENEW: 'renew', DHCP6_PD_LEASE_REUSE: 'reuse', DHCP6_RELEASE_PD: 'release'
}

type Fields = Record<string, unknown>

function baselineEvent (line: string, offset: number): Fields {
  const m = ONE_REGEX.exec(line)
  if (m === null) return { event: { original: line, id: `base-${offset.toString(16)}` }, kea: { parse: { status: 'unmatched' } } }
  const time = Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!, +m[7]!)
  const logger = m[9]!
  const root = logger.split('.')[0]!
  const code = m[12]!
  const action = ACTIONS[code]
  const kea: Fields = { source_id: 'base', parse: { status: 'ok' } }
  const e: Fields = {
    '@timestamp': new Date(time).toISOString(),
    message: line.slice(line.indexOf('] ') + 2),
    event: { id: `base-${offset.toString(16)}`, original: line, code, action, dataset: root === 'kea-dhcp4' ? 'kea.dhcp4' : root === 'kea-dhcp6' ? 'kea.dhcp6' : 'kea.other', module: 'kea', kind: 'event', category: action === undefined ? undefined : ['network'] },
    log: { level: m[8]!.toLowerCase(), logger, file: { path: 'bench.log' }, offset },
    process: { name: root, pid: +m[10]!, thread: { id: +m[11]! } },
    kea
  }
  if (m[13] !== undefined) { kea.hwtype = +m[13]; if (m[14] !== '') { kea.hwaddr = m[14]; e.client = { mac: m[14]!.toUpperCase().replaceAll(':', '-') } } }
  if (m[15] !== undefined && m[15] !== 'no info') kea.client_id = m[15]
  if (m[16] !== undefined) kea.duid = m[16]
  if (m[17] !== undefined) kea.transaction_id = m[17]
  if (m[18] !== undefined && action !== undefined) {
    const lease: Fields = m[19] === undefined ? { address: m[18] } : { prefix: m[18], prefix_length: +m[19] }
    lease.type = code.startsWith('DHCP4') ? 'V4' : m[19] === undefined ? 'IA_NA' : 'IA_PD'
    if (m[21] !== undefined) lease.lifetime = m[21] === 'infinity' ? 4294967295 : +m[21]
    kea.lease = lease
    if (m[19] === undefined) e.client = { ...(e.client as Fields | undefined), ip: m[18] }
    e.related = { ip: [m[18]] }
  }
  if (m[20] !== undefined) kea.iaid = +m[20]
  return e
}

function baselineParse (buf: Buffer): number {
  const text = buf.toString('latin1')
  let n = 0
  let start = 0
  let batch: Fields[] = []
  for (;;) {
    const nl = text.indexOf('\n', start)
    if (nl < 0) break
    batch.push(baselineEvent(text.slice(start, nl), start))
    if (batch.length >= 330) { n += batch.length; batch = [] }
    start = nl + 1
  }
  return n + batch.length
}

/** The fields both parsers must agree on, for lease lines. */
function projection (e: Fields): string {
  const g = (path: string): unknown => path.split('.').reduce<unknown>((o, k) => (o as Fields | undefined)?.[k], e)
  return JSON.stringify(['@timestamp', 'event.code', 'event.action', 'event.dataset', 'log.level', 'log.logger', 'log.offset', 'process.pid', 'process.thread.id', 'process.name',
    'client.mac', 'client.ip', 'kea.hwtype', 'kea.hwaddr', 'kea.client_id', 'kea.duid', 'kea.transaction_id', 'kea.iaid', 'kea.lease.address', 'kea.lease.prefix',
    'kea.lease.prefix_length', 'kea.lease.lifetime', 'kea.lease.type', 'related.ip'].map(g))
}

interface Result { name: string, lines: number, seconds: number, cpu: number }

async function measure (name: string, fn: () => Promise<number> | number): Promise<Result> {
  globalThis.gc?.()
  const cpu0 = process.cpuUsage()
  const t0 = process.hrtime.bigint()
  const lines = await fn()
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9
  const c = process.cpuUsage(cpu0)
  return { name, lines, seconds, cpu: (c.user + c.system) / 1e6 }
}

const input = buildInput(LINES)
const mib = input.length / 1024 / 1024
process.stdout.write(`bench/parse: ${LINES.toLocaleString('en')} real-shaped Kea 2.2 INFO lines, default file pattern, ${mib.toFixed(1)} MiB, node ${process.version}\n`)

// Before timing: keatrail parses the sample cleanly, and on every lease line the baseline
// yields the same field values (so the comparison is of equal work).
const sample = input.subarray(0, input.indexOf(10, 5_000_000) + 1)
const check: KeaEvent[] = []
await parseStream(chunks(sample), { pattern: resolvePattern('kea-file'), timeZone: 'UTC', path: 'bench.log' }, (b) => { check.push(...b) })
const notOk = check.filter((e) => e.kea.parse.status !== 'ok').length
if (notOk > 0) throw new Error(`${notOk} sample records did not parse cleanly`)
let compared = 0
for (const e of check) {
  if (e.event.code === undefined || ACTIONS[e.event.code] === undefined) continue
  const b = baselineEvent(e.event.original, e.log.offset ?? 0)
  const mine = projection(JSON.parse(JSON.stringify(e)) as Fields)
  if (projection(b) !== mine) throw new Error(`baseline differs on ${e.event.original}:\n  ${projection(b)}\n  ${mine}`)
  compared++
}
process.stdout.write(`field parity checked on ${compared.toLocaleString('en')} lease lines (${Object.keys(ACTIONS).length} message IDs)\n`)

// Warm both up (JIT), then alternate runs and keep each one's best.
await keatrail(input.subarray(0, input.indexOf(10, 20_000_000) + 1))
baselineParse(input.subarray(0, input.indexOf(10, 20_000_000) + 1))
// This machine's timings vary by ±15 % between runs: alternate the two, five runs each, and
// print the best and the median of each.
const RUNS = 5
const runs: Result[] = []
for (let r = 0; r < RUNS; r++) {
  runs.push(await measure('keatrail', async () => await keatrail(input)))
  runs.push(await measure('one-regex baseline', () => baselineParse(input)))
}
const sorted = (name: string): Result[] => runs.filter((r) => r.name === name).sort((a, b) => a.seconds - b.seconds)
const fmt = (r: Result): string => `${Math.round(r.lines / r.seconds).toLocaleString('en').padStart(9)} lines/s ${(mib / r.seconds).toFixed(1).padStart(6)} MiB/s (${r.cpu.toFixed(2)} s CPU)`
const k = sorted('keatrail')
const b = sorted('one-regex baseline')
for (const list of [k, b]) {
  for (const r of list) if (r.lines !== LINES) throw new Error(`${r.name} saw ${r.lines} lines, expected ${LINES}`)
  const name = (list[0] as Result).name
  process.stdout.write(`${name.padEnd(20)} best ${fmt(list[0] as Result)}   median ${fmt(list[Math.floor(RUNS / 2)] as Result)}\n`)
}
const ratio = (i: number): string => ((b[i] as Result).seconds / (k[i] as Result).seconds).toFixed(2)
process.stdout.write(`ratio keatrail / baseline: best ${ratio(0)}×, median ${ratio(Math.floor(RUNS / 2))}×   peak RSS ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MiB\n`)
