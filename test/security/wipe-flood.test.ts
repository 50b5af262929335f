import { mkdtempSync } from 'node:fs'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { freePort } from '../helpers/outage.js'
import { metrics, startKeatrail, watchFlood, writeConfig } from '../chaos/harness.js'

// Security: a syslog peer can send any line, and a lease-wipe line
// (`DHCPSRV_MEMFILE_WIPE_LEASES4 … from subnet N`) reaches every open lease of its server. Each
// line of a flood was handed to every open lease as an observation: 20,000 leases and a few
// thousand forged wipe lines took `keatrail run` (heap capped at 256 MiB) out of memory.
// A batch of wipes must cost one pass over the leases, whatever the number of lines.

const LEASES = 20_000
const WIPES = 20_000
const T0 = Date.UTC(2026, 11, 1, 10)

function frame (ts: number, body: string): string {
  return `<134>1 ${new Date(ts).toISOString()} kea-a kea-dhcp4 - - - ${body}\n`
}

function address (i: number): string {
  return `10.0.${(i >> 8) & 255}.${i & 255}`
}

describe('security: a flood of forged lease-wipe lines', () => {
  it('stays up with bounded memory, stores every line, and marks the leases once', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kt-sec-wipes-'))
    const port = await freePort()
    const config = writeConfig(dir, { sources: [{ type: 'syslog', name: 'flood', tcp: { host: '127.0.0.1', port } }] })
    const kt = startKeatrail(config)
    const api = await kt.apiUrl()
    const lines: string[] = []
    for (let i = 0; i < LEASES; i++) {
      const mac = `02:00:00:00:${((i >> 8) & 255).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`
      lines.push(frame(T0 + i, `INFO  [kea-dhcp4.leases.1] DHCP4_LEASE_ALLOC [hwtype=1 ${mac}], cid=[no info], tid=0x${i.toString(16)}: lease ${address(i)} has been allocated for 86400 seconds`))
    }
    // Subnet 7: no lease names one, so every wipe meets every lease (each could be in it).
    for (let i = 0; i < WIPES; i++) lines.push(frame(T0 + 60_000 + i * 10, 'INFO  [kea-dhcp4.dhcpsrv.1] DHCPSRV_MEMFILE_WIPE_LEASES4 removing all IPv4 leases from subnet 7'))
    const total = lines.length
    const flood = watchFlood(kt, api, total, 150_000, 100)
    const started = Date.now()
    const sock = connect(port, '127.0.0.1')
    sock.on('error', () => {}) // keatrail dying resets the connection: the assertions below say so
    await new Promise<void>((resolve) => { sock.once('connect', resolve); sock.once('close', () => resolve()) })
    await new Promise<void>((resolve) => { sock.once('close', () => resolve()); sock.end(lines.join(''), resolve) })
    await flood.done
    const [peak, stored, alive] = [flood.peak(), flood.stored(), flood.alive()]
    process.stdout.write(`security wipe flood: ${LEASES} leases then ${WIPES} wipe lines in ${Date.now() - started} ms: stored ${stored}, peak RSS ${peak.toFixed(0)} MiB, alive ${String(alive)}\n`)
    expect(alive, 'keatrail survived the flood').toBe(true)
    expect(stored).toBe(total)
    expect(peak).toBeLessThanOrEqual(300)
    // Lease history took every wipe: the first marked each lease (subnet unknown), the rest changed nothing.
    const held = async (): Promise<unknown> => {
      const res = await fetch(`${api}/api/v1/leases/at?address=${address(1234)}&time=${new Date(T0 + 120_000).toISOString()}`)
      const body = await res.json() as { holders: Array<{ certainty: string, evidence: unknown[] }> }
      return body.holders.map((h) => [h.certainty, h.evidence.length])
    }
    await expect.poll(held, { timeout: 60_000, interval: 250 }).toEqual([['gap', 2]])
    expect((await metrics(api)).get('keatrail_lease_wipes_ignored_total')).toBe(0)
    kt.proc.kill('SIGTERM')
    expect(await kt.exited).toBe(0)
  }, 300_000)
})
