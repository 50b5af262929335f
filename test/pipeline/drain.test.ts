import { createSocket } from 'node:dgram'
import { mkdtempSync } from 'node:fs'
import { connect, createServer, type AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it, vi } from 'vitest'
import type { KeaEvent } from '../../src/parse/event.js'
import { Pipeline } from '../../src/pipeline/pipeline.js'
import { SpillQueue } from '../../src/pipeline/spill.js'
import { SyslogSource } from '../../src/sources/syslog/source.js'
import { ElasticsearchStore } from '../../src/store/elasticsearch/store.js'
import type { Store, WriteResult } from '../../src/store/types.js'

// Issue 17: "it must never lose data uncounted". Syslog senders cannot be asked to send again:
// what the syslog source has received when keatrail stops must be stored during the drain, or
// counted as dropped and recorded as a collection gap. Before, the pipeline stopped queueing
// at the stop signal, so the batches waiting for room and the open batch vanished uncounted.

const LEASE = 'INFO  [kea-dhcp4.leases.139] DHCP4_LEASE_ALLOC [hwtype=1 02:00:00:00:00:01], cid=[no info], tid=0x1: lease 192.0.2.10 has been allocated for 4000 seconds'

/**
 * A stand-in store: while `busy` its writes fail the way a locked SQLite does, then each write
 * takes `writeMs`.
 */
function slowStore (writeMs: number): { store: Store, stored: KeaEvent[], ready: () => void } {
  let busy = true
  const stored: KeaEvent[] = []
  const store = {
    write: async (events: readonly KeaEvent[]): Promise<WriteResult> => {
      if (busy) throw Object.assign(new Error('database is locked'), { code: 'SQLITE_BUSY' })
      await new Promise((resolve) => setTimeout(resolve, writeMs))
      stored.push(...events)
      return { written: events.length, duplicates: 0, deadLettered: 0 }
    }
  }
  return { store: store as unknown as Store, stored, ready: () => { busy = false } }
}

/** Sends `n` octet-counted messages over one TCP connection and closes it. */
async function sendTcp (port: number, n: number): Promise<void> {
  const sock = connect(port, '127.0.0.1')
  await new Promise<void>((resolve, reject) => { sock.once('connect', resolve); sock.once('error', reject) })
  const frames = Array.from({ length: n }, (_, i) => {
    const body = `<134>1 2026-11-26T12:00:00.000Z kea kea-dhcp4 811 - - ${LEASE} #${i}`
    return `${Buffer.byteLength(body)} ${body}`
  })
  await new Promise<void>((resolve) => sock.end(frames.join(''), resolve))
}

async function scenario (opts: { n: number, writeMs: number, drainMs: number }): Promise<{ stored: KeaEvent[], source: SyslogSource, losses: number[], logs: Array<[string, Record<string, unknown> | undefined]> }> {
  const { store, stored, ready } = slowStore(opts.writeMs)
  const losses: number[] = []
  const logs: Array<[string, Record<string, unknown> | undefined]> = []
  const log = { info: () => {}, error: (code: string, _msg: string, f?: Record<string, unknown>) => { logs.push([code, f]) } }
  // Room for every message in memory (2 queued + 8 waiting batches of 100): all are received,
  // none is left in the kernel's buffers, before the stop.
  const source = new SyslogSource({ type: 'syslog', name: 'tcp', tcp: { host: '127.0.0.1', port: 0 }, timeZone: 'UTC', batchEvents: 100, maxPendingBatches: 8, flushMs: 20 },
    undefined, (_from, _to, count) => { losses.push(count) })
  const pipeline = new Pipeline(store, { log, queueBatches: 2, drainMs: opts.drainMs })
  const stop = new AbortController()
  const running = pipeline.run([source], stop.signal)
  await vi.waitFor(() => expect(source.bound.tcp).toBeDefined())
  await sendTcp(source.bound.tcp as number, opts.n)
  // Received, every one: the store has not written any of them.
  await vi.waitFor(() => expect(pipeline.sourceFlow(source.name).events).toBe(opts.n), { timeout: 10_000 })
  expect(stored).toHaveLength(0)
  stop.abort()
  // The store recovers only now: what it writes during the drain is what the drain saves.
  ready()
  await running
  return { stored, source, losses, logs }
}

