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

// The baseline a competent developer would write first: split the text, one regex per line
// capturing header, label, address, prefix, IAID and lifetime, and an ECS-shaped object.
const ONE_REGEX = /^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})\.(\d{3}) (FATAL|ERROR|WARN|INFO|DEBUG) +\[([^/\]]+)\/(\d+)\.(\d+)\] ([A-Z][A-Z0-9_]*)(?: (?:.*?(?:\[hwtype=(\d+) ([0-9a-f:]*)\], cid=\[([^\]]*)\]|duid=\[([^\]]*)\])(?:, tid=(0x[0-9a-f]+))?)?(?:.*?(?:lease|address|addr|prefix) ([0-9a-f:.]+?)(?:\/(\d+))?(?=[ .]|$))?(?:.*?iaid=(\d+))?(?:.*?for (\d+|infinity) seconds)?.*)?$/

function baselineParse (buf: Buffer): number {
  const text = buf.toString('utf8')
  let n = 0
  let start = 0
  for (;;) {
    const nl = text.indexOf('\n', start)
    if (nl < 0) break
    const line = text.slice(start, nl)
    start = nl + 1
    const m = ONE_REGEX.exec(line)
    const e: Record<string, unknown> = { event: { original: line } }
    if (m !== null) {
      const time = Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!, +m[7]!)
      e['@timestamp'] = new Date(time).toISOString()
      e.log = { level: m[8]!.toLowerCase(), logger: m[9] }
      e.process = { pid: +m[10]!, thread: { id: +m[11]! } }
      e.event = { original: line, code: m[12] }
      const kea: Record<string, unknown> = {}
      if (m[13] !== undefined) { kea.hwtype = +m[13]; kea.hwaddr = m[14]; e.client = { mac: m[14]!.toUpperCase().replaceAll(':', '-') } }
      if (m[15] !== undefined && m[15] !== 'no info') kea.client_id = m[15]
      if (m[16] !== undefined) kea.duid = m[16]
      if (m[17] !== undefined) kea.transaction_id = m[17]
      if (m[18] !== undefined) kea.lease = m[19] === undefined ? { address: m[18] } : { prefix: m[18], prefix_length: +m[19] }
      if (m[20] !== undefined) kea.iaid = +m[20]
      if (m[21] !== undefined) {
        const lease = (kea.lease ??= {}) as Record<string, unknown>
        lease.lifetime = m[21] === 'infinity' ? 4294967295 : +m[21]
      }
      e.kea = kea
    }
    n++
  }
  return n
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

// Sanity: both parsers see every line, and keatrail's parse is clean.
const check: KeaEvent[] = []
await parseStream(chunks(input.subarray(0, input.indexOf(10, 5_000_000) + 1)), { pattern: resolvePattern('kea-file'), timeZone: 'UTC' }, (b) => { check.push(...b) })
const notOk = check.filter((e) => e.kea.parse.status !== 'ok').length
if (notOk > 0) throw new Error(`${notOk} sample records did not parse cleanly`)

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
