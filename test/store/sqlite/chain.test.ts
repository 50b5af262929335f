import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterAll, describe, expect, it } from 'vitest'
import type { KeaEvent } from '../../../src/parse/event.js'
import { DecodedBlock, packLines, unpackLines } from '../../../src/store/sqlite/blocks/codec.js'
import { GENESIS, linkOf, recordFrame } from '../../../src/store/sqlite/chain.js'
import { SqliteStore } from '../../../src/store/sqlite/store.js'
import { parseBuffer, plainCopy, readFixture } from '../../helpers/fixtures.js'
import { createHash } from 'node:crypto'

// The tamper-evidence chain of the block layout (issue 22): one link per write batch over the
// raw records it stored, kept verifiable while blocks grow, events are deleted and retention
// ages them out; a record altered behind keatrail's back is found and named.

const dir = mkdtempSync(join(tmpdir(), 'kt-chain-'))
afterAll(() => { rmSync(dir, { recursive: true, force: true }) })
let n = 0
const fresh = (): string => join(dir, `c${n++}.db`)

async function fixtureEvents (): Promise<KeaEvent[]> {
  const out: KeaEvent[] = []
  for (const [f, host] of [['kea-2.2.0-dhcp4-INFO-full.log', 'kea-a'], ['kea-2.2.0-dhcp6-INFO-full.log', 'kea-b']] as const) {
    out.push(...(await parseBuffer(readFixture(f), { host, path: f })).events)
  }
  return out.map(plainCopy)
}

/** Journal-like events: ids that name no offset (cursors), kept in block_ids. */
function journalEvents (events: readonly KeaEvent[]): KeaEvent[] {
  return events.map((e, i) => {
    const c = structuredClone(e)
    c.event.id = `s=journal;i=${i.toString(16)};b=boot`
    c.kea.source_id = 'journal-test'
    delete (c.log as { offset?: number }).offset
    return c
  })
}

/** Alters the raw record at `position` of block `block` the way someone with the file would: decoded, changed, packed again. */
function alterRecord (path: string, block: number, position: number, change: (raw: string) => string): string {
  const db = new Database(path)
  try {
    const row = db.prepare('SELECT source_id, codec, payload FROM blocks WHERE id = ?').get(block) as { source_id: string, codec: number, payload: Buffer }
    const lines = unpackLines(row.payload, row.codec)
    lines.originals[position] = change(lines.originals[position] as string)
    db.prepare('UPDATE blocks SET payload = ? WHERE id = ?').run(packLines(lines, row.codec as 1 | 2), block)
    return DecodedBlock.unpack(row.payload, row.codec, row.source_id).id(position)
  } finally {
    db.close()
  }
}

