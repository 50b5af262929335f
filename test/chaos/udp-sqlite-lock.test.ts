import { createSocket } from 'node:dgram'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { describe, expect, it } from 'vitest'
import { freePort } from '../helpers/outage.js'
import { metrics, quietThenStop, ready, sleep, sourceCounter, startKeatrail, until, writeConfig } from './harness.js'

// Chaos: another process holds the SQLite write lock (BEGIN IMMEDIATE: a sqlite3 shell, a
// backup tool) for 3 s while UDP syslog arrives. better-sqlite3 waits for a lock synchronously,
// on the event loop that reads the UDP socket: with a 5 s busy timeout nothing ran for the whole
// hold, the kernel's receive buffer overflowed (datagrams lost uncounted) and /healthz stalled.
// The service's writer now waits 100 ms and the pipeline retries: datagrams are read and spilled
// meanwhile, and every one sent is stored or counted as dropped.

const HOLD_MS = 3000
const RATE = 2000 // datagrams per second
const msg = (i: number): string => `<134>Nov 26 12:00:00 kea kea-dhcp4: INFO  [kea-dhcp4.leases.139] DHCP4_LEASE_ALLOC [hwtype=1 02:00:00:00:00:01], cid=[no info], tid=0x${i.toString(16)}: lease 192.0.2.10 has been allocated for 4000 seconds`

describe('chaos: another process holds the SQLite write lock', () => {
  it('keeps reading UDP and answering /healthz; stored + dropped = sent', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kt-chaos-lock-'))
    const port = await freePort()
    const config = writeConfig(dir, {
      // A small receive buffer: a loop frozen for the hold loses datagrams in the kernel.
      sources: [{ type: 'syslog', name: 'udp', udp: { host: '127.0.0.1', port }, timeZone: 'UTC', udpReceiveBufferBytes: 65536 }]
    })
    const kt = startKeatrail(config)
    const api = await kt.apiUrl()
    await ready(api)

    const sock = createSocket('udp4')
    let sent = 0
    let i = 0
    const send = async (n: number): Promise<void> => {
      await Promise.all(Array.from({ length: n }, async () => await new Promise<void>((resolve) => {
        sock.send(msg(i++), port, '127.0.0.1', (err) => { if (err === null) sent++; resolve() })
      })))
    }
    // Something stored first, so the store exists and the writer is warm.
    await send(100)
    expect(await until(async () => sourceCounter(await metrics(api), 'udp', 'stored') === 100, 15_000)).toBe(true)

    const holder = new Database(join(dir, 'data', 'keatrail.db'), { timeout: 5000 })
    holder.exec('BEGIN IMMEDIATE')
    const heldUntil = Date.now() + HOLD_MS
    let slowest = 0
    const probing = (async () => {
      while (Date.now() < heldUntil) {
        const t0 = Date.now()
        const r = await fetch(`${api}/healthz`)
        expect(r.status).toBe(200)
        slowest = Math.max(slowest, Date.now() - t0)
        await sleep(50)
      }
    })()
    // A bounded rate: RATE per second in 20 slices, for as long as the lock is held.
    for (let slice = 0; Date.now() < heldUntil && slice < (HOLD_MS / 50) * 2; slice++) {
      const t0 = Date.now()
      await send(RATE / 20)
      await sleep(Math.max(0, 50 - (Date.now() - t0)))
    }
    await probing
    holder.exec('COMMIT')
    holder.close()
    sock.close()

    const { stored, dropped } = await quietThenStop(kt, api, join(dir, 'data', 'keatrail.db'), 'udp', 'stored')
    process.stdout.write(`chaos SQLite lock held ${HOLD_MS} ms: sent ${sent}, stored ${stored}, dropped ${dropped}, slowest /healthz ${slowest} ms\n`)
    expect(sent).toBeGreaterThan(RATE * 2)
    // Before: 5 s busy waits froze the loop for the whole hold (/healthz ~3 s, datagrams lost uncounted).
    expect(slowest).toBeLessThan(1000)
    expect(stored + dropped).toBe(sent)
  }, 120_000)
})
