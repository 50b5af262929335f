import { execFileSync, spawn, spawnSync } from 'node:child_process'
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, writeFileSync } from 'node:fs'
import { cpus, tmpdir } from 'node:os'
import { Session } from 'node:inspector/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Client } from '@elastic/elasticsearch'
import { serveApi } from '../src/api/serve.js'
import { tuneHeap } from '../src/heap.js'
import { packageRoot } from '../src/paths.js'
import { Pipeline } from '../src/pipeline/pipeline.js'
import { FileSource } from '../src/sources/file/source.js'
import { ElasticsearchStore } from '../src/store/elasticsearch/store.js'
import { SqliteStore } from '../src/store/sqlite/store.js'
import type { Store } from '../src/store/types.js'
import { type Mix, writeKeaLog } from './lines.js'
import { constantRate, procCpuSeconds, type RateResult } from './load.js'

// bench/e2e: the same real-shaped Kea log file (default file pattern; the INFO mix and the
// DEBUG mix of real captures) through
//   keatrail  file source → parse → SQLite
//   keatrail  file source → parse → Elasticsearch
//   syslog-ng file() → regexp-parser/date-parser (header and client identifiers) → file()
//   syslog-ng file() → the same parsers → elasticsearch-http() into the same Elasticsearch
// each in its own process, timed from start until the last event is stored (syslog-ng: until
// the output file has every record / Elasticsearch counts every document). Prints events/s,
// CPU seconds per million events, peak RSS, and the keatrail/syslog-ng ratios.
// Usage: npm run bench:e2e [-- LINES] [--mix info|debug|both] [--only sqlite,es,sng-file,sng-es]
//   [--serve RATE]: the SQLite run twice, alone and with the REST API (in the same process, as
//   `keatrail run` serves it) answering RATE requests/s of mixed queries — a MAC, an address at a
//   time, an IPv4 /24 in 1 h, the newest 100 in 1 h, a phrase in 24 h, a 24 h histogram — sent
//   open loop (bench/load.ts) from this process while it ingests; prints the rate lost (issue 19:
//   ≤ 10 % at 50 requests/s) and the queries' latencies.
//   LINES default 2,000,000 per mix; ES_URL or scripts/elasticsearch.sh; syslog-ng from
//   scripts/syslog-ng.sh (Debian's packages unpacked privately). E2E_CPU_PROF=dir: a CPU profile of
//   the measured keatrail process; E2E_NODE_FLAGS="…": extra V8 flags for it; E2E_SQLITE='{json}':
//   SQLite store settings other than the defaults (src/store/sqlite/config.ts), e.g. '{"readers":{"nice":0}}'.
//   E2E_ALLOC_PROF=file: a sampling allocation profile of the measured run, collected garbage included.

const root = packageRoot()
const quiet = { info: () => {}, error: () => {} }

interface Figures { name: string, events: number, seconds: number, cpuSeconds: number, rssMiB: number, esCpuSeconds?: number, load?: RateResult }

