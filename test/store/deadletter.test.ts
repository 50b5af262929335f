import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it, vi } from 'vitest'
import type { KeaEvent } from '../../src/parse/event.js'
import { parseBuffer } from '../helpers/fixtures.js'
import Database from 'better-sqlite3'
import { DeadLetterStore, retryDeadLetters } from '../../src/store/deadletter.js'

// The dead-letter store is bounded in bytes as well as entries: by entries alone, 100,000 events
// of 1 MiB lines held ~100 GB on disk.

const LINE = '2026-11-24 09:16:10.304 INFO  [kea-dhcp4.leases/1.1] DHCP4_LEASE_ALLOC [hwtype=1 02:00:00:00:00:01], cid=[no info], tid=0x1: lease 192.0.2.10 has been allocated for 4000 seconds'

const template = (await parseBuffer(`${LINE} ${'x'.repeat(3000)}\n`)).events[0] as KeaEvent

function big (i: number): KeaEvent {
  return { ...template, event: { ...template.event, id: `e${String(i).padStart(6, '0')}` } }
}

describe('dead-letter store', () => {
  it('drops the oldest entries once their documents pass maxBytes, counts them, and knows its size again after a reopen', () => {
    const path = join(mkdtempSync(join(tmpdir(), 'kt-dl-')), 'dl.db')
    const one = Buffer.byteLength(JSON.stringify(big(0)))
    const dl = new DeadLetterStore(path, 1000, 3 * one + 10)
    for (let i = 0; i < 10; i++) dl.add('elasticsearch', [{ event: big(i), reason: '400 mapper_parsing_exception' }])
    expect(dl.count()).toBe(3)
    expect(dl.dropped).toBe(7)
    expect(dl.list().map((d) => d.eventId)).toEqual(['e000007', 'e000008', 'e000009'])
    // Retried and removed: room for one more without a drop.
    dl.remove([dl.list(1)[0]?.seq as number])
    dl.add('elasticsearch', [{ event: big(10), reason: 'r' }])
    expect(dl.dropped).toBe(7)
    dl.close()
    // A reopened store counts what it holds: the next one over the bound drops the oldest.
    const again = new DeadLetterStore(path, 1000, 3 * one + 10)
    again.add('elasticsearch', [{ event: big(11), reason: 'r' }])
    expect(again.dropped).toBe(1)
    expect(again.list().map((d) => d.eventId)).toEqual(['e000009', 'e000010', 'e000011'])
    again.close()
  })

  it('evicts a thousand entries in a few statements, not one scan each; entries another process removed are not evicted for', () => {
    const path = join(mkdtempSync(join(tmpdir(), 'kt-dl-')), 'dl.db')
    const one = Buffer.byteLength(JSON.stringify(big(0)))
    const dl = new DeadLetterStore(path, 100_000, 2000 * one)
    dl.add('elasticsearch', Array.from({ length: 2000 }, (_, i) => ({ event: big(i), reason: 'r' })))
    expect(dl.dropped).toBe(0)
    // Before, each entry evicted at the byte bound counted the whole table again (80,000
    // entries: 53 s for one add of 1,000); now nothing is counted again (no other writer):
    // only the removed documents are read.
    const counts = vi.spyOn(DeadLetterStore.prototype, 'count')
    dl.add('elasticsearch', Array.from({ length: 1000 }, (_, i) => ({ event: big(2000 + i), reason: 'r' })))
    expect(counts.mock.calls.length).toBe(0)
    expect(dl.dropped).toBe(1000)
    expect(dl.count()).toBe(2000)
    expect(dl.list(1)[0]?.eventId).toBe('e001000')
    // `keatrail deadletter retry` in another process takes 500 out: the next add fits without a drop.
    const other = new DeadLetterStore(path, 100_000, 2000 * one)
    other.remove(other.list(500).map((d) => d.seq))
    other.close()
    const before = counts.mock.calls.length
    dl.add('elasticsearch', Array.from({ length: 500 }, (_, i) => ({ event: big(3000 + i), reason: 'r' })))
    // Counted again once: the other process's commit changed the file.
    expect(counts.mock.calls.length - before).toBe(1)
    counts.mockRestore()
    expect(dl.dropped).toBe(1000)
    expect(dl.count()).toBe(2000)
    dl.close()
  })
})

