import { describe, expect, it } from 'vitest'
import { Backoff, retry } from '../../src/backoff.js'

describe('the backoff helper every retry loop uses', () => {
  it('doubles up to the cap and starts over after reset', () => {
    const b = new Backoff({ initialMs: 100, maxMs: 700 })
    expect([b.next(), b.next(), b.next(), b.next(), b.next()]).toEqual([100, 200, 400, 700, 700])
    b.reset()
    expect(b.next()).toBe(100)
  })

  it('jitters within its bounds', () => {
    const b = new Backoff({ initialMs: 1000, maxMs: 1000, jitter: 0.1 })
    for (let i = 0; i < 50; i++) expect(b.next()).toSatisfy((w: number) => w >= 900 && w <= 1100)
  })

  it('retry: succeeds after failures, reporting each with its wait; gives up after `retries`', async () => {
    const seen: Array<[number, number]> = []
    let calls = 0
    const r = await retry(async (attempt) => { calls++; if (attempt < 3) throw new Error(`no ${attempt}`); return 'ok' }, { initialMs: 1, maxMs: 4, onRetry: (_e, a, w) => seen.push([a, w]) })
    expect({ r, calls, seen }).toEqual({ r: 'ok', calls: 3, seen: [[1, 1], [2, 2]] })
    calls = 0
    await expect(retry(async () => { calls++; throw new Error('down') }, { initialMs: 1, maxMs: 2, retries: 2 })).rejects.toThrow('down')
    expect(calls).toBe(3)
  })

  it('retry: an abort ends the wait and rethrows', async () => {
    const stop = new AbortController()
    const p = retry(async () => { throw new Error('down') }, { initialMs: 60_000, maxMs: 60_000, signal: stop.signal, onRetry: () => { stop.abort() } })
    await expect(p).rejects.toThrow('down')
  })
})
