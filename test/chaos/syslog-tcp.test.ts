import { mkdtempSync } from 'node:fs'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { freePort } from '../helpers/outage.js'
import { metrics, pipelineCounter, rssMiB, SOAK, startKeatrail, storedOriginals, writeConfig } from './harness.js'

// Chaos: TCP syslog clients that send faster than SQLite stores. TCP can push back, so nothing
// may be lost: keatrail stops reading a connection while its pipeline is full (the queue sits
// at its bound) and every message ends up stored once, with memory bounded.

const CLIENTS = 4

/** Frames of one client, prepared beforehand so that sending costs nothing but the write. */
function frames (client: number, count: number): Buffer[] {
  const chunks: Buffer[] = []
  let part: string[] = []
  for (let i = 0; i < count; i++) {
    const body = `<134>1 2026-11-26T12:00:00.000Z kea kea-dhcp4 811 - - INFO  [kea-dhcp4.leases.139] DHCP4_LEASE_ALLOC [hwtype=1 02:00:00:00:0${client}:01], cid=[no info], tid=0x${i.toString(16)}: lease 192.0.2.${10 + client} has been allocated for 4000 seconds`
    part.push(`${Buffer.byteLength(body)} ${body}`) // octet counting (RFC 6587)
    if (part.length === 4096) { chunks.push(Buffer.from(part.join(''))); part = [] }
  }
  if (part.length > 0) chunks.push(Buffer.from(part.join('')))
  return chunks
}

async function send (port: number, chunks: Buffer[]): Promise<void> {
  const sock = connect(port, '127.0.0.1')
  await new Promise<void>((resolve, reject) => { sock.once('connect', resolve); sock.once('error', reject) })
  // write() returning false is TCP pushing back.
  for (const c of chunks) if (!sock.write(c)) await new Promise((resolve) => sock.once('drain', resolve))
  await new Promise<void>((resolve) => sock.end(resolve))
}

describe('chaos: TCP syslog clients faster than the store', () => {
  it('pushes back and stores every message once, with memory bounded', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kt-chaos-tcp-'))
    const port = await freePort()
    const config = writeConfig(dir, {
      sources: [{ type: 'syslog', name: 'tcp', tcp: { host: '127.0.0.1', port }, batchEvents: 500, maxPendingBatches: 2 }],
      pipeline: { queueBatches: 2 }
    })
    const kt = startKeatrail(config)
    const api = await kt.apiUrl()
    const perClient = SOAK ? 1_000_000 : 100_000

    let peakRss = 0
    let storedAll = false
    const total = CLIENTS * perClient
    const sampler = (async () => {
      while (!storedAll) {
        const m = await metrics(api)
        peakRss = Math.max(peakRss, rssMiB(kt.proc.pid as number))
        storedAll = pipelineCounter(m, 'stored') >= total
        await new Promise((resolve) => setTimeout(resolve, 50))
      }
    })()
    const data = Array.from({ length: CLIENTS }, (_, c) => frames(c, perClient))
    const started = Date.now()
    await Promise.all(data.map(async (chunks) => await send(port, chunks)))
    const sentIn = Date.now() - started
    await Promise.race([sampler, new Promise((resolve) => setTimeout(resolve, SOAK ? 600_000 : 90_000))])
    const storedIn = Date.now() - started
    expect(storedAll).toBe(true)
    const backpressured = pipelineCounter(await metrics(api), 'backpressured')
    kt.proc.kill('SIGTERM')
    expect(await kt.exited).toBe(0)
    const originals = await storedOriginals(join(dir, 'data', 'keatrail.db'))
    const n = originals.length
    const distinct = new Set(originals).size
    process.stdout.write(`chaos TCP: ${CLIENTS} clients × ${perClient} messages sent in ${sentIn} ms, stored in ${storedIn} ms: ${n} (${distinct} distinct), ${backpressured} batches waited for room in the queue, peak RSS ${peakRss.toFixed(0)} MiB\n`)
    expect(n).toBe(total)
    expect(distinct).toBe(total)
    expect(backpressured, 'the pipeline filled up: the clients were faster than the store').toBeGreaterThan(0)
    expect(peakRss).toBeLessThan(300)
  }, SOAK ? 900_000 : 120_000)
})
