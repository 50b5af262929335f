import { mkdtempSync } from 'node:fs'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { describe, expect, it } from 'vitest'
import { freePort } from '../helpers/outage.js'
import { startKeatrail, watchFlood, writeConfig } from '../chaos/harness.js'
import { COUNT_STORED_SQL } from '../helpers/stored.js'

// Security (issue 17): anyone who can reach the syslog TCP port can send 2-byte frames ("a\n").
// One 64 KiB read is 32k events; parsing whole reads from 16 connections before pushing back
// took `keatrail run` (heap capped at 256 MiB, as deployed) out of memory. Memory must stay
// bounded across connections and TCP must lose nothing: keatrail stops reading instead.

const CONNECTIONS = 16
/** Per connection: two 64 KiB reads' worth (the old code blew up on the first). */
const BYTES = 128 * 1024
const FRAMES = BYTES / 2

describe('security: TCP syslog flood of tiny frames', () => {
  it('keeps RSS bounded, stays up and stores every frame', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kt-sec-flood-'))
    const port = await freePort()
    const config = writeConfig(dir, { sources: [{ type: 'syslog', name: 'flood', tcp: { host: '127.0.0.1', port } }] })
    const kt = startKeatrail(config)
    const api = await kt.apiUrl()
    const total = CONNECTIONS * FRAMES
    const flood = watchFlood(kt, api, total, 100_000)
    const started = Date.now()
    const payload = Buffer.from('a\n'.repeat(FRAMES))
    await Promise.all(Array.from({ length: CONNECTIONS }, async () => {
      const sock = connect(port, '127.0.0.1')
      sock.on('error', () => {}) // keatrail dying resets the connection: the assertions below say so
      await new Promise<void>((resolve) => { sock.once('connect', resolve); sock.once('close', () => resolve()) })
      await new Promise<void>((resolve) => { sock.once('close', () => resolve()); sock.end(payload, resolve) })
    }))
    await flood.done
    const [peak, stored, alive] = [flood.peak(), flood.stored(), flood.alive()]
    process.stdout.write(`security TCP flood: ${CONNECTIONS} connections × ${FRAMES} frames of "a\\n" (${total} events) in ${Date.now() - started} ms: stored ${stored}, peak RSS ${peak.toFixed(0)} MiB, alive ${String(alive)}\n`)
    expect(alive, 'keatrail survived the flood').toBe(true)
    expect(peak).toBeLessThanOrEqual(300)
    expect(stored).toBe(total)
    kt.proc.kill('SIGTERM')
    expect(await kt.exited).toBe(0)
    const db = new Database(join(dir, 'data', 'keatrail.db'), { readonly: true })
    const rows = (db.prepare(COUNT_STORED_SQL).get() as { n: number }).n
    db.close()
    expect(rows).toBe(total)
  }, 150_000)
})
