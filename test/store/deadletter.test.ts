import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it, vi } from 'vitest'
import type { KeaEvent } from '../../src/parse/event.js'
import { parseBuffer } from '../helpers/fixtures.js'
import { DeadLetterStore } from '../../src/store/deadletter.js'

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
