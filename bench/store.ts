import { execFileSync, spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Client } from '@elastic/elasticsearch'
import { Client as OsClient } from '@opensearch-project/opensearch'
import type { KeaEvent } from '../src/parse/event.js'
import { resolvePattern } from '../src/parse/patterns.js'
import { parseStream } from '../src/parse/stream.js'
import { packageRoot } from '../src/paths.js'
import { ElasticsearchStore } from '../src/store/elasticsearch/store.js'
import { SqliteStore } from '../src/store/sqlite/store.js'
import { SqliteRowStore } from '../src/store/sqlite/row-store.js'
import { keaLogChunks } from './lines.js'

// bench/store: events/s written into SQLite and into a real Elasticsearch, and the rate of a
// bare helpers.bulk loop of the same documents (the ceiling), each phase in its own process
// so its peak RSS is its own. Events are parsed before the clock starts. Elasticsearch is
// warmed up first (a fresh node's first bulk ran at under half its later rate here), then
// keatrail and the ceiling alternate for ES_ROUNDS rounds (default 2): on a VM whose timing
// varies by ±15-20 % a single pair says little, so every round's ratio is printed.
// Usage: npm run bench:store [-- EVENTS]   (default 1,000,000; ES_URL or scripts/elasticsearch.sh;
//   SQLITE_ROUNDS rounds of row layout vs block layout (raw records only, as files are stored;
//   then documents stored, as syslog and journal events are; then deflate, as a keatrail without
//   zstd-napi writes), default 2; ES_ROUNDS=0 skips Elasticsearch)

const root = packageRoot()
const EVENTS = Number((process.argv[2] === 'phase' ? process.argv[4] : process.argv[2]) ?? 1_000_000)
const ROUNDS = Math.max(0, Number(process.env.ES_ROUNDS ?? 2))
const SQLITE_ROUNDS = Math.max(0, Number(process.env.SQLITE_ROUNDS ?? 2))
/** BENCH_ENGINE=opensearch: the scale-out rounds against OpenSearch (OS_URL or scripts/opensearch.sh), its client's helpers.bulk the ceiling. */
const ENGINE = process.env.BENCH_ENGINE === 'opensearch' ? 'opensearch' as const : 'elasticsearch' as const

/** `rederivable`: as the file source and `keatrail import` parse (the block layout keeps raw records only). */
async function buildEvents (count: number, rederivable: boolean): Promise<KeaEvent[]> {
  const events: KeaEvent[] = []
  async function * chunks (): AsyncGenerator<Buffer> { yield * keaLogChunks(count, 'info', { varyMac: true }) }
  await parseStream(chunks(), { pattern: resolvePattern('kea-file'), timeZone: 'UTC', path: 'bench.log', rederivable }, (b) => { events.push(...b) })
  return events
}

/** Bytes of a store file with no event in it (the schema's tables, a 16 KiB page each), subtracted from the per-event figure. */
async function emptyBytes (name: string): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'kt-bench-'))
  const path = join(dir, 'keatrail.db')
  await new (name === 'sqlite-rows' ? SqliteRowStore : SqliteStore)({ path, readers: { workers: 0 } }).close()
  const n = statSync(path).size
  rmSync(dir, { recursive: true, force: true })
  return n
}

