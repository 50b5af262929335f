import { connect } from 'node:net'
import { describe, expect, it, vi } from 'vitest'
import type { KeaEvent } from '../../src/parse/event.js'
import { Pipeline } from '../../src/pipeline/pipeline.js'
import { SyslogSource } from '../../src/sources/syslog/source.js'
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
  await vi.waitFor(() => expect(source.counters.parsed).toBe(opts.n), { timeout: 10_000 })
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