// Finding 6 of the third audit: `POST /api/v1/deadletter/retry?limit=100000` read, parsed and
// wrote all 100,000 entries (~2.1 KB each) in one step: out of memory in a 256 MiB heap. A retry
// now goes RETRY_CHUNK entries or RETRY_CHUNK_BYTES at a time, each step written then removed.
describe('dead-letter retries and listings are bounded', () => {
  /** RETRY_CHUNK_BYTES (deadletter.ts), written out: this test runs against code without it too. */
  const RETRY_CHUNK_BYTES = 4 * 1024 * 1024
  /** RETRY_CHUNK (deadletter.ts), written out likewise. */
  const RETRY_CHUNK = 500
  function sized (i: number, extra: number): KeaEvent {
    return { ...template, event: { ...template.event, id: `r${String(i).padStart(6, '0')}`, original: `${template.event.original} ${'y'.repeat(extra)}` } }
  }

  it('retries in steps of 500 entries or 4 MiB, each removed before the next is read; rejected again: kept for the next run', async () => {
    const dl = new DeadLetterStore(join(mkdtempSync(join(tmpdir(), 'kt-dl-')), 'dl.db'))
    dl.add('elasticsearch', Array.from({ length: 1200 }, (_, i) => ({ event: sized(i, 0), reason: 'r' })))
    dl.add('elasticsearch', Array.from({ length: 100 }, (_, i) => ({ event: sized(1200 + i, 100_000), reason: 'r' })))
    const large = Buffer.byteLength(JSON.stringify(sized(1200, 100_000)))
    const steps: Array<{ n: number, bytes: number, held: number }> = []
    // As the Elasticsearch store does with what its mapping refuses: dead-lettered anew.
    const store = {
      write: async (events: KeaEvent[]) => {
        steps.push({ n: events.length, bytes: events.reduce((n, e) => n + Buffer.byteLength(JSON.stringify(e)), 0), held: dl.count() })
        const again = events.filter((e) => e.event.id.endsWith('7'))
        dl.add('elasticsearch', again.map((e) => ({ event: e, reason: 'still refused' })))
        return { written: events.length - again.length, duplicates: 0, deadLettered: again.length }
      }
    }
    const r = await retryDeadLetters(store, dl, 100_000)
    // 500, 500, then the last 200 small ones with as many large ones as fit, then the large ones by bytes.
    const small = Buffer.byteLength(JSON.stringify(sized(0, 0)))
    const third = Math.floor((RETRY_CHUNK_BYTES - 200 * small) / large)
    const perStep = Math.floor(RETRY_CHUNK_BYTES / large)
    expect(steps.map((s) => s.n)).toEqual([500, 500, 200 + third, ...Array.from({ length: Math.ceil((100 - third) / perStep) }, (_, i) => Math.min(perStep, 100 - third - i * perStep))])
    for (const s of steps) expect(s.bytes).toBeLessThanOrEqual(RETRY_CHUNK_BYTES)
    // Each step left the store before the next was read: 500 fewer, 50 of them back (ids ending in 7).
    expect(steps.slice(0, 3).map((s) => s.held)).toEqual([1300, 1300 - 500 + 50, 1300 - 1000 + 100])
    expect(r).toEqual({ retried: 1300, written: 1300 - 130, duplicates: 0, deadLettered: 130, unreadable: 0, remaining: 130 })
    expect(dl.summaries(1000).every((e) => e.reason === 'still refused')).toBe(true)

    // A store that fails midway: the steps written before are gone, the rest stays.
    const sent: number[] = []
    const failing = { write: async (events: KeaEvent[]) => { sent.push(events.length); if (sent.length === 2) throw new Error('cluster down'); return { written: events.length, duplicates: 0, deadLettered: 0 } } }
    dl.add('elasticsearch', Array.from({ length: 1000 }, (_, i) => ({ event: sized(5000 + i, 0), reason: 'r' })))
    await expect(retryDeadLetters(failing, dl, 100_000)).rejects.toThrow('cluster down')
    expect(sent).toHaveLength(2)
    expect(dl.count()).toBe(130 + 1000 - (sent[0] as number))
    dl.close()
  })

  it('lists entries without reading their documents: one that cannot be parsed is listed, with its size', () => {
    const path = join(mkdtempSync(join(tmpdir(), 'kt-dl-')), 'dl.db')
    const dl = new DeadLetterStore(path)
    dl.add('elasticsearch', Array.from({ length: 3 }, (_, i) => ({ event: sized(i, 0), reason: `reason ${i}` })))
    const other = new Database(path)
    other.prepare('UPDATE deadletter SET doc = ? WHERE event_id = ?').run(`{"cut": "${'z'.repeat(5000)}`, 'r000001')
    other.close()
    expect(dl.summaries(10).map((e) => [e.eventId, e.reason, e.bytes])).toEqual([
      ['r000000', 'reason 0', Buffer.byteLength(JSON.stringify(sized(0, 0)))], ['r000001', 'reason 1', 5009], ['r000002', 'reason 2', Buffer.byteLength(JSON.stringify(sized(2, 0)))]
    ])
    expect(dl.summaries(1).map((e) => e.eventId)).toEqual(['r000000'])
    dl.close()
  })

  it('retries past an entry whose document does not parse, leaves it in place and counts it', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'kt-dl-')), 'dl.db')
    const dl = new DeadLetterStore(path)
    // A whole first step unreadable, then one more among readable ones.
    dl.add('elasticsearch', Array.from({ length: RETRY_CHUNK + 20 }, (_, i) => ({ event: sized(i, 0), reason: 'r' })))
    const other = new Database(path)
    other.prepare('UPDATE deadletter SET doc = ? WHERE seq <= ? OR event_id = ?').run('{"cut": "zz', RETRY_CHUNK, `r${String(RETRY_CHUNK + 5).padStart(6, '0')}`)
    // JSON, but no event (another version's document): a store would throw on it.
    other.prepare('UPDATE deadletter SET doc = ? WHERE event_id = ?').run('{}', `r${String(RETRY_CHUNK + 6).padStart(6, '0')}`)
    other.prepare('UPDATE deadletter SET doc = ? WHERE event_id = ?').run('null', `r${String(RETRY_CHUNK + 7).padStart(6, '0')}`)
    other.close()
    const stored: string[] = []
    // As a store does with a document that is no event (a TypeError reading its fields).
    const store = { write: async (events: KeaEvent[]) => { stored.push(...events.map((e) => e.kea.parse.status.length > 0 ? e.event.id : '')); return { written: events.length, duplicates: 0, deadLettered: 0 } } }
    // The limit counts the entries written: the unreadable ones leading the store do not use it up.
    const r = await retryDeadLetters(store, dl, 10)
    expect(r).toEqual({ retried: 10, written: 10, duplicates: 0, deadLettered: 0, unreadable: RETRY_CHUNK + 3, remaining: RETRY_CHUNK + 3 + 7 })
    const rest = await retryDeadLetters(store, dl, 100_000)
    expect(rest).toEqual({ retried: 7, written: 7, duplicates: 0, deadLettered: 0, unreadable: RETRY_CHUNK + 3, remaining: RETRY_CHUNK + 3 })
    expect(stored).toHaveLength(17)
    for (const n of [5, 6, 7]) expect(stored).not.toContain(`r${String(RETRY_CHUNK + n).padStart(6, '0')}`)
    expect(dl.summaries(1).map((e) => e.eventId)).toEqual(['r000000'])
    dl.close()
  })
})