/** keatrail in this (child) process: file source → pipeline → store, until every record is stored. */
async function measureKeatrail (kind: 'sqlite' | 'es', dir: string, log: string, records: number, esUrl: string, serve: boolean): Promise<void> {
  // As the process entry (bin/keatrail.js) does.
  tuneHeap()
  const store: Store = kind === 'sqlite'
    ? new SqliteStore({ path: join(dir, serve ? 'keatrail-serving.db' : 'keatrail.db'), ...JSON.parse(process.env.E2E_SQLITE ?? '{}') as object })
    : new ElasticsearchStore({ url: esUrl, namespace: `e2e${Date.now().toString(36)}` })
  if (store instanceof ElasticsearchStore) await store.ensureTemplates()
  // The API on this store, on loopback without keys (as bench/api's `keatrail serve`); its URL is
  // the first line out, for the driver's load.
  const api = serve
    ? await serveApi(store, { host: '127.0.0.1', port: 0, rateLimit: { max: 1_000_000_000, windowMs: 60_000, timeoutPenaltyMs: 0 } }, dir, {})
    : undefined
  if (api !== undefined) process.stdout.write(JSON.stringify({ url: api.url }) + '\n')
  // The product's defaults: file batches of the store's size (SQLite 5,000, Elasticsearch 1,000:
  // as the composition root passes it), 4 of them queued (E2E_BATCH_EVENTS, E2E_QUEUE_BATCHES:
  // candidates for other defaults).
  const batchEvents = { batchEvents: process.env.E2E_BATCH_EVENTS === undefined ? store.batchEvents : Number(process.env.E2E_BATCH_EVENTS) }
  const queueBatches = process.env.E2E_QUEUE_BATCHES === undefined ? {} : { queueBatches: Number(process.env.E2E_QUEUE_BATCHES) }
  const source = new FileSource({ type: 'file', name: 'bench', include: [log], timeZone: 'UTC', pollIntervalMs: 20, idleFlushMs: 200, ...batchEvents }, join(dir, `state-${kind}${serve ? '-serving' : ''}`), quiet)
  const pipeline = new Pipeline(store, { log: quiet, ...queueBatches })
  const stop = new AbortController()
  // E2E_ALLOC_PROF=file: a sampling profile of what the run allocates, garbage included (where
  // the collector's work comes from; a .heapprofile for Chrome DevTools). It slows the run.
  const allocProf = process.env.E2E_ALLOC_PROF === undefined ? undefined : new Session()
  if (allocProf !== undefined) {
    allocProf.connect()
    await allocProf.post('HeapProfiler.startSampling', { samplingInterval: 16_384, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true })
  }
  globalThis.gc?.()
  const cpu0 = process.cpuUsage()
  const t0 = process.hrtime.bigint()
  const running = pipeline.run([source], stop.signal)
  // Bounded: a run that stores nothing new for a minute has failed (a stale checkpoint, a stall).
  for (let last = -1, since = Date.now(); pipeline.counters.stored < records; await new Promise((resolve) => setTimeout(resolve, 50))) {
    if (pipeline.counters.stored !== last) { last = pipeline.counters.stored; since = Date.now() }
    if (Date.now() - since > 60_000) throw new Error(`keatrail ${kind}: ${last} of ${records} events stored, none for 60 s`)
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9
  const cpu = process.cpuUsage(cpu0)
  if (allocProf !== undefined) {
    const { profile } = await allocProf.post('HeapProfiler.stopSampling')
    writeFileSync(process.env.E2E_ALLOC_PROF as string, JSON.stringify(profile))
    allocProf.disconnect()
  }
  // Serving: the figures go out first, and the API stays up until the driver has stopped its load
  // and every request it sent has its answer (closing first would refuse them, 503, and count
  // them against the queries); then stdin closes.
  if (api !== undefined) {
    process.stdout.write(JSON.stringify({ name: kind, events: records, seconds, cpuSeconds: (cpu.user + cpu.system) / 1e6, rssMiB: process.resourceUsage().maxRSS / 1024 }) + '\n')
    await new Promise((resolve) => process.stdin.on('end', resolve).resume())
  }
  stop.abort()
  await running
  await api?.app.close()
  if (store instanceof ElasticsearchStore) {
    await store.refresh()
    const n = await store.count()
    if (n !== records) throw new Error(`Elasticsearch holds ${n} of ${records} events`)
  }
  await store.close()
  if (api !== undefined) return
  const f: Figures = { name: kind, events: records, seconds, cpuSeconds: (cpu.user + cpu.system) / 1e6, rssMiB: process.resourceUsage().maxRSS / 1024 }
  process.stdout.write(JSON.stringify(f) + '\n')
}

function procPeakRssMiB (pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return m === null ? 0 : Number(m[1]) / 1024
}

function esPid (): number | undefined {
  try { return Number(execFileSync('pgrep', ['-f', 'org.elasticsearch.bootstrap.Elasticsearch'], { encoding: 'utf8' }).trim().split('\n')[0]) } catch { return undefined }
}

/** syslog-ng's configuration: the same fields keatrail extracts from the header and the identifiers. */
function syslogNgConfig (prefix: string, log: string, dest: string): string {
  return `@version: 3.35
@include "${prefix}/usr/share/syslog-ng/include/scl/elasticsearch/elastic-http.conf"
options { threaded(yes); stats-freq(0); log-msg-size(262144); frac-digits(3); };
source s_kea {
  file("${log}" flags(no-parse) follow-freq(0.1) log-iw-size(20000) log-fetch-limit(1000)
       multi-line-mode(prefix-garbage) multi-line-prefix("^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:") multi-line-timeout(1));
};
parser p_kea {
  regexp-parser(prefix("kea.") patterns('(?s)^(?<ts>[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9:.]{12}) (?<level>[A-Z]+) +\\[(?<logger>[^/\\]]+)/(?<pid>[0-9]+)\\.(?<thread>[0-9]+)\\] (?<msgid>[A-Z][A-Z0-9_]+) (?<text>.*)$'));
  date-parser(format("%Y-%m-%d %H:%M:%S.%f") template("\${kea.ts}") time-zone("UTC"));
  regexp-parser(prefix("kea.") template("\${kea.text}") patterns('^(?=(?:.*?\\[hwtype=(?<hwtype>[0-9]+) (?<mac>[0-9a-f:]+)\\])?)(?=(?:.*?cid=\\[(?<cid>[^\\]]*)\\])?)(?=(?:.*?duid=\\[(?<duid>[^\\]]*)\\])?)(?=(?:.*?tid=(?<xid>0x[0-9a-f]+))?)(?=(?:.*?iaid=(?<iaid>[0-9]+))?)(?=(?:.*?(?:lease|address|prefix) (?<address>[0-9a-f.:]*[0-9a-f](?:/[0-9]+)?))?)(?=(?:.*?for (?<lifetime>[0-9]+) seconds)?)(?=(?:.*?subnet(?:-id| with ID)? (?<subnet>[0-9]+))?)'));
};
${dest}
log { source(s_kea); parser(p_kea); destination(d_out); flags(flow-control); };
`
}

async function measureSyslogNg (prefix: string, dir: string, log: string, records: number, target: { file: string } | { esUrl: string, index: string }): Promise<Figures> {
  const template = '$(format-json --scope none --key kea.* @timestamp=${ISODATE} message=${MESSAGE} host.name=${HOST})'
  const dest = 'file' in target
    ? `destination d_out { file("${target.file}" template("${template}\\n")); };`
    : `destination d_out { elasticsearch-http(url("${target.esUrl}/_bulk") index("${target.index}") type("") workers(4) batch-lines(5000) batch-timeout(1000) template("${template}")); };`
  const conf = join(dir, 'syslog-ng.conf')
  writeFileSync(conf, syslogNgConfig(prefix, log, dest))
  for (const f of ['sng.persist', 'sng.pid', 'sng.ctl']) rmSync(join(dir, f), { force: true })
  const lib = [`${prefix}/usr/lib/syslog-ng`, `${prefix}/usr/lib/x86_64-linux-gnu`, `${prefix}/lib/x86_64-linux-gnu`].join(':')
  const es = 'esUrl' in target ? new Client({ node: target.esUrl }) : undefined
  if (es !== undefined && 'index' in target) {
    await es.indices.create({ index: target.index, settings: { number_of_shards: 1, number_of_replicas: 0 } })
  }
  const pid = esPid()
  const esCpu0 = pid === undefined ? 0 : procCpuSeconds(pid)
  const t0 = process.hrtime.bigint()
  const proc = spawn(`${prefix}/usr/sbin/syslog-ng`, [`--module-path=${prefix}/usr/lib/syslog-ng/3.38`, '-F', '-f', conf, '-R', join(dir, 'sng.persist'), '-p', join(dir, 'sng.pid'), '-c', join(dir, 'sng.ctl')],
    { env: { ...process.env, LD_LIBRARY_PATH: lib }, stdio: ['ignore', 'ignore', 'inherit'] })
  let stored = 0
  let readAt = 0
  const buf = Buffer.alloc(1 << 20)
  let cpu = 0
  let rss = 0
  while (stored < records) {
    await new Promise((resolve) => setTimeout(resolve, 'file' in target ? 100 : 250))
    if (proc.exitCode !== null) throw new Error(`syslog-ng exited with ${proc.exitCode}`)
    cpu = procCpuSeconds(proc.pid as number)
    rss = procPeakRssMiB(proc.pid as number)
    if ('file' in target) {
      if (!existsSync(target.file)) continue
      const fd = openSync(target.file, 'r')
      for (let n; (n = readSync(fd, buf, 0, buf.length, readAt)) > 0; readAt += n) {
        for (let i = 0; i < n; i++) if (buf[i] === 10) stored++
      }
      closeSync(fd)
    } else if (es !== undefined) {
      stored = (await es.count({ index: target.index })).count
    }
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9
  const esCpuSeconds = pid === undefined ? undefined : procCpuSeconds(pid) - esCpu0
  proc.kill('SIGTERM')
  await new Promise((resolve) => proc.on('exit', resolve))
  await es?.close()
  return { name: 'file' in target ? 'sng-file' : 'sng-es', events: records, seconds, cpuSeconds: cpu, rssMiB: rss, ...(esCpuSeconds === undefined ? {} : { esCpuSeconds }) }
}

function keatrailPhase (kind: 'sqlite' | 'es', dir: string, log: string, records: number, esUrl: string): Figures {
  const pid = kind === 'es' ? esPid() : undefined
  const esCpu0 = pid === undefined ? 0 : procCpuSeconds(pid)
  // The heap cap every launcher of keatrail sets (npm start, the systemd unit, the image).
  // E2E_CPU_PROF=DIR: the measured process writes a V8 CPU profile there (where the time goes).
  const prof = process.env.E2E_CPU_PROF === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${process.env.E2E_CPU_PROF}`]
  // E2E_NODE_FLAGS: extra V8 flags for the measured process (candidates for the launchers' flags).
  const flags = (process.env.E2E_NODE_FLAGS ?? '').split(' ').filter((f) => f !== '')
  const r = spawnSync(process.execPath, [...prof, ...flags, '--expose-gc', '--max-old-space-size=256', fileURLToPath(import.meta.url), 'measure', kind, dir, log, String(records), esUrl],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 24 })
  if (r.status !== 0) throw new Error(`keatrail ${kind} phase failed (${r.status})`)
  const f = JSON.parse(r.stdout.trim().split('\n').pop() as string) as Figures
  return pid === undefined ? f : { ...f, esCpuSeconds: procCpuSeconds(pid) - esCpu0 }
}

/** The mixed read queries of `--serve`, over the log's span (records 7 ms apart from bench/lines' start). */
function queryMix (records: number): () => string {
  const t0 = Date.UTC(2026, 10, 1)
  const span = Math.max(1, records * 7)
  let x = 4242
  const rnd = (n: number): number => { x = (x * 1103515245 + 12345) % 2147483648; return x % n }
  const iso = (t: number): string => new Date(t).toISOString()
  // Identifiers of the INFO and DEBUG captures (test/fixtures/kea) the log repeats.
  const macs = ['00:0c:01:02:03:12', '00:0c:01:02:03:0d', '00:0c:01:02:03:0b']
  const kinds: Array<() => string> = [
    () => `/api/v1/events?q=mac:${macs[rnd(macs.length)] as string}&size=100`,
    () => `/api/v1/leases/at?address=192.0.2.${10 + rnd(40)}&time=${iso(t0 + rnd(span))}`,
    () => { const t = t0 + rnd(span); return `/api/v1/events?q=${encodeURIComponent('ip:192.0.2.0/24')}&from=${iso(t)}&to=${iso(t + 3_600_000)}&size=100` },
    () => { const t = t0 + rnd(span); return `/api/v1/events?from=${iso(t)}&to=${iso(t + 3_600_000)}&size=100` },
    () => `/api/v1/events?q=${encodeURIComponent('"was released"')}&from=${iso(t0)}&to=${iso(t0 + 86_400_000)}&size=100`,
    () => `/api/v1/stats/histogram?from=${iso(t0)}&to=${iso(t0 + 86_400_000)}&interval=1h`
  ]
  // E2E_SERVE_KINDS=0,2: only those queries of the list above (which one costs the rate).
  const chosen = process.env.E2E_SERVE_KINDS === undefined ? kinds : process.env.E2E_SERVE_KINDS.split(',').map((i) => kinds[Number(i)] as () => string)
  let k = 0
  return () => (chosen[k++ % chosen.length] as () => string)()
}

/** The SQLite run with the API serving `rate` requests/s of queryMix while it ingests. */
async function servingPhase (dir: string, log: string, records: number, rate: number): Promise<Figures> {
  const flags = (process.env.E2E_NODE_FLAGS ?? '').split(' ').filter((f) => f !== '')
  const prof = process.env.E2E_CPU_PROF === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${process.env.E2E_CPU_PROF}-serving`]
  const child = spawn(process.execPath, [...prof, ...flags, '--expose-gc', '--max-old-space-size=256', fileURLToPath(import.meta.url), 'measure', 'sqlite', dir, log, String(records), '', 'serve'],
    { stdio: ['pipe', 'pipe', 'inherit'] })
  const lines: string[] = []
  const done = new AbortController()
  let gotUrl: (url: string) => void = () => {}
  const url = new Promise<string>((resolve) => { gotUrl = resolve })
  let buffered = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    buffered += chunk
    for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
      const line = buffered.slice(0, nl)
      buffered = buffered.slice(nl + 1)
      if (line.startsWith('{"url"')) gotUrl((JSON.parse(line) as { url: string }).url)
      else { lines.push(line); done.abort() }
    }
  })
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => { gotUrl(''); resolve(code) }))
  const base = await url
  if (base === '') throw new Error('keatrail serving phase exited before listening')
  void exited.then(() => done.abort())
  // Bounded: at most 10 minutes of load; it stops when the child has stored every event (its
  // figures line), then the child closes.
  const result = await constantRate(base, rate, 600, queryMix(records), 64, done.signal)
  child.stdin.end()
  const code = await exited
  if (code !== 0) throw new Error(`keatrail serving phase failed (${code ?? 'signal'})`)
  const f = JSON.parse(lines.pop() as string) as Figures
  return { ...f, name: 'sqlite-serving', load: result }
}