describe('shutdown drain: a source that cannot replay', () => {
  it('stores during the drain every message it had received', async () => {
    const n = 600
    const { stored, source, losses, logs } = await scenario({ n, writeMs: 1, drainMs: 10_000 })
    expect(new Set(stored.map((e) => e.event.original)).size).toBe(n)
    expect(stored).toHaveLength(n)
    expect(source.counters.dropped).toBe(0)
    expect(losses).toEqual([])
    expect(logs.filter(([code]) => code === 'KEATRAIL_ERR_SHUTDOWN_DROPPED')).toEqual([])
  })

  it('counts as dropped exactly what the drain could not store, records it as a gap and logs it', async () => {
    const n = 600
    // About three writes fit in the drain: some batches are stored, the others are not.
    const { stored, source, losses, logs } = await scenario({ n, writeMs: 300, drainMs: 800 })
    process.stdout.write(`shutdown drain: ${n} received, ${stored.length} stored, ${source.counters.dropped} dropped\n`)
    expect(stored.length).toBeGreaterThan(0)
    expect(source.counters.dropped).toBeGreaterThan(0)
    expect(stored.length + source.counters.dropped).toBe(n)
    expect(new Set(stored.map((e) => e.event.original)).size).toBe(stored.length)
    // The source reports its drops at checkpoint() (called by the pipeline as it stops) at the latest.
    expect(losses.reduce((a, b) => a + b, 0)).toBe(source.counters.dropped)
    const dropLogs = logs.filter(([code]) => code === 'KEATRAIL_ERR_SHUTDOWN_DROPPED')
    expect(dropLogs).toEqual([['KEATRAIL_ERR_SHUTDOWN_DROPPED', { source: 'tcp', batches: expect.any(Number) as number, events: source.counters.dropped }]])
  })
})

describe('shutdown drain: a paused TCP connection', () => {
  it('hands over the messages it had read before the stop', async () => {
    const { store, stored, ready } = slowStore(1)
    const source = new SyslogSource({ type: 'syslog', name: 'tcp', tcp: { host: '127.0.0.1', port: 0 }, timeZone: 'UTC', batchEvents: 10, maxPendingBatches: 1, maxBufferedEvents: 50, flushMs: 20 })
    const pipeline = new Pipeline(store, { log: { info: () => {}, error: () => {} }, queueBatches: 1, drainMs: 10_000 })
    const stop = new AbortController()
    const running = pipeline.run([source], stop.signal)
    await vi.waitFor(() => expect(source.bound.tcp).toBeDefined())
    // One read is far more than 50 events: the connection is paused with the rest of the read in hand.
    void sendTcp(source.bound.tcp as number, 2000).catch(() => {})
    await vi.waitFor(() => expect(pipeline.sourceFlow(source.name).events).toBeGreaterThanOrEqual(20), { timeout: 10_000 })
    const before = pipeline.sourceFlow(source.name).events
    stop.abort()
    ready()
    await running
    process.stdout.write(`shutdown drain (paused TCP): ${before} messages parsed at the stop, ${pipeline.sourceFlow(source.name).events} after the drain, ${stored.length} stored\n`)
    // What the connection had read was parsed and stored during the drain (what was still in the
    // kernel's buffer is not: documented).
    expect(pipeline.sourceFlow(source.name).events).toBeGreaterThan(before)
    expect(stored).toHaveLength(pipeline.sourceFlow(source.name).events)
    expect(source.counters.dropped).toBe(0)
  })
})

