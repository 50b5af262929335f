import { mkdtempSync } from 'node:fs'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { describe, expect, it, vi } from 'vitest'
import { freePort } from '../helpers/outage.js'
import { metrics, ready, sourceCounter, startKeatrail, writeConfig } from './harness.js'
import { COUNT_STORED_SQL } from '../helpers/stored.js'

// Issue 17: "it must never lose data uncounted". A TCP syslog sender's messages are acknowledged
// by the kernel once keatrail has read them: when keatrail stops with them received but not yet
// stored (the store is locked), the drain must store them, or count them. Before, SIGTERM
// stopped queueing at once and everything not already queued vanished without a count.

const N = 600

async function sendTcp (port: number, n: number): Promise<void> {
  const sock = connect(port, '127.0.0.1')
  await new Promise<void>((resolve, reject) => { sock.once('connect', resolve); sock.once('error', reject) })
  const frames = Array.from({ length: n }, (_, i) => {
    const body = `<134>1 2026-11-26T12:00:00.000Z kea kea-dhcp4 811 - - INFO  [kea-dhcp4.leases.139] DHCP4_LEASE_ALLOC [hwtype=1 02:00:00:00:00:01], cid=[no info], tid=0x${i.toString(16)}: lease 192.0.2.10 has been allocated for 4000 seconds`
    return `${Buffer.byteLength(body)} ${body}`
  })
  await new Promise<void>((resolve) => sock.end(frames.join(''), resolve))
}

describe('chaos: SIGTERM with syslog messages received and not stored', () => {
  it.each([
    { store: 'works again once keatrail stops', drainMs: 10_000, unlock: true },
    { store: 'stays locked through the drain', drainMs: 1000, unlock: false }
  ])('stores during the drain, or counts as dropped, every message keatrail had received: the store $store', async ({ drainMs, unlock }) => {
    const dir = mkdtempSync(join(tmpdir(), 'kt-chaos-drain-'))
    const port = await freePort()
    // Room in memory for all N (2 queued + 8 waiting batches of 100): every message is received,
    // none left in the kernel's buffers, while the store writes nothing.
    const config = writeConfig(dir, {
      sources: [{ type: 'syslog', name: 'tcp', tcp: { host: '127.0.0.1', port }, timeZone: 'UTC', batchEvents: 100, maxPendingBatches: 8, flushMs: 20 }],
      pipeline: { queueBatches: 2, drainMs }
    })
    const kt = startKeatrail(config)
    const api = await kt.apiUrl()
    await ready(api)
    const dbPath = join(dir, 'data', 'keatrail.db')
    // Another process holds the write lock: keatrail's writes wait (busyTimeoutMs) and fail.
    const blocker = new Database(dbPath)
    blocker.prepare('BEGIN IMMEDIATE').run()
    let locked = true
    try {
      await sendTcp(port, N)
      await vi.waitFor(async () => { expect(sourceCounter(await metrics(api), 'tcp', 'parsed')).toBe(N) }, { timeout: 60_000, interval: 200 })
      expect(blocker.prepare(COUNT_STORED_SQL).get()).toEqual({ n: 0 })
      kt.proc.kill('SIGTERM')
      if (unlock) {
        // The store works again once keatrail is stopping: what it stores now, only the drain saved.
        await vi.waitFor(() => { expect(kt.logs().some((l) => l.msg === 'Shutting down: draining queued batches.')).toBe(true) }, { timeout: 30_000, interval: 20 })
        blocker.prepare('ROLLBACK').run()
        locked = false
      }
      expect(await kt.exited).toBe(0)
    } finally {
      if (locked) blocker.prepare('ROLLBACK').run()
      blocker.close()
      if (kt.proc.exitCode === null) kt.proc.kill('SIGKILL')
    }
    const db = new Database(dbPath, { readonly: true })
    const stored = (db.prepare(COUNT_STORED_SQL).get() as { n: number }).n
    db.close()
    const dropped = kt.logs().filter((l) => l.code === 'KEATRAIL_ERR_SHUTDOWN_DROPPED').reduce((n, l) => n + Number(l.events), 0)
    process.stdout.write(`chaos syslog shutdown: ${N} received, ${stored} stored, ${dropped} counted as dropped\n`)
    expect(stored + dropped).toBe(N)
    expect(stored).toBe(unlock ? N : 0)
  }, 120_000)
})