async function phase (name: string, esUrl: string): Promise<void> {
  // sqlite-docs: the block layout given events it must store documents for (syslog, journal).
  const events = await buildEvents(EVENTS, name !== 'sqlite-docs')
  const BATCH = 10_000
  const t0 = process.hrtime.bigint()
  let bytes: number | undefined
  if (name === 'sqlite' || name === 'sqlite-docs' || name === 'sqlite-rows' || name === 'sqlite-deflate') {
    const dir = mkdtempSync(join(tmpdir(), 'kt-bench-'))
    const path = join(dir, 'keatrail.db')
    // sqlite-deflate: the block layout as a keatrail without zstd-napi writes it.
    const store = name === 'sqlite-rows' ? new SqliteRowStore({ path }) : new SqliteStore({ path, ...(name === 'sqlite-deflate' ? { compression: 'deflate' as const } : {}) })
    for (let i = 0; i < events.length; i += BATCH) await store.write(events.slice(i, i + BATCH))
    await store.close()
    bytes = statSync(join(dir, 'keatrail.db')).size - await emptyBytes(name)
    rmSync(dir, { recursive: true, force: true })
  } else if (name === 'elasticsearch') {
    const store = new ElasticsearchStore({ url: esUrl, namespace: `benchk${Date.now().toString(36)}` }, { distribution: ENGINE })
    await store.ensureTemplates()
    // As the pipeline does: up to two batches in flight, each acknowledged on its own.
    const inFlight = new Set<Promise<unknown>>()
    for (let i = 0; i < events.length; i += BATCH) {
      if (inFlight.size >= 2) await Promise.race(inFlight)
      const p = store.write(events.slice(i, i + BATCH)).then((r) => { inFlight.delete(p); return r })
      inFlight.add(p)
    }
    await Promise.all(inFlight)
    await store.close()
  } else if (name === 'ndjson') {
    // A bulk path of keatrail's own over plain HTTP (fetch): the same documents and flush size,
    // 4 requests in flight, each document serialized once into the request body.
    const ns = `benchn${Date.now().toString(36)}`
    let ok = 0
    const send = async (body: string): Promise<void> => {
      const res = await fetch(`${esUrl}/_bulk`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson' }, body })
      const r = await res.json() as { items: Array<{ create: { status: number } }> }
      for (const it of r.items) if (it.create.status === 201) ok++
    }
    const inFlight = new Set<Promise<void>>()
    let body = ''
    for (const e of events) {
      body += `{"create":{"_index":"logs-${e.event.dataset}-${ns}","_id":${JSON.stringify(e.event.id)}}}\n${JSON.stringify({ ...e, data_stream: { type: 'logs', dataset: e.event.dataset, namespace: ns } })}\n`
      if (body.length < 5_000_000) continue
      if (inFlight.size >= 4) await Promise.race(inFlight)
      const p = send(body).then(() => { inFlight.delete(p) })
      inFlight.add(p)
      body = ''
    }
    if (body !== '') await send(body)
    await Promise.all(inFlight)
    if (ok !== events.length) throw new Error(`ndjson indexed ${ok} of ${events.length}`)
  } else {
    // The ceiling: one helpers.bulk over the same documents, same flush size and concurrency.
    const ns = `benchb${Date.now().toString(36)}`
    const datasource = events.map((e) => ({ ...e, data_stream: { type: 'logs', dataset: e.event.dataset, namespace: ns } }))
    const onDocument = (doc: KeaEvent): { create: { _index: string, _id: string } } => ({ create: { _index: `logs-${doc.event.dataset}-${ns}`, _id: doc.event.id } })
    const client = ENGINE === 'opensearch' ? new OsClient({ node: esUrl }) : new Client({ node: esUrl })
    const stats = client instanceof OsClient
      ? await client.helpers.bulk({ datasource, onDocument, flushBytes: 5_000_000, concurrency: 4 })
      : await client.helpers.bulk({ datasource, onDocument, flushBytes: 5_000_000, concurrency: 4 })
    if (stats.successful !== events.length) throw new Error(`ceiling indexed ${stats.successful} of ${events.length}`)
    await client.close()
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9
  process.stdout.write(JSON.stringify({ name, events: events.length, seconds, rssMiB: process.resourceUsage().maxRSS / 1024, bytes }) + '\n')
}

async function driver (): Promise<void> {
  const Engine = ENGINE === 'opensearch' ? 'OpenSearch' : 'Elasticsearch'
  let esUrl = (ENGINE === 'opensearch' ? process.env.OS_URL : process.env.ES_URL) ?? ''
  if (esUrl === '' && ROUNDS > 0) esUrl = execFileSync('bash', [join(root, 'scripts', `${ENGINE}.sh`), 'start'], { encoding: 'utf8' }).trim().split('\n').pop() ?? ''
  process.stdout.write(`bench/store: ${EVENTS.toLocaleString('en')} real-shaped Kea events (parsed before timing), batches of 10,000 (two in flight to ${Engine}), ${Engine} ${esUrl}\n`)
  const run = (name: string, events: number, label: string): { events: number, seconds: number, rssMiB: number, bytes?: number } => {
    const r = spawnSync(process.execPath, ['--max-old-space-size=8192', fileURLToPath(import.meta.url), 'phase', name, String(events)], {
      encoding: 'utf8', env: { ...process.env, ES_URL: esUrl }, maxBuffer: 1 << 24
    })
    if (r.status !== 0) throw new Error(`${name} phase failed: ${r.stderr}`)
    const x = JSON.parse(r.stdout.trim().split('\n').pop() as string) as { events: number, seconds: number, rssMiB: number, bytes?: number }
    process.stdout.write(`${label.padEnd(36)} ${Math.round(x.events / x.seconds).toLocaleString('en').padStart(9)} events/s  ${x.seconds.toFixed(1).padStart(6)} s  peak RSS ${x.rssMiB.toFixed(0)} MiB${x.bytes === undefined ? '' : `  file ${(x.bytes / 2 ** 20).toFixed(0)} MiB = ${Math.round(x.bytes / x.events)} bytes/event`}\n`)
    return x
  }
  // The block layout and the row layout (before issue 19) alternate: this VM's timing drifts.
  for (let round = 1; round <= SQLITE_ROUNDS; round++) {
    const rows = run('sqlite-rows', EVENTS, `keatrail → sqlite, row layout, round ${round}`)
    const blocks = run('sqlite', EVENTS, `keatrail → sqlite, block layout, round ${round}`)
    run('sqlite-docs', EVENTS, `  … documents stored, round ${round}`)
    run('sqlite-deflate', EVENTS, `  … deflate instead of zstd, round ${round}`)
    process.stdout.write(`block layout / row layout, round ${round}: ${(rows.seconds / blocks.seconds).toFixed(1)}× the rate, ${((rows.bytes ?? 0) / (blocks.bytes ?? 1)).toFixed(0)}× fewer bytes\n`)
  }
  if (ROUNDS === 0) return
  run('ceiling', Math.min(EVENTS, 200_000), `${Engine} warm-up (not counted)`)
  const ratios: number[] = []
  for (let round = 1; round <= ROUNDS; round++) {
    const k = run('elasticsearch', EVENTS, `keatrail → ${ENGINE}, round ${round}`)
    const c = run('ceiling', EVENTS, `bare helpers.bulk (ceiling), round ${round}`)
    run('ndjson', EVENTS, `bare NDJSON over fetch, round ${round}`)
    ratios.push(c.seconds / k.seconds)
  }
  const sorted = [...ratios].sort((a, b) => a - b)
  const median = sorted.length % 2 === 1 ? sorted[(sorted.length - 1) / 2] as number : ((sorted[sorted.length / 2 - 1] as number) + (sorted[sorted.length / 2] as number)) / 2
  process.stdout.write(`keatrail → ${Engine} is ${median.toFixed(2)} of the bare bulk ceiling (median of ${ROUNDS} rounds: ${ratios.map((x) => x.toFixed(2)).join(', ')})\n`)
}

if (process.argv[2] === 'phase') await phase(process.argv[3] as string, process.env.ES_URL ?? '')
else await driver()
