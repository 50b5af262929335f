import { spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { packageRoot } from '../src/paths.js'
import { fillOnce, ip, shape, STEPS, T0 } from './generate.js'

// bench/attribute (issue 22): `keatrail lease attribute` answering ROWS rows of address and
// time (an abuse desk's batch) against a store of EVENTS events (bench/generate: 10 events per
// lease interval, EVENTS/100 addresses), as a process, the way an operator runs it. Prints the
// wall time, rows/s, peak RSS and how the rows were answered.
//
// Usage: npm run bench:attribute [-- EVENTS [ROWS]]   (default 10,000,000 and 100,000)
//        KEATRAIL_BENCH_DIR=dir: reuse (or keep) the data directory (dir/keatrail.db), as bench/api.
//        BENCH_ATTRIBUTE_ARGS="--mmap-mib 0": options added to the command.

const EVENTS = Number(process.argv[2] ?? 10_000_000)
const ROWS = Number(process.argv[3] ?? 100_000)
const s = shape(EVENTS)
const dataDir = process.env.KEATRAIL_BENCH_DIR ?? mkdtempSync(join(tmpdir(), 'kt-bench-attribute-'))
mkdirSync(dataDir, { recursive: true })
await fillOnce(dataDir, s)
// Rows at random addresses and times over the whole log (deterministic), a tenth outside it.
let seed = 42
const rnd = (): number => { seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31; return seed / 2 ** 31 }
const span = s.rounds * STEPS * s.stepS * 1000
const lines = ['ip,timestamp,ticket']
for (let i = 0; i < ROWS; i++) {
  const t = T0 + Math.floor((rnd() * 1.1 - 0.05) * span)
  lines.push(`${ip(Math.floor(rnd() * s.addresses))},${new Date(t).toISOString()},T-${i}`)
}
const csv = join(dataDir, 'report.csv')
writeFileSync(csv, lines.join('\n') + '\n')
const t0 = process.hrtime.bigint()
// BENCH_ATTRIBUTE_ARGS: more options for the command (e.g. "--mmap-mib 0", to compare).
const extra = (process.env.BENCH_ATTRIBUTE_ARGS ?? '').split(' ').filter((x) => x !== '')
const r = spawnSync('/usr/bin/time', ['-f', '%M', process.execPath, join(packageRoot(), 'bin', 'keatrail.js'), 'lease', 'attribute', '--data-dir', dataDir, ...extra, csv], { encoding: 'utf8', maxBuffer: 1 << 30 })
const seconds = Number(process.hrtime.bigint() - t0) / 1e9
if (r.status !== 0) throw new Error(`lease attribute failed (${r.status}): ${r.stderr}`)
const err = r.stderr.trim().split('\n')
const rssMiB = Number(err[err.length - 1]) / 1024
const out = r.stdout.trimEnd().split('\n')
if (out.length !== ROWS + 1) throw new Error(`${out.length - 1} rows answered of ${ROWS}`)
process.stdout.write(`bench/attribute: ${ROWS.toLocaleString('en')} rows against ${EVENTS.toLocaleString('en')} events (${s.addresses.toLocaleString('en')} addresses): ` +
  `${seconds.toFixed(1)} s, ${Math.round(ROWS / seconds).toLocaleString('en')} rows/s, peak RSS ${rssMiB.toFixed(0)} MiB; ${err.find((l) => l.startsWith('attributed')) ?? ''}\n`)

