import { describe, expect, it, vi } from 'vitest'
import { bound, connected, running } from '../helpers/syslog.js'

// Issue 17: TCP syslog memory was unbounded: a 64 KiB read of 2-byte frames is 32k events, and
// every connection's read was parsed whole before pushing back. Over real sockets, with a
// stand-in pipeline that acknowledges slowly.

describe('syslog TCP: memory bounded across connections (issue 17 #1)', () => {
  it('holds at most maxBufferedEvents however many connections send tiny frames, pushes back, and reads every frame', async () => {
    const r = running({ tcp: { host: '127.0.0.1', port: 0 }, batchEvents: 100, maxPendingBatches: 2, maxBufferedEvents: 1000 })
    const port = await bound(r.source, 'tcp')
    let held = 0
    let peak = 0
    let acked = 0
    let seen = 0
    // The store: takes what was handed over a few batches at a time, as a slow store does.
    const store = setInterval(() => {
      for (const b of r.batches.slice(seen)) { held += b.events.length; peak = Math.max(peak, held) }
      seen = r.batches.length
      const some = r.batches.slice(acked, acked + 5)
      for (const b of some) { held -= b.events.length; b.ack() }
      acked += some.length
    }, 2)
    // Each connection: 64 KiB of 2-byte frames (one read's worth: 32k events at once in the old code).
    const CONNS = 24
    const PER = 32 * 1024
    const clients = await Promise.all(Array.from({ length: CONNS }, async () => await connected(port)))
    await Promise.all(clients.map(async (c) => { await new Promise<void>((resolve) => c.end(Buffer.from('a\n'.repeat(PER)), resolve)) }))
    try {
      // Summed per batch: flattening ~800k events every poll would slow the very reading it waits for.
      await vi.waitFor(() => expect(r.batches.reduce((n, b) => n + b.events.length, 0)).toBe(CONNS * PER), { timeout: 60_000, interval: 50 })
      // Every connection was resumed, read to its end and closed.
      await vi.waitFor(() => { for (const b of r.batches.slice(seen)) held += b.events.length; seen = r.batches.length; expect(r.events().length).toBe(CONNS * PER) }, { timeout: 10_000 })
    } finally {
      clearInterval(store)
      await r.stop()
    }
    process.stdout.write(`syslog TCP: ${CONNS} connections × ${PER} frames, peak events handed over and not acknowledged ${peak}\n`)
    expect(r.events().every((e) => e.message === 'a')).toBe(true)
    expect(peak).toBeGreaterThan(0)
    expect(peak).toBeLessThanOrEqual(1000)
  }, 90_000)
})