describe('shutdown drain: UDP syslog', () => {
  it('counts the datagrams it took off the socket and could not store; spilled ones stay spilled and are stored next start', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kt-drain-udp-'))
    const config = { type: 'syslog' as const, name: 'u', udp: { host: '127.0.0.1', port: 0 }, timeZone: 'UTC', flushMs: 10, batchEvents: 20, maxPendingBatches: 2 }
    const quiet = { info: () => {}, error: () => {} }
    // First run: the store writes nothing at first, so what does not fit in memory is spilled.
    const first = slowStore(200)
    const losses: number[] = []
    const source = new SyslogSource(config, join(dir, 'state'), (_f, _t, n) => { losses.push(n) })
    const pipeline = new Pipeline(first.store, { log: quiet, queueBatches: 1, drainMs: 300 })
    const stop = new AbortController()
    const running = pipeline.run([source], stop.signal)
    await vi.waitFor(() => expect(source.bound.udp).toBeDefined())
    const client = createSocket('udp4')
    const sent = 300
    for (let i = 0; i < sent; i++) {
      await new Promise<void>((resolve) => client.send(`<134>Nov 24 09:23:04 kea-dhcp4: ${LEASE} #${i}`, source.bound.udp, '127.0.0.1', () => resolve()))
      // Paced, so that the socket's buffer does not overflow (the kernel's drops would be counted too).
      if (i % 50 === 0) await new Promise((resolve) => setImmediate(resolve))
    }
    client.close()
    // Once full it stays full (nothing is stored): every later datagram is spilled, none taken back.
    await vi.waitFor(() => expect(pipeline.sourceFlow(source.name).events + source.counters.spilled + source.counters.dropped).toBe(sent), { timeout: 10_000 })
    expect(source.counters.spilled).toBeGreaterThan(0)
    const direct = pipeline.sourceFlow(source.name).events
    // The store writes again, slowly: spilled datagrams go into batches; stop while they are in flight.
    first.ready()
    await vi.waitFor(() => expect(pipeline.sourceFlow(source.name).events).toBeGreaterThan(direct + 20), { timeout: 10_000 })
    stop.abort()
    await running
    const q = new SpillQueue(join(dir, 'state', 'spill-u.db'), 1)
    const left = q.count()
    q.close()
    process.stdout.write(`shutdown drain (UDP): ${sent} sent, ${direct} taken off the socket, ${first.stored.length} stored, ${source.counters.dropped} dropped at shutdown, ${left} left spilled\n`)
    expect(left).toBeGreaterThan(0)
    // Only what came straight off the socket counts as dropped: a spilled datagram is still on disk.
    expect(first.stored.length + source.counters.dropped + left).toBe(sent)
    expect(losses.reduce((a, b) => a + b, 0)).toBe(source.counters.dropped)

    // Next start: the spilled datagrams are read again and stored, the dropped ones are not.
    const next = slowStore(1)
    next.ready()
    const again = new SyslogSource(config, join(dir, 'state'))
    const p2 = new Pipeline(next.store, { log: quiet })
    const stop2 = new AbortController()
    const running2 = p2.run([again], stop2.signal)
    await vi.waitFor(() => expect(next.stored).toHaveLength(left), { timeout: 10_000 })
    stop2.abort()
    await running2
    expect(next.stored).toHaveLength(left)
    const all = [...first.stored, ...next.stored].map((e) => e.event.original)
    expect(new Set(all).size).toBe(all.length)
    expect(all.length + source.counters.dropped).toBe(sent)
  })
})

describe('shutdown drain: a cluster that does not answer', () => {
  it('ends at its deadline and counts as dropped what a source that cannot replay had handed over', async () => {
    // A port nothing listens on: every request of the real Elasticsearch store is refused, and
    // its write retries until something ends it. Before, only close() did, which came after the
    // drain: the drain waited for ever and nothing was counted.
    const closed = createServer()
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve))
    const port = (closed.address() as AddressInfo).port
    await new Promise((resolve) => closed.close(resolve))
    const store = new ElasticsearchStore({ url: `http://127.0.0.1:${port}`, namespace: 'drain', retry: { initialMs: 20, maxMs: 100 } })
    const losses: number[] = []
    const logs: string[] = []
    const log = { info: () => {}, error: (code: string) => { logs.push(code) } }
    const source = new SyslogSource({ type: 'syslog', name: 'tcp', tcp: { host: '127.0.0.1', port: 0 }, timeZone: 'UTC', batchEvents: 100, maxPendingBatches: 8, flushMs: 20 },
      undefined, (_from, _to, count) => { losses.push(count) })
    const pipeline = new Pipeline(store, { log, queueBatches: 2, drainMs: 300 })
    const stop = new AbortController()
    const running = pipeline.run([source], stop.signal)
    try {
      await vi.waitFor(() => expect(source.bound.tcp).toBeDefined())
      const n = 500
      await sendTcp(source.bound.tcp as number, n)
      await vi.waitFor(() => expect(pipeline.sourceFlow(source.name).events).toBe(n), { timeout: 10_000 })
      stop.abort()
      const ended = await Promise.race([running.then(() => true), new Promise((resolve) => setTimeout(resolve, 10_000, false))])
      expect(ended).toBe(true)
      expect(source.counters.dropped).toBe(n)
      expect(losses.reduce((a, b) => a + b, 0)).toBe(n)
      expect(logs).toContain('KEATRAIL_ERR_SHUTDOWN_DROPPED')
    } finally {
      await store.close()
      await running.catch(() => {})
    }
  })
})