const LABEL: Record<string, string> = {
  sqlite: 'keatrail  file → parse → SQLite',
  'sqlite-serving': 'keatrail  file → parse → SQLite, API serving',
  'sng-file': 'syslog-ng file → regexp → file',
  es: 'keatrail  file → parse → Elasticsearch',
  'sng-es': 'syslog-ng file → regexp → elasticsearch-http()'
}

function row (mix: string, f: Figures): string {
  const perM = (s: number): string => (s / (f.events / 1e6)).toFixed(1).padStart(8)
  return `${mix.padEnd(6)}${LABEL[f.name]?.padEnd(48)}${f.events.toLocaleString('en').padStart(10)}${f.seconds.toFixed(1).padStart(8)}${Math.round(f.events / f.seconds).toLocaleString('en').padStart(10)}` +
    `${perM(f.cpuSeconds)}${Math.round(f.events / f.cpuSeconds).toLocaleString('en').padStart(11)}${f.rssMiB.toFixed(0).padStart(8)}${f.esCpuSeconds === undefined ? '' : perM(f.esCpuSeconds)}`
}

async function driver (): Promise<void> {
  const args = process.argv.slice(2)
  const opt = (name: string): string | undefined => { const i = args.indexOf(name); return i < 0 ? undefined : args[i + 1] }
  const lines = Number(args.find((a, i) => /^\d+$/.test(a) && !['--mix', '--only', '--serve'].includes(args[i - 1] ?? '')) ?? 2_000_000)
  const serveRate = opt('--serve') === undefined ? 0 : Number(opt('--serve'))
  const mixes: Mix[] = (opt('--mix') ?? 'both') === 'both' ? ['info', 'debug'] : [opt('--mix') as Mix]
  const only = new Set((opt('--only') ?? 'sqlite,sng-file,es,sng-es').split(','))
  const needsEs = only.has('es') || only.has('sng-es')
  let esUrl = process.env.ES_URL ?? ''
  if (needsEs && esUrl === '') esUrl = execFileSync('bash', [join(root, 'scripts', 'elasticsearch.sh'), 'start'], { encoding: 'utf8' }).trim().split('\n').pop() ?? ''
  const needsSng = only.has('sng-file') || only.has('sng-es')
  const prefix = needsSng ? execFileSync('bash', [join(root, 'scripts', 'syslog-ng.sh'), 'install'], { encoding: 'utf8' }).trim() : ''
  process.stdout.write(`bench/e2e: ${lines.toLocaleString('en')} lines per mix, node ${process.version}, ${cpus().length} × ${cpus()[0]?.model ?? '?'}${needsEs ? `, Elasticsearch ${esUrl}` : ''}${needsSng ? ', syslog-ng 3.38.1 (Debian)' : ''}\n`)
  process.stdout.write(`${'mix'.padEnd(6)}${'pipeline'.padEnd(48)}${'events'.padStart(10)}${'wall s'.padStart(8)}${'events/s'.padStart(10)}${'CPU s/M'.padStart(8)}${'ev/CPU-s'.padStart(11)}${'RSS MiB'.padStart(8)}${needsEs ? 'ES CPU s/M'.padStart(11) : ''}\n`)
  const results: Array<{ mix: Mix, f: Figures }> = []
  for (const mix of mixes) {
    const dir = mkdtempSync(join(tmpdir(), 'kt-e2e-'))
    const log = join(dir, 'kea.log')
    const w = writeKeaLog(log, lines, mix)
    process.stdout.write(`${mix.toUpperCase()} mix: ${w.lines.toLocaleString('en')} lines, ${w.records.toLocaleString('en')} records (events), ${(w.bytes / 1024 / 1024).toFixed(0)} MiB\n`)
    const run = async (name: string): Promise<Figures | undefined> => {
      if (name === 'sqlite-serving') return serveRate > 0 && only.has('sqlite') ? await servingPhase(dir, log, w.records, serveRate) : undefined
      if (!only.has(name)) return undefined
      if (name === 'sqlite' || name === 'es') return keatrailPhase(name, dir, log, w.records, esUrl)
      if (name === 'sng-file') return await measureSyslogNg(prefix, dir, log, w.records, { file: join(dir, 'sng-out.ndjson') })
      return await measureSyslogNg(prefix, dir, log, w.records, { esUrl, index: `sng-e2e-${mix}-${Date.now().toString(36)}` })
    }
    for (const name of ['sqlite', 'sqlite-serving', 'sng-file', 'es', 'sng-es']) {
      const f = await run(name)
      if (f === undefined) continue
      results.push({ mix, f })
      process.stdout.write(row(mix.toUpperCase(), f) + '\n')
      const l = f.load
      if (l !== undefined) process.stdout.write(`${''.padEnd(6)}  its queries: ${l.sent.toLocaleString('en')} sent open loop at ${Math.round(l.achievedRate)}/s, ${l.ok} ok, ${l.failed} failed${l.failed > 0 ? ` (by status: ${JSON.stringify(l.failures)})` : ''}, p50 ${l.p50.toFixed(1)} ms, p99 ${l.p99.toFixed(1)} ms, max ${l.max.toFixed(1)} ms\n`)
    }
    rmSync(dir, { recursive: true, force: true })
  }
  for (const mix of mixes) {
    const get = (n: string): Figures | undefined => results.find((r) => r.mix === mix && r.f.name === n)?.f
    const perCpu = (f: Figures): number => f.events / f.cpuSeconds
    const rate = (f: Figures): number => f.events / f.seconds
    const es = get('es')
    const sngEs = get('sng-es')
    const sq = get('sqlite')
    const sngFile = get('sng-file')
    const out: string[] = []
    if (es !== undefined && sngEs !== undefined) out.push(`into Elasticsearch, events per CPU-second keatrail/syslog-ng = ${(perCpu(es) / perCpu(sngEs)).toFixed(2)}× (target ≥ 1.0), events/s ${(rate(es) / rate(sngEs)).toFixed(2)}×`)
    if (sq !== undefined && sngFile !== undefined) out.push(`keatrail→SQLite / syslog-ng→file: events/s ${(rate(sq) / rate(sngFile)).toFixed(2)}×, per CPU-second ${(perCpu(sq) / perCpu(sngFile)).toFixed(2)}×`)
    if (sq !== undefined) out.push(`SQLite ${Math.round(rate(sq)).toLocaleString('en')} events/s (target ≥ 100,000)`)
    const serving = get('sqlite-serving')
    if (sq !== undefined && serving !== undefined) out.push(`serving ${serveRate} requests/s lost ${((1 - rate(serving) / rate(sq)) * 100).toFixed(1)} % of the rate (target ≤ 10 %)`)
    if (out.length > 0) process.stdout.write(`${mix.toUpperCase()} ratios: ${out.join('; ')}\n`)
  }
}

if (process.argv[2] === 'measure') {
  const [, , , kind, dir, log, records, esUrl, serve] = process.argv
  await measureKeatrail(kind as 'sqlite' | 'es', dir as string, log as string, Number(records), esUrl ?? '', serve === 'serve')
} else {
  await driver()
}