describe('the SQLite store\'s tamper-evidence chain', () => {
  it('links every write batch (new records only, blocks growing across batches) and verifies them all', async () => {
    const events = await fixtureEvents()
    const path = fresh()
    const store = new SqliteStore({ path, readers: { workers: 0 } })
    try {
      expect(await store.chain.head()).toBeUndefined()
      // Small batches grow a source's newest block: later batches' runs start mid-block.
      const batches: KeaEvent[][] = []
      for (let i = 0; i < events.length; i += 97) batches.push(events.slice(i, i + 97))
      for (const b of batches) await store.write(b)
      // A replayed batch stores nothing new: no link.
      await store.write(batches[0] as KeaEvent[])
      await store.write(journalEvents(events.slice(0, 300)))
      const r = await store.chain.verify()
      expect(r.broken).toBeUndefined()
      expect([r.links, r.intact, r.partial, r.records, r.uncovered]).toEqual([batches.length + 1, batches.length + 1, 0, events.length + 300, 0])
      expect(r.head).toEqual(await store.chain.head())
      expect(r.oldest?.seq).toBeLessThan(r.head?.seq as number)

      // The chain's formula, independent of keatrail's code path: the first link is SHA-256 of
      // its predecessor (zeros), numbers and the digest of its records framed in storage order.
      const db = new Database(path, { readonly: true })
      const first = db.prepare('SELECT seq, time, n, digest, link FROM chain ORDER BY seq LIMIT 1').get() as { seq: number, time: number, n: number, digest: Buffer, link: Buffer }
      db.close()
      const digest = createHash('sha256').update((batches[0] as KeaEvent[]).map((e) => recordFrame(e.event.id, e.event.original)).join('')).digest()
      expect(first.digest.equals(digest)).toBe(true)
      expect(first.link.equals(linkOf(GENESIS, first.seq, first.n, first.time, digest))).toBe(true)
    } finally {
      await store.close()
    }
  })

  it('finds one altered byte of one stored record and names the record; a forged chain no longer holds the head a report named', async () => {
    const events = await fixtureEvents()
    const path = fresh()
    const store = new SqliteStore({ path, readers: { workers: 0 } })
    await store.write(events.slice(0, 2000))
    await store.write(events.slice(2000))
    const head = await store.chain.head()
    await store.close()

    const db = new Database(path, { readonly: true })
    const target = db.prepare('SELECT block, pos, n FROM chain_runs ORDER BY seq DESC, k LIMIT 1').get() as { block: number, pos: number, n: number }
    db.close()
    const position = target.pos + Math.floor(target.n / 2)
    // One character of the record (an address's last digit) changed.
    const id = alterRecord(path, target.block, position, (raw) => raw.replace(/(\d)(?!.*\d)/s, (d) => String((Number(d) + 1) % 10)))

    const altered = new SqliteStore({ path, readers: { workers: 0 } })
    try {
      const r = await altered.chain.verify()
      expect(r.broken?.reason).toBe('a record differs from what was stored')
      expect(r.broken?.record).toEqual({ id, block: target.block, position })
      expect(r.broken?.seq).toBe(head?.seq)
    } finally {
      await altered.close()
    }

    // Someone who also re-computes the record's tag, the link's digest and every link after it
    // makes a chain that holds, but whose head is not the one the report named.
    const forge = new Database(path)
    const run = forge.prepare('SELECT block, pos, seq, k, n, tags FROM chain_runs WHERE block = ? AND pos <= ? ORDER BY pos DESC LIMIT 1').get(target.block, position) as { pos: number, seq: number, tags: Buffer }
    const row = forge.prepare('SELECT source_id, codec, payload FROM blocks WHERE id = ?').get(target.block) as { source_id: string, codec: number, payload: Buffer }
    const b = DecodedBlock.unpack(row.payload, row.codec, row.source_id)
    const { recordTag } = await import('../../../src/store/sqlite/chain.js')
    run.tags.writeUInt32LE(recordTag(b.original(position)), 4 * (position - run.pos))
    forge.prepare('UPDATE chain_runs SET tags = ? WHERE block = ? AND pos = ?').run(run.tags, target.block, run.pos)
    const runs = forge.prepare('SELECT block, pos, n FROM chain_runs WHERE seq = ? ORDER BY k').all(run.seq) as Array<{ block: number, pos: number, n: number }>
    const hash = createHash('sha256')
    for (const r of runs) {
      const rb = forge.prepare('SELECT source_id, codec, payload FROM blocks WHERE id = ?').get(r.block) as { source_id: string, codec: number, payload: Buffer }
      const d = DecodedBlock.unpack(rb.payload, rb.codec, rb.source_id)
      for (let i = r.pos; i < r.pos + r.n; i++) hash.update(recordFrame(d.id(i), d.original(i)))
    }
    const link = forge.prepare('SELECT seq, time, n, prev FROM chain WHERE seq = ?').get(run.seq) as { seq: number, time: number, n: number, prev: Buffer }
    const digest = hash.digest()
    forge.prepare('UPDATE chain SET digest = ?, link = ? WHERE seq = ?').run(digest, linkOf(link.prev, link.seq, link.n, link.time, digest), run.seq)
    forge.close()
    const forged = new SqliteStore({ path, readers: { workers: 0 } })
    try {
      const r = await forged.chain.verify()
      expect(r.broken).toBeUndefined()
      expect(r.head?.seq).toBe(head?.seq)
      expect(r.head?.link).not.toBe(head?.link)
    } finally {
      await forged.close()
    }
  })

  it('says which link breaks when a link is removed or a block cannot be read', async () => {
    const events = await fixtureEvents()
    const path = fresh()
    const store = new SqliteStore({ path, readers: { workers: 0 } })
    for (let i = 0; i < events.length; i += 100) await store.write(events.slice(i, i + 100))
    await store.close()
    const db = new Database(path)
    const seqs = db.prepare('SELECT seq FROM chain ORDER BY seq').pluck().all() as number[]
    db.prepare('DELETE FROM chain WHERE seq = ?').run(seqs[1])
    db.close()
    const s1 = new SqliteStore({ path, readers: { workers: 0 } })
    try {
      const r = await s1.chain.verify()
      expect(r.broken?.seq).toBe(seqs[2])
      expect(r.broken?.reason).toMatch(/predecessor is not the link before it/)
    } finally {
      await s1.close()
    }
    // The newest link removed: its records have none.
    const dbNewest = new Database(path)
    dbNewest.prepare('DELETE FROM chain WHERE seq >= ?').run(seqs[2])
    dbNewest.close()
    const s1b = new SqliteStore({ path, readers: { workers: 0 } })
    try {
      const r = await s1b.chain.verify()
      expect(r.broken?.seq).toBe(seqs[1])
      expect(r.broken?.reason).toMatch(/link of these records is missing/)
    } finally {
      await s1b.close()
    }

    const path2 = fresh()
    const s2 = new SqliteStore({ path: path2, readers: { workers: 0 } })
    await s2.write(events)
    await s2.close()
    const db2 = new Database(path2)
    const blk = db2.prepare('SELECT id, payload FROM blocks ORDER BY id LIMIT 1').get() as { id: number, payload: Buffer }
    // One byte of the compressed payload flipped.
    const mid = Math.floor(blk.payload.length / 2)
    blk.payload.writeUInt8(blk.payload.readUInt8(mid) ^ 0x20, mid)
    db2.prepare('UPDATE blocks SET payload = ? WHERE id = ?').run(blk.payload, blk.id)
    db2.close()
    const s3 = new SqliteStore({ path: path2, readers: { workers: 0 } })
    try {
      const r = await s3.chain.verify()
      expect(r.broken).toBeDefined()
      expect(r.broken?.reason).toMatch(new RegExp(`block ${blk.id} cannot be read|record differs|do not hash`))
    } finally {
      await s3.close()
    }
  })

  it('stays verifiable from the oldest kept link when retention and store delete remove events', async () => {
    const events = await fixtureEvents()
    const path = fresh()
    const store = new SqliteStore({ path, readers: { workers: 0 }, retention: { maxAgeDays: 1 } })
    try {
      for (let i = 0; i < events.length; i += 100) await store.write(events.slice(i, i + 100))
      const times = events.map((e) => Date.parse(e['@timestamp'])).sort((a, b) => a - b)
      const before = await store.chain.verify()
      // A cutoff in the middle of the log: whole links go, one is cut through.
      const cutoff = times[Math.floor(times.length / 2)] as number
      const deleted = store.applyRetention(cutoff + 86_400_000)
      expect(deleted).toBeGreaterThan(0)
      const deletedOne = await store.deleteEvents({ filters: { code: ['DHCP4_LEASE_ALLOC'] } })
      const after = await store.chain.verify()
      expect(after.broken).toBeUndefined()
      expect(after.records).toBe(events.length - deleted - deletedOne.deleted)
      expect(after.links).toBeLessThan(before.links)
      expect(after.oldest?.seq).toBeGreaterThan(before.oldest?.seq as number)
      expect(after.partial).toBeGreaterThan(0)
      expect(after.head).toEqual(before.head)
    } finally {
      await store.close()
    }
  })
})
