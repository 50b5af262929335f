import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { packageRoot } from '../src/paths.js'
import { Pipeline } from '../src/pipeline/pipeline.js'
import { FileSource } from '../src/sources/file/source.js'
import { SqliteStore } from '../src/store/sqlite/store.js'

// bench/e2e: end to end, a Kea log file → file source → parse → pipeline → SQLite, on
// real-shaped lines. Prints events/s and peak RSS. The input is written first; the pipeline
// runs in a fresh child process, so its peak RSS is the pipeline's own.
// Usage: npm run bench:e2e [-- LINES]   (default 1,000,000)

const LINES = Number((process.argv[2] === 'measure' ? process.argv[4] : process.argv[2]) ?? 1_000_000)
const root = packageRoot()
const quiet = { info: () => {}, error: () => {} }

async function measure (dir: string, log: string): Promise<void> {
  const store = new SqliteStore({ path: join(dir, 'keatrail.db') })
  const source = new FileSource({ type: 'file', name: 'bench', include: [log], timeZone: 'UTC', pollIntervalMs: 20, idleFlushMs: 200, batchEvents: 5000 }, join(dir, 'state'), quiet)
  const pipeline = new Pipeline(store, { log: quiet, queueBatches: 4 })
  const stop = new AbortController()
  globalThis.gc?.()
  const cpu0 = process.cpuUsage()
  const t0 = process.hrtime.bigint()
  const running = pipeline.run([source], stop.signal)
  while (pipeline.counters.stored < LINES) await new Promise((resolve) => setTimeout(resolve, 50))
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9
  const cpu = process.cpuUsage(cpu0)
  stop.abort()
  await running
  await store.close()
  process.stdout.write(`end to end ${Math.round(LINES / seconds).toLocaleString('en')} events/s  ${seconds.toFixed(1)} s wall  ${((cpu.user + cpu.system) / 1e6).toFixed(1)} s CPU  peak RSS ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MiB\n`)
}

if (process.argv[2] === 'measure') {
  await measure(process.argv[3] as string, join(process.argv[3] as string, 'kea-dhcp4.log'))
} else {
  const templates = ['kea-2.2.0-dhcp4-INFO-full.log', 'kea-2.2.0-dhcp6-INFO-full.log']
    .flatMap((f) => readFileSync(join(root, 'test', 'fixtures', 'kea', f), 'utf8').split('\n').filter(Boolean))
  const dir = mkdtempSync(join(tmpdir(), 'kt-e2e-'))
  const log = join(dir, 'kea-dhcp4.log')
  const parts: string[] = []
  let t = Date.UTC(2026, 10, 1)
  for (let i = 0; i < LINES; i++) {
    const tpl = templates[i % templates.length] as string
    t += 7
    parts.push(new Date(t).toISOString().replace('T', ' ').slice(0, 23) + tpl.slice(23).replace(/tid=0x[0-9a-f]+/, `tid=0x${i.toString(16)}`))
  }
  writeFileSync(log, parts.join('\n') + '\n')
  parts.length = 0
  const mib = statSync(log).size / 1024 / 1024
  process.stdout.write(`bench/e2e: ${LINES.toLocaleString('en')} real-shaped Kea 2.2 INFO lines (${mib.toFixed(1)} MiB), file source → parse → SQLite, node ${process.version}\n`)
  const r = spawnSync(process.execPath, ['--expose-gc', fileURLToPath(import.meta.url), 'measure', dir, String(LINES)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] })
  process.stdout.write(r.stdout)
  rmSync(dir, { recursive: true, force: true })
  if (r.status !== 0) process.exitCode = 1
}
