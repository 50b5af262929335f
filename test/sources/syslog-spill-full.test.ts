import { execFileSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it, vi } from 'vitest'
import { SpillQueue } from '../../src/pipeline/spill.js'
import { bound, canMount, fill, running, send } from '../helpers/syslog.js'

// Issue 17: the UDP spill queue on a full disk (a tmpfs filled with a ballast file).

describe.skipIf(!canMount && process.env.CI !== 'true')(`syslog spill queue on a full disk (issue 17 #2)${canMount ? '' : ' (skipped: needs root to mount a tmpfs)'}`, () => {
  const mounts: string[] = []
  afterAll(() => { for (const m of mounts) execFileSync('umount', ['-l', m]) })
  function tmpfs (): string {
    const dir = mkdtempSync(join(tmpdir(), 'kt-spill-full-'))
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', dir])
    mounts.push(dir)
    return dir
  }

  it('SpillQueue never throws on a full disk (open, push, take, release) and works again when space returns', async () => {
    const dir = tmpfs()
    const errors: string[] = []
    const q = new SpillQueue(join(dir, 'a', 'spill.db'), 1024 * 1024, (op, err) => errors.push(`${op}: ${err.message}`))
    expect(q.push(Buffer.from('first'), '127.0.0.1', 1)).toBe(true)
    const ballast = fill(dir)
    let refused = 0
    for (let i = 0; i < 2000 && refused === 0; i++) if (!q.push(Buffer.alloc(512, 0x61), '127.0.0.1', 2)) refused++
    expect(refused).toBe(1)
    expect(errors.some((e) => /^write: .*(full|disk)/i.test(e))).toBe(true)
    const rows = q.take(10_000)
    expect(rows[0]?.data.toString()).toBe('first')
    expect(() => q.release(rows[rows.length - 1]?.seq ?? 0)).not.toThrow()
    // A queue opened on the full disk (a restart): no throw, nothing kept, opened later.
    const late = new SpillQueue(join(dir, 'b', 'spill.db'), 1024 * 1024, (op, err) => errors.push(`${op}: ${err.message}`))
    expect(late.push(Buffer.from('x'), '127.0.0.1', 3)).toBe(false)
    expect(errors.some((e) => e.startsWith('open: '))).toBe(true)
    rmSync(ballast)
    expect(q.push(Buffer.from('after'), '127.0.0.1', 4)).toBe(true)
    await vi.waitFor(() => expect(late.push(Buffer.from('x'), '127.0.0.1', 5)).toBe(true), { timeout: 5000, interval: 200 })
    expect(q.take(10).map((r) => r.data.toString())).toEqual(['after'])
    q.close()
    late.close()
  })

  it('a datagram the full disk cannot spill is a counted drop and a reported loss, not a crash', async () => {
    const dir = tmpfs()
    const state = join(dir, 'state')
    mkdirSync(state)
    const losses: Array<[number, number, number]> = []
    // The pipeline never takes the batch: everything after the first batch must spill.
    let handed = 0
    const r = running({ udp: { host: '127.0.0.1', port: 0 }, batchEvents: 10, maxPendingBatches: 1, spillMaxBytes: 64 * 1024 * 1024 },
      { stateDir: state, onLoss: (from, to, n) => losses.push([from, to, n]), emit: async (b) => { handed += b.events.length; await new Promise(() => {}) } })
    const port = await bound(r.source, 'udp')
    const ballast = fill(dir)
    const SENT = 300
    for (let i = 0; i < SENT; i++) await send(port, `<134>Nov 24 09:23:04 kea-dhcp4: INFO  [kea-dhcp4.dhcp4.1] DHCP4_STARTED datagram ${i} ${'x'.repeat(400)}`)
    await vi.waitFor(() => expect(handed + r.source.counters.spilled + r.source.counters.dropped).toBe(SENT), { timeout: 10_000 })
    expect(r.source.counters.dropped).toBeGreaterThan(0)
    expect(r.logs.some((l) => l[0] === 'KEATRAIL_ERR_SYSLOG_SPILL')).toBe(true)
    rmSync(ballast)
    // Space again: the spill queue takes datagrams again.
    const spilled = r.source.counters.spilled
    await vi.waitFor(async () => {
      await send(port, '<134>Nov 24 09:23:04 kea-dhcp4: INFO  [kea-dhcp4.dhcp4.1] DHCP4_STARTED later')
      expect(r.source.counters.spilled).toBeGreaterThan(spilled)
    }, { timeout: 5000, interval: 100 })
    await r.stop()
    // Nothing is stored (so a gap could not be recorded either) until shutdown, when the
    // pipeline calls checkpoint(): every drop is handed on then at the latest.
    r.source.checkpoint()
    expect(losses.reduce((n, l) => n + l[2], 0)).toBe(r.source.counters.dropped)
  })
})

describe('syslog dropped datagrams: the collection gap', () => {
  it('is reported once the store writes again, and again later if recording it failed', async () => {
    const calls: Array<[number, number, number]> = []
    let fail = true
    const onLoss = async (from: number, to: number, n: number): Promise<void> => {
      calls.push([from, to, n])
      if (fail) { fail = false; throw new Error('database or disk is full') }
    }
    // One event in memory at most and no spill queue: while the first batch is not stored, every
    // other datagram is dropped.
    const r = running({ udp: { host: '127.0.0.1', port: 0 }, batchEvents: 1, maxPendingBatches: 1, maxBufferedEvents: 1, spillMaxBytes: 0 }, { onLoss })
    const port = await bound(r.source, 'udp')
    try {
      for (let i = 0; i < 20; i++) await send(port, `<134>Nov 24 09:23:04 kea-dhcp4: INFO  [kea-dhcp4.dhcp4.1] DHCP4_STARTED datagram ${i}`)
      await vi.waitFor(() => expect(r.events().length + r.source.counters.dropped).toBe(20))
      expect(r.source.counters.dropped).toBe(19)
      expect(calls).toEqual([])
      r.batches[0]?.ack()
      // First attempt fails (logged), the retry a second later records all 19.
      await vi.waitFor(() => expect(calls).toHaveLength(2), { timeout: 5000 })
      expect(calls[1]?.[2]).toBe(19)
      expect((calls[1]?.[0] ?? 0) <= (calls[1]?.[1] ?? 0)).toBe(true)
      expect(r.logs.find((l) => l[0] === 'KEATRAIL_ERR_SYSLOG_GAP')?.[2]).toMatchObject({ count: 19, error: 'database or disk is full' })
    } finally {
      await r.stop()
    }
  })
})
