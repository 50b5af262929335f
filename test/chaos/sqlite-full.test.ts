import { execFileSync } from 'node:child_process'
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, statfsSync, writeSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterAll, describe, expect, it } from 'vitest'
import { writeKeaLog } from '../../bench/lines.js'
import { metrics, pipelineCounter, SOAK, sleep, startKeatrail, storedOriginals, until, writeConfig } from './harness.js'
import { COUNT_STORED_SQL } from '../helpers/stored.js'

// Chaos: keatrail's data directory (SQLite database, WAL, checkpoints) on a small tmpfs that
// fills up during ingest. It must say so with a code, lose nothing it acknowledged (the file
// checkpoint never passes what the database holds), and carry on when space returns.

const canMount = process.getuid?.() === 0

/** Fills the file system but `leaveMiB` with a ballast file. */
function fill (mount: string, leaveMiB: number): string {
  const path = join(mount, `ballast-${Date.now()}`)
  const st = statfsSync(mount)
  let left = st.bavail * st.bsize - leaveMiB * 1024 * 1024
  const block = Buffer.alloc(1024 * 1024, 1)
  const fd = openSync(path, 'w')
  try { while (left > 0) left -= writeSync(fd, block, 0, Math.min(block.length, left)) } finally { closeSync(fd) }
  return path
}

describe.skipIf(!canMount && process.env.CI !== 'true')(`chaos: SQLite on a full disk${canMount ? '' : ' (skipped: needs root to mount a tmpfs)'}`, () => {
  const mounts: string[] = []
  afterAll(() => { for (const m of mounts) execFileSync('umount', ['-l', m]) })

  it('reports the full disk, loses no acknowledged event, and recovers when space returns', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kt-chaos-full-'))
    const data = join(dir, 'data')
    mkdirSync(data)
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${SOAK ? 1500 : 200}m`, 'tmpfs', data])
    mounts.push(data)
    // 3 MiB left: creating the schema takes ~2 MiB of WAL (2.0 MiB since the chain's tables,
    // 1.9 before), and the block layout stores 30,000 INFO events and their lease history in ~10.
    let ballast = fill(data, 3)
    const log = join(dir, 'kea-dhcp4.log')
    const rounds = SOAK ? 5 : 1
    let written = writeKeaLog(log, 30_000, 'info')
    const config = writeConfig(dir, {
      sources: [{ type: 'file', name: 'kea', include: [log], timeZone: 'UTC', pollIntervalMs: 50, batchEvents: 1000 }]
    })
    const kt = startKeatrail(config)
    const api = await kt.apiUrl()
    const stored = (): number => {
      const db = new Database(join(data, 'keatrail.db'), { readonly: true })
      try { return (db.prepare(COUNT_STORED_SQL).get() as { n: number }).n } finally { db.close() }
    }
    const acknowledgedOffset = (): number => {
      try {
        const cp = JSON.parse(readFileSync(join(data, 'state', 'file-kea.json'), 'utf8')) as Record<string, { offset: number }>
        return Math.max(0, ...Object.values(cp).map((c) => c.offset))
      } catch { return 0 }
    }
    const linesUpTo = (offset: number): number => readFileSync(log).subarray(0, offset).toString('utf8').split('\n').length - 1

    for (let round = 0; round < rounds; round++) {
      expect(await until(() => kt.logs().filter((l) => /SQLITE_FULL|full/i.test(String(l.error ?? ''))).length > round, 60_000)).toBe(true)
      const full = kt.logs().filter((l) => /SQLITE_FULL|full/i.test(String(l.error ?? '')))
      expect(full[0]?.code).toBe('KEATRAIL_ERR_STORE_WRITE')
      // While it is full: what the checkpoint says is done is in the database.
      await sleep(1500)
      expect(stored()).toBeGreaterThanOrEqual(linesUpTo(acknowledgedOffset()))
      expect(pipelineCounter(await metrics(api), 'storeErrors')).toBeGreaterThan(0)

      // Space returns.
      rmSync(ballast)
      expect(await until(() => stored() === written.records, 90_000, 250), `stored ${stored()} of ${written.records}`).toBe(true)
      if (round + 1 < rounds) {
        // Fill it again: more lines than the new space holds.
        ballast = fill(data, 2)
        const more = writeKeaLog(log, 40_000, 'info', { append: true, offset: written.records })
        written = { lines: written.lines + more.lines, records: written.records + more.records, bytes: written.bytes + more.bytes }
      }
    }
    kt.proc.kill('SIGTERM')
    expect(await kt.exited).toBe(0)
    const originals = await storedOriginals(join(data, 'keatrail.db'))
    const n = originals.length
    const d = new Set(originals).size
    const codes = [...new Set(kt.logs().map((l) => l.code).filter((c) => c !== undefined))].join(', ')
    process.stdout.write(`chaos full disk: ${rounds} round(s), ${written.records} lines, stored ${n} (${d} distinct); reported ${codes}\n`)
    expect(n).toBe(written.records)
    expect(d).toBe(written.records)
    expect(acknowledgedOffset()).toBe(written.bytes)
  }, SOAK ? 900_000 : 150_000)
})
