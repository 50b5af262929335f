import { createSocket } from 'node:dgram'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { describe, expect, it } from 'vitest'
import { freePort } from '../helpers/outage.js'
import { quietThenStop, ready, SOAK, startKeatrail, writeConfig } from './harness.js'

// Chaos: UDP cannot push back. A sender floods keatrail's syslog port far faster than SQLite
// stores, with a small socket buffer and no spill queue, so datagrams are lost, in the kernel
// (receive buffer full) and in keatrail (pipeline full). The loss must be counted exactly:
// sent − stored = the `dropped` counter.

describe('chaos: UDP syslog flood', () => {
  it('counts every datagram it loses: sent − stored = dropped', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kt-chaos-udp-'))
    const port = await freePort()
    const config = writeConfig(dir, {
      sources: [{ type: 'syslog', name: 'flood', udp: { host: '127.0.0.1', port }, timeZone: 'UTC', spillMaxBytes: 0, udpReceiveBufferBytes: 65536, maxPendingBatches: 2, batchEvents: 500 }],
      pipeline: { queueBatches: 2 }
    })
    const kt = startKeatrail(config)
    const api = await kt.apiUrl()
    // Not before the UDP port is bound: what is sent earlier is lost before keatrail can count it.
    await ready(api)

    const total = SOAK ? 1_000_000 : 100_000
    const sock = createSocket('udp4')
    let sent = 0
    let failed = 0
    for (let i = 0; i < total; i += 1000) {
      // 1000 sends in flight, then wait for them: as fast as the sender can, bounded.
      await Promise.all(Array.from({ length: Math.min(1000, total - i) }, async (_, k) => await new Promise<void>((resolve) => {
        const msg = `<134>Nov 26 12:00:00 kea kea-dhcp4: INFO  [kea-dhcp4.leases.139] DHCP4_LEASE_ALLOC [hwtype=1 02:00:00:00:00:01], cid=[no info], tid=0x${(i + k).toString(16)}: lease 192.0.2.10 has been allocated for 4000 seconds`
        sock.send(msg, port, '127.0.0.1', (err) => { if (err === null) sent++; else failed++; resolve() })
      })))
    }
    sock.close()

    // Quiet: nothing more read or dropped for a second, nothing queued.
    const { stored, dropped } = await quietThenStop(kt, api, join(dir, 'data', 'keatrail.db'), 'flood', 'parsed')
    const db = new Database(join(dir, 'data', 'keatrail.db'), { readonly: true })
    const gapCount = (db.prepare('SELECT reason FROM gaps').all() as Array<{ reason: string }>)
      .reduce((n, g) => n + Number(/dropped (\d+) datagram/.exec(g.reason)?.[1] ?? 0), 0)
    db.close()
    process.stdout.write(`chaos UDP flood: sent ${sent} (send errors ${failed}), stored ${stored}, dropped ${dropped}, recorded as collection gaps ${gapCount}\n`)
    expect(sent + failed).toBe(total)
    expect(dropped, 'the flood lost datagrams (otherwise this proves nothing)').toBeGreaterThan(0)
    expect(sent - stored).toBe(dropped)
    expect(gapCount).toBe(dropped)
  }, SOAK ? 900_000 : 120_000)
})
