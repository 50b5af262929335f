import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterAll, describe, expect, it } from 'vitest'
import type { KeaEvent } from '../../../src/parse/event.js'
import { DecodedBlock, packLines, unpackLines } from '../../../src/store/sqlite/blocks/codec.js'
import { digestOf, GENESIS, linkOf, recordLeaf } from '../../../src/store/chain-format.js'
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
      // Each record's leaf is SHA-256 of `<id length>:<id><raw length>:<raw>`; the digest SHA-256 of the leaves.
      const leafOf = (e: KeaEvent): Buffer => createHash('sha256').update(`${e.event.id.length}:${e.event.id}${e.event.original.length}:${e.event.original}`).digest()
      const digest = createHash('sha256').update(Buffer.concat((batches[0] as KeaEvent[]).map(leafOf))).digest()
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
    const target = db.prepare('SELECT block, pos, n FROM chain_runs ORDER BY seq DESC, ord LIMIT 1').get() as { block: number, pos: number, n: number }
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
    const run = forge.prepare('SELECT block, pos, seq, ord, n, tags FROM chain_runs WHERE block = ? AND pos <= ? ORDER BY pos DESC LIMIT 1').get(target.block, position) as { pos: number, seq: number, tags: Buffer }
    const row = forge.prepare('SELECT source_id, codec, payload FROM blocks WHERE id = ?').get(target.block) as { source_id: string, codec: number, payload: Buffer }
    const b = DecodedBlock.unpack(row.payload, row.codec, row.source_id)
    recordLeaf(b.id(position), b.original(position)).copy(run.tags, 4 * (position - run.pos), 0, 4)
    forge.prepare('UPDATE chain_runs SET tags = ? WHERE block = ? AND pos = ?').run(run.tags, target.block, run.pos)
    const runs = forge.prepare('SELECT block, pos, n FROM chain_runs WHERE seq = ? ORDER BY ord').all(run.seq) as Array<{ block: number, pos: number, n: number }>
    const leaves: Buffer[] = []
    for (const r of runs) {
      const rb = forge.prepare('SELECT source_id, codec, payload FROM blocks WHERE id = ?').get(r.block) as { source_id: string, codec: number, payload: Buffer }
      const d = DecodedBlock.unpack(rb.payload, rb.codec, rb.source_id)
      for (let i = r.pos; i < r.pos + r.n; i++) leaves.push(recordLeaf(d.id(i), d.original(i)))
    }
    const link = forge.prepare('SELECT seq, time, n, prev FROM chain WHERE seq = ?').get(run.seq) as { seq: number, time: number, n: number, prev: Buffer }
    const digest = digestOf(leaves)
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

  it('holds against the forgeries a removal would allow: a record hidden as removed, the oldest link dropped, a block added', async () => {
    const events = await fixtureEvents()
    const write = async (): Promise<string> => {
      const path = fresh()
      const store = new SqliteStore({ path, readers: { workers: 0 } })
      for (let i = 0; i < events.length; i += 100) await store.write(events.slice(i, i + 100))
      await store.close()
      return path
    }
    const verify = async (path: string): Promise<ReturnType<SqliteStore['chain']['verify']>> => {
      const store = new SqliteStore({ path, readers: { workers: 0 } })
      try { return await store.chain.verify() } finally { await store.close() }
    }
    // One record of a link "removed" (its run shortened, its true leaf recorded, the count
    // raised) and another of the same link altered with its tag made to match: the digest,
    // re-computed from the kept records and the removed one's leaf, no longer holds.
    const p1 = await write()
    const db = new Database(p1)
    const run = db.prepare('SELECT block, pos, seq, ord, n, tags FROM chain_runs WHERE n > 4 ORDER BY seq LIMIT 1').get() as { block: number, pos: number, seq: number, ord: number, n: number, tags: Buffer }
    const row = db.prepare('SELECT source_id, codec, payload FROM blocks WHERE id = ?').get(run.block) as { source_id: string, codec: 1 | 2, payload: Buffer }
    const d = DecodedBlock.unpack(row.payload, row.codec, row.source_id)
    const last = run.pos + run.n - 1
    db.prepare('UPDATE chain_runs SET n = ?, tags = ? WHERE block = ? AND pos = ?').run(run.n - 1, run.tags.subarray(0, 4 * (run.n - 1)), run.block, run.pos)
    db.prepare('INSERT INTO chain_dropped (seq, ord, leaf) VALUES (?, ?, ?)').run(run.seq, run.ord + run.n - 1, recordLeaf(d.id(last), d.original(last)))
    db.prepare('UPDATE chain SET dropped = dropped + 1 WHERE seq = ?').run(run.seq)
    const lines = unpackLines(row.payload, row.codec)
    lines.originals[run.pos] = (lines.originals[run.pos] as string).replace('INFO', 'INF0')
    db.prepare('UPDATE blocks SET payload = ? WHERE id = ?').run(packLines(lines, row.codec), run.block)
    const tags = Buffer.from(run.tags.subarray(0, 4 * (run.n - 1)))
    recordLeaf(d.id(run.pos), lines.originals[run.pos] as string).copy(tags, 0, 0, 4)
    db.prepare('UPDATE chain_runs SET tags = ? WHERE block = ? AND pos = ?').run(tags, run.block, run.pos)
    db.close()
    expect((await verify(p1)).broken).toMatchObject({ seq: run.seq, reason: expect.stringMatching(/do not hash to its digest/) })

    // The oldest link and its runs deleted (as if never written): the first kept link does not
    // follow the zeros a chain begins with, nor a tombstone retention left.
    const p2 = await write()
    const db2 = new Database(p2)
    db2.prepare('DELETE FROM chain_runs WHERE seq = (SELECT min(seq) FROM chain)').run()
    db2.prepare('DELETE FROM chain WHERE seq = (SELECT min(seq) FROM chain)').run()
    db2.close()
    expect((await verify(p2)).broken?.reason).toMatch(/does not follow the last link retention removed/)

    // A block added behind keatrail's back (a copy of one, under a new id): records in no link.
    const p3 = await write()
    const db3 = new Database(p3)
    db3.prepare('INSERT INTO blocks (id, source_id, min_ts, max_ts, min_off, max_off, n, seq, codec, times, bloom, payload, pv) SELECT id + 1000, source_id || \'x\', min_ts, max_ts, min_off, max_off, n, seq, codec, times, bloom, payload, pv FROM blocks WHERE id = (SELECT min(id) FROM blocks)').run()
    db3.close()
    expect((await verify(p3)).broken?.reason).toMatch(/^\d+ records are in no link \(0 were stored before the store kept a chain\)/)
  })

  it('a leaf recorded unknown fails its link; records stored before the chain leave their allowance when they go', async () => {
    const events = await fixtureEvents()
    const path = fresh()
    const store = new SqliteStore({ path, readers: { workers: 0 } })
    for (let i = 0; i < events.length; i += 100) await store.write(events.slice(i, i + 100))
    await store.close()
    // One record of a link marked lost with its leaf unknown (what dropping an unreadable block
    // records): the link's other records can no longer be proven, and verify says so.
    const db = new Database(path)
    const run = db.prepare('SELECT block, pos, seq, ord, n, tags FROM chain_runs WHERE n > 4 ORDER BY seq LIMIT 1').get() as { block: number, pos: number, seq: number, ord: number, n: number, tags: Buffer }
    db.prepare('UPDATE chain_runs SET n = ?, tags = ? WHERE block = ? AND pos = ?').run(run.n - 1, run.tags.subarray(0, 4 * (run.n - 1)), run.block, run.pos)
    db.prepare('INSERT INTO chain_dropped (seq, ord, leaf) VALUES (?, ?, NULL)').run(run.seq, run.ord + run.n - 1)
    db.prepare('UPDATE chain SET dropped = dropped + 1 WHERE seq = ?').run(run.seq)
    db.close()
    const s1 = new SqliteStore({ path, readers: { workers: 0 } })
    try {
      expect((await s1.chain.verify()).broken?.reason).toMatch(/lost with a block that could not be read: its \d+ kept records cannot be proven/)
    } finally {
      await s1.close()
    }

    // A file whose records all predate the chain (as one upgraded to schema 18): deleting them
    // lowers the allowance, so a block added afterwards is found.
    const old = fresh()
    const s2 = new SqliteStore({ path: old, readers: { workers: 0 } })
    await s2.write(events.slice(0, 200))
    await s2.close()
    const db2 = new Database(old)
    db2.exec("DELETE FROM chain_runs; DELETE FROM chain; UPDATE meta SET value = 200 WHERE key = 'chain_base'")
    db2.close()
    const s3 = new SqliteStore({ path: old, readers: { workers: 0 } })
    try {
      expect((await s3.chain.verify()).broken).toBeUndefined()
      await s3.deleteEvents({})
      await s3.write(events.slice(200, 210))
    } finally {
      await s3.close()
    }
    const db3 = new Database(old)
    expect(db3.prepare("SELECT value FROM meta WHERE key = 'chain_base'").pluck().get()).toBe(0)
    db3.prepare('INSERT INTO blocks (id, source_id, min_ts, max_ts, min_off, max_off, n, seq, codec, times, bloom, payload, pv) SELECT id + 1000, source_id || \'x\', min_ts, max_ts, min_off, max_off, n, seq, codec, times, bloom, payload, pv FROM blocks WHERE id = (SELECT max(id) FROM blocks)').run()
    db3.close()
    const s4 = new SqliteStore({ path: old, readers: { workers: 0 } })
    try {
      expect((await s4.chain.verify()).broken?.reason).toMatch(/^[1-9]\d* records are in no link \(0 were stored before/)
    } finally {
      await s4.close()
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
    // Everything aged out, links pruned to a tombstone; the next write follows it.
    const emptied = new SqliteStore({ path: fresh(), readers: { workers: 0 }, retention: { maxAgeDays: 1 } })
    try {
      for (let i = 0; i < events.length; i += 100) await emptied.write(events.slice(i, i + 100))
      emptied.applyRetention(Date.parse('2100-01-01T00:00:00Z'))
      const none = await emptied.chain.verify()
      expect([none.broken, none.links, none.records]).toEqual([undefined, 0, 0])
      await emptied.write(events.slice(0, 10).map((e) => ({ ...e, '@timestamp': '2099-12-31T00:00:00.000Z' })))
      const next = await emptied.chain.verify()
      expect([next.broken, next.links, next.records]).toEqual([undefined, 1, 10])
    } finally {
      await emptied.close()
    }
    // A record kept in a link that lost others, altered: found by its leaf's tag.
    const db = new Database(path)
    const run = db.prepare('SELECT r.block, r.pos FROM chain_runs r JOIN chain c ON c.seq = r.seq WHERE c.dropped > 0 LIMIT 1').get() as { block: number, pos: number }
    db.close()
    const id = alterRecord(path, run.block, run.pos, (raw) => raw.replace('INFO', 'INF0'))
    const again = new SqliteStore({ path, readers: { workers: 0 } })
    try {
      expect((await again.chain.verify()).broken?.record).toEqual({ id, block: run.block, position: run.pos })
    } finally {
      await again.close()
    }
  })
})
