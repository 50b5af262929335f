import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterAll, describe, expect, it } from 'vitest'
import { holderAt } from '../../../src/leases/query.js'
import { PARSER_VERSION } from '../../../src/parse/derivation.js'
import type { KeaEvent } from '../../../src/parse/event.js'
import { parseQuery, type QueryNode } from '../../../src/query/parse.js'
import { bloomAdd, bloomAddText, newBloom } from '../../../src/store/sqlite/blocks/bloom.js'
import { decodeTimes, DecodedBlock, DeltaVarints, encodeTimes, FRAME_EVENTS, frameOf, framesFor, linesOf, lowerBytes, packLines, PAYLOAD_VERSION, unpackLines, type BlockLines } from '../../../src/store/sqlite/blocks/codec.js'
import { planOf } from '../../../src/store/sqlite/blocks/plan.js'
import { BlockReader, literalFilter } from '../../../src/store/sqlite/blocks/reader.js'
import { compileQuery } from '../../../src/query/evaluate.js'
import { textTokens } from '../../../src/query/evaluate.js'
import { CODECS, compress, decompress, type CodecId } from '../../../src/store/sqlite/blocks/compress.js'
import { BLOCK_EVENTS } from '../../../src/store/sqlite/blocks/writer.js'
import { migrateRowsToBlocks } from '../../../src/store/sqlite/migrate-layout.js'
import { MIGRATIONS } from '../../../src/store/sqlite/migrations.js'
import { SqliteRowStore } from '../../../src/store/sqlite/row-store.js'
import { SqliteStore } from '../../../src/store/sqlite/store.js'
import type { Store } from '../../../src/store/types.js'
import { parseBuffer, plainCopy, readFixture } from '../../helpers/fixtures.js'
import { fill, mac, shape } from '../../../bench/generate.js'

// The block layout (issue 19): what the contract suites cannot see from outside — blocks fill
// up from small batches, replays and re-imports find the stored event, deletes and retention
// leave no posting behind, and a row-layout file converts into the same answers.

const dir = mkdtempSync(join(tmpdir(), 'kt-blocks-'))
afterAll(() => { rmSync(dir, { recursive: true, force: true }) })
let n = 0
const fresh = (): string => join(dir, `k${n++}.db`)

/** `rederivable`: marked so by their parser (the store then keeps their raw records only). */
async function fixtureEvents (rederivable = false): Promise<KeaEvent[]> {
  const out: KeaEvent[] = []
  for (const [f, host] of [['kea-2.2.0-dhcp4-INFO-full.log', 'kea-a'], ['kea-2.2.0-dhcp6-INFO-full.log', 'kea-b']] as const) {
    out.push(...(await parseBuffer(readFixture(f), { host, path: f, rederivable })).events)
  }
  return out.map(plainCopy)
}

function tables (path: string): { blocks: Array<{ id: number, n: number, source_id: string }>, postings: Array<{ term: string, block: number }>, ids: number } {
  const db = new Database(path, { readonly: true })
  try {
    return {
      blocks: db.prepare('SELECT id, n, source_id FROM blocks ORDER BY id').all() as Array<{ id: number, n: number, source_id: string }>,
      postings: db.prepare('SELECT term, block FROM block_postings').all() as Array<{ term: string, block: number }>,
      ids: db.prepare('SELECT count(*) FROM block_ids').pluck().get() as number
    }
  } finally {
    db.close()
  }
}

async function allIds (s: Store, where?: QueryNode): Promise<string[]> {
  const out: string[] = []
  let cursor: string | undefined
  for (let i = 0; i < 100; i++) {
    const p = await s.search({ sort: 'asc', size: 1000, ...(where === undefined ? {} : { where }), ...(cursor === undefined ? {} : { cursor }) })
    out.push(...p.events.map((e) => e.event.id))
    cursor = p.cursor
    if (cursor === undefined) break
  }
  return out
}

const evaluate = (where: QueryNode, e: KeaEvent): boolean => compileQuery({ where })(e)

describe('sqlite block layout', () => {
  it('fills a source\'s newest block from small batches (a live tail), and reads every event back as written', async () => {
    const path = fresh()
    const store = new SqliteStore({ path, readers: { workers: 0 } })
    const events = (await fixtureEvents()).filter((e) => e.host?.name === 'kea-a')
    for (let i = 0; i < events.length; i += 7) await store.write(events.slice(i, i + 7))
    const t = tables(path)
    // One source: as few blocks as BLOCK_EVENTS allows, not one per batch.
    expect(t.blocks).toHaveLength(Math.ceil(events.length / BLOCK_EVENTS))
    for (const e of events.filter((_, i) => i % 50 === 0)) expect(await store.get(e.event.id)).toEqual(e)
    expect(await store.count()).toBe(events.length)
    await store.close()
  })

  it('recognises a replay in any batch split, and journal-style ids that name no offset', async () => {
    const path = fresh()
    const store = new SqliteStore({ path, readers: { workers: 0 } })
    const events = await fixtureEvents()
    // Ids that are not <source>-<offset>: looked up in the id table instead.
    const journal = events.slice(0, 300).map((e, i) => ({ ...e, event: { ...e.event, id: `${e.kea.source_id ?? ''}-${'c'.repeat(19)}${i % 10}${Math.floor(i / 10)}` }, log: { ...e.log, offset: 0 } }))
    const half = Math.floor(events.length / 2)
    expect(await store.write(events.slice(0, half))).toMatchObject({ written: half, duplicates: 0 })
    expect(await store.write(events)).toMatchObject({ written: events.length - half, duplicates: half })
    expect(await store.write(events.slice(100, half + 100))).toMatchObject({ written: 0, duplicates: half })
    expect(await store.write(journal)).toMatchObject({ written: 300 })
    expect(await store.write(journal.slice(100))).toMatchObject({ written: 0, duplicates: 200 })
    expect(tables(path).ids).toBe(300)
    expect(await store.count()).toBe(events.length + 300)
    expect(await store.get(journal[42]?.event.id as string)).toEqual(journal[42])
    await store.close()
  })

  it('finds every event by id when a source\'s blocks overlap (late batches inside an older block\'s range)', async () => {
    const path = fresh()
    const store = new SqliteStore({ path, readers: { workers: 0 } })
    const src = (await fixtureEvents()).filter((e) => e.host?.name === 'kea-a')
    // Held back, then written one per batch: each lands inside the first block's offset range.
    const late = new Set([150, 120, 90, 60, 30, 10].map((i) => src[i] as KeaEvent))
    await store.write(src.filter((e) => !late.has(e)))
    for (const e of late) await store.write([e])
    expect(tables(path).blocks.length).toBeGreaterThan(5)
    // An early event is found past the late blocks whose ranges end first (more than a lookup's
    // nearest few), a late one in its own block.
    expect(await store.getMany(src.map((e) => e.event.id))).toEqual(src)
    await store.close()
  })

  it('evidence lines are what getMany\'s events show, re-derived or stored, in the order asked, unknown ids left out', async () => {
    const store = new SqliteStore({ path: fresh(), readers: { workers: 0 } })
    const events = [...(await fixtureEvents(true)).filter((e) => e.host?.name === 'kea-a'), ...(await fixtureEvents()).filter((e) => e.host?.name === 'kea-b')]
    await store.write(events)
    const ids = [...events.filter((_, i) => i % 7 === 0).map((e) => e.event.id).reverse(), 'nowhere-1f']
    const lines = await store.evidence(ids)
    expect(lines).toEqual((await store.getMany(ids)).map((e) => ({ id: e.event.id, time: e['@timestamp'], line: e.event.original })))
    expect(lines.length).toBe(ids.length - 1)
    expect(new Set(lines.map((l) => l.id.split('-')[0])).size).toBe(2)
    await store.close()
  })

  it('replaces an event stored unparsed when the same line comes again parsed (a re-import with the right pattern)', async () => {
    const store = new SqliteStore({ path: fresh(), readers: { workers: 0 } })
    const events = (await fixtureEvents()).slice(0, 200)
    const bad = events.map((e) => ({ ...e, kea: { ...e.kea, parse: { status: 'unmatched' as const } } }))
    await store.write(bad)
    expect(await store.write(events)).toMatchObject({ written: 0, duplicates: 0, replaced: 200 })
    for (const e of events.slice(0, 20)) expect(await store.get(e.event.id)).toEqual(e)
    expect(await store.write(bad)).toMatchObject({ duplicates: 200 })
    await store.close()
  })

  it('deletes leave no posting of a removed event, and retention drops whole blocks with their postings', async () => {
    const path = fresh()
    const store = new SqliteStore({ path, readers: { workers: 0 }, retention: { maxAgeDays: 1 } })
    const events = await fixtureEvents()
    await store.write(events)
    const mac = events.find((e) => e.client?.mac !== undefined)?.client?.mac as string
    const where = parseQuery(`mac:${mac}`) as QueryNode
    const before = await store.count({ where })
    expect(before).toBeGreaterThan(0)
    const r = await store.deleteEvents({ where })
    expect(r.deleted).toBe(before)
    expect(await store.count({ where })).toBe(0)
    expect(tables(path).postings.filter((p) => p.term === `m:${mac}`)).toEqual([])
    expect(await store.count()).toBe(events.length - before)
    // Everything is years old by now: retention takes every block and every posting.
    expect(store.applyRetention(Date.parse('2030-01-01T00:00:00Z'))).toBe(events.length - before)
    const t = tables(path)
    expect(t.blocks).toEqual([])
    expect(t.postings).toEqual([])
    await store.close()
  })

  it('names for each identifier the frames of 256 events that hold it, and a query decodes only those', async () => {
    const path = fresh()
    const store = new SqliteStore({ path, readers: { workers: 0 } })
    // One source of thousands of events: the DEBUG capture of a real kea-dhcp6.
    const events = (await parseBuffer(readFixture('kea-2.2.0-dhcp6-DEBUG99-full.log.gz'), { host: 'kea-d', path: 'debug.log' })).events
    await store.write(events)
    await store.close()
    expect(events.length).toBeGreaterThan(2 * FRAME_EVENTS)
    const db = new Database(path, { readonly: true })
    try {
      const reader = new BlockReader(db)
      let narrowed = 0
      for (const duid of new Set(events.map((e) => e.kea.duid).filter((d) => d !== undefined))) {
        const where = parseQuery(`duid:${duid}`) as QueryNode
        const candidates = reader.candidates({ where })
        // Sound: every event with the DUID lies in a frame its block's mask names.
        for (const c of candidates) {
          const b = reader.block(c)
          for (let i = 0; i < b.n; i++) if (b.event(i).kea.duid === duid) expect(c.mask & (2 ** frameOf(i))).not.toBe(0)
          if (c.mask !== 2 ** framesFor(c.n) - 1) narrowed++
        }
        expect(reader.count({ where })).toBe(events.filter((e) => e.kea.duid === duid).length)
      }
      expect(narrowed, 'some DUIDs are in fewer frames than their block has').toBeGreaterThan(0)
    } finally {
      db.close()
    }
  })

  it('hashes message tokens in place into the same bloom bits as the tokens textTokens makes', async () => {
    const messages = [...(await fixtureEvents()).map((e) => e.message), 'Ünïcödé DHCP4_LEASE_ALLOC straße 0xABCDEF', 'a'.repeat(40_000) + ' tail', '']
    for (const m of messages) {
      const inPlace = newBloom()
      bloomAddText(inPlace, m)
      const byTokens = newBloom()
      for (const t of textTokens(m)) bloomAdd(byTokens, t)
      expect(Buffer.from(inPlace).equals(Buffer.from(byTokens)), m.slice(0, 80)).toBe(true)
    }
  })

  it('counts a histogram bucket from a block\'s summary when all its events fall in it, and from its times otherwise', async () => {
    const store = new SqliteStore({ path: fresh(), readers: { workers: 0 } })
    const events = await fixtureEvents()
    await store.write(events)
    const truth = (ms: number, from: number, to: number): Array<{ key: number, count: number }> => {
      const m = new Map<number, number>()
      for (const e of events) {
        const t = Date.parse(e['@timestamp'])
        if (t < from || t >= to) continue
        const k = t - (((t % ms) + ms) % ms)
        m.set(k, (m.get(k) ?? 0) + 1)
      }
      return [...m].sort((a, b) => a[0] - b[0]).map(([key, count]) => ({ key, count }))
    }
    const times = events.map((e) => Date.parse(e['@timestamp']))
    const from = Math.min(...times)
    const to = Math.max(...times) + 1
    // A year: every block in one bucket (the summary path); a second: many buckets per block.
    for (const ms of [366 * 86_400_000, 60_000, 1000]) {
      expect(await store.histogram({ from, to }, ms), `${ms} ms`).toEqual(truth(ms, from, to))
      expect(await store.histogram({ from: from + 1, to }, ms), `${ms} ms, the first event outside`).toEqual(truth(ms, from + 1, to))
    }
    await store.close()
  })

  it('reads blocks of either codec', async () => {
    const events = (await fixtureEvents()).slice(0, 50)
    const src = events[0]?.kea.source_id as string
    for (const codec of [CODECS.deflate, CODECS.zstd]) {
      const b = DecodedBlock.unpack(packLines(linesOf(events, src, () => -1), codec), codec, src)
      expect(Array.from({ length: b.n }, (_, i) => b.event(i))).toEqual(events)
    }
  })

  // test/fixtures/store/block-payload-v2.*: a block of 300 real Kea lines (two frames; some
  // re-derived, one with a continuation line, one id of another shape) written by the version 2
  // encoder (commit 1324f3e), and the lines it was given.
  const v2Payload = readFileSync(new URL('../../fixtures/store/block-payload-v2.deflate.bin', import.meta.url))
  const v2Lines = JSON.parse(readFileSync(new URL('../../fixtures/store/block-payload-v2.lines.json', import.meta.url), 'utf8')) as BlockLines
  const headerOf = (payload: Buffer): Buffer => decompress(payload.subarray(4, 4 + payload.readUInt32LE(0)), CODECS.deflate)
  const headerOf2 = (payload: Buffer, codec: number): Buffer => decompress(payload.subarray(4, 4 + payload.readUInt32LE(0)), codec)

  it('decodes delta varints as far as asked, and decodeTimes all of them', () => {
    const values = [0, 5, 5, 1_790_812_800_000_000, 1_790_812_800_000_007, 3, 2 ** 52, 17]
    const bytes = encodeTimes(values)
    const lazy = new DeltaVarints(bytes, values.length)
    expect(lazy.at(4)).toBe(values[4])
    expect(Array.from({ length: values.length }, (_, i) => lazy.at(i))).toEqual(values)
    expect([...decodeTimes(bytes, values.length)]).toEqual(values)
    expect(new DeltaVarints(bytes, values.length).indexOf(3)).toBe(5)
    expect(new DeltaVarints(bytes, values.length).indexOf(4)).toBeUndefined()
    expect(() => lazy.at(values.length)).toThrow(RangeError)
    // Bytes that end inside a value fail when that value is asked for, not before.
    const cut = new DeltaVarints(bytes.subarray(0, bytes.length - 1), values.length)
    expect(cut.at(0)).toBe(0)
    expect(() => cut.at(values.length - 1)).toThrow(RangeError)
    // A value too long to be one fails, and so does every later call: going on from inside
    // it read other values (ids) where they were not.
    const overlong = new DeltaVarints(Buffer.from([0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 2, 2, 2]), 3)
    expect(() => overlong.at(0)).toThrow(RangeError)
    expect(() => overlong.at(0)).toThrow(RangeError)
    expect(() => overlong.at(2)).toThrow(RangeError)
    // Bytes left over, or too few for n values at all.
    expect(() => new DeltaVarints(Buffer.concat([bytes, Buffer.from([2])]), values.length).at(values.length - 1)).toThrow(/bytes left/)
    expect(() => new DeltaVarints(Buffer.from([2]), 2)).toThrow(RangeError)
  })

  /** A block's lines packed as version 2 did (commit 1324f3e's packLines): lengths, derivations and text ids in the header. */
  function packV2 (lines: BlockLines, codec: CodecId): Buffer {
    const n = lines.ids.length
    const frames: Buffer[] = []
    for (let from = 0; from < n; from += FRAME_EVENTS) {
      const to = Math.min(n, from + FRAME_EVENTS)
      const text = lines.docs.slice(from, to).map((d) => d + '\n').join('') + lines.originals.slice(from, to).map((o) => o + '\n').join('')
      frames.push(compress(Buffer.from(text, 'utf8'), codec))
    }
    const ints = [2, n, frames.length, ...frames.map((f) => f.length), ...lines.m,
      ...lines.docs.flatMap((d, i) => [Buffer.byteLength(d), Buffer.byteLength(lines.originals[i] as string)]), ...lines.ctx]
    const raw = Buffer.alloc(4 * ints.length)
    ints.forEach((v, i) => raw.writeInt32LE(v, 4 * i))
    const head = compress(Buffer.concat([raw, Buffer.from(lines.ids.join('\n'), 'utf8')]), codec)
    const size = Buffer.alloc(4)
    size.writeUInt32LE(head.length, 0)
    return Buffer.concat([size, head, ...frames])
  }

  it('a file whose blocks are version 2 answers every read as the same file in version 3', async () => {
    const v3 = fresh()
    const events = [...(await fixtureEvents(true)).filter((e) => e.host?.name === 'kea-a'), ...(await fixtureEvents()).filter((e) => e.host?.name === 'kea-b')]
    const w = new SqliteStore({ path: v3 })
    await w.write(events)
    await w.close()
    const v2 = fresh()
    copyFileSync(v3, v2)
    const db = new Database(v2)
    try {
      const blocks = db.prepare('SELECT id, payload, codec FROM blocks').all() as Array<{ id: number, payload: Buffer, codec: CodecId }>
      expect(blocks.length).toBeGreaterThan(1)
      for (const b of blocks) {
        const packed = packV2(unpackLines(b.payload, b.codec), b.codec)
        expect(headerOf2(packed, b.codec).readInt32LE(0)).toBe(2)
        db.prepare('UPDATE blocks SET payload = ? WHERE id = ?').run(packed, b.id)
      }
    } finally {
      db.close()
    }
    const a = new SqliteStore({ path: v3, readers: { workers: 0 } })
    const b = new SqliteStore({ path: v2, readers: { workers: 0 } })
    try {
      const mac = events.find((e) => e.client?.mac !== undefined)?.client?.mac as string
      for (const q of [undefined, '"was released properly"', 'lease', 'LEASE_ALLOC', `mac:${mac}`, 'ip:192.0.2.0/24', 'ip:2001:db8::/32', 'code:DHCP6_*', 'NOT action:allocate']) {
        const where = q === undefined ? undefined : parseQuery(q) as QueryNode
        for (const sort of ['desc', 'asc'] as const) {
          const req = { sort, size: 50, ...(where === undefined ? {} : { where }) }
          expect(await b.search(req), `${q ?? 'all'} ${sort}`).toEqual(await a.search(req))
        }
        expect(await b.count(where === undefined ? {} : { where }), q).toBe(await a.count(where === undefined ? {} : { where }))
      }
      const ids = events.filter((_, i) => i % 17 === 0).map((e) => e.event.id)
      expect(await b.getMany(ids)).toEqual(await a.getMany(ids))
      expect(await b.evidence(ids)).toEqual(await a.evidence(ids))
      expect((await b.getMany(ids)).length).toBe(ids.length)
    } finally {
      await a.close()
      await b.close()
    }
  })

  it('a file holding version 3 payloads has the schema version that makes an older keatrail refuse it', async () => {
    const path = fresh()
    const store = new SqliteStore({ path })
    await store.write((await fixtureEvents(true)).slice(0, 20))
    await store.close()
    const db = new Database(path, { readonly: true })
    try {
      const payload = db.prepare('SELECT payload, codec FROM blocks').get() as { payload: Buffer, codec: number }
      expect(decompress(payload.payload.subarray(4, 4 + payload.payload.readUInt32LE(0)), payload.codec).readInt32LE(0)).toBe(3)
      // A keatrail of schema 14 read version 2 payloads only: it must not open this file.
      expect(db.pragma('user_version', { simple: true })).toBeGreaterThanOrEqual(MIGRATIONS.find((m) => m.name === 'block payload version 3')?.version ?? Infinity)
      expect(MIGRATIONS.find((m) => m.name === 'block payload version 3')?.version).toBe(15)
    } finally {
      db.close()
    }
  })

  it('a stored block whose id bytes are damaged fails every read that needs them, with the store\'s error, and never answers other ids', async () => {
    const path = fresh()
    const events = (await fixtureEvents(true)).filter((e) => e.host?.name === 'kea-a')
    const w = new SqliteStore({ path })
    await w.write(events)
    await w.close()
    const db = new Database(path)
    try {
      const row = db.prepare('SELECT id, payload, codec FROM blocks ORDER BY id LIMIT 1').get() as { id: number, payload: Buffer, codec: CodecId }
      const len = row.payload.readUInt32LE(0)
      const head = decompress(row.payload.subarray(4, 4 + len), row.codec)
      expect(head.readInt32LE(12)).toBe(1) // ids as offsets
      // The first id made a varint too long to be one (ten continuation bytes), the rest kept.
      const idsAt = 4 * (4 + head.readInt32LE(8))
      const bad = compress(Buffer.concat([head.subarray(0, idsAt), Buffer.alloc(10, 0x80), head.subarray(idsAt)]), row.codec)
      const size = Buffer.alloc(4)
      size.writeUInt32LE(bad.length, 0)
      db.prepare('UPDATE blocks SET payload = ? WHERE id = ?').run(Buffer.concat([size, bad, row.payload.subarray(4 + len)]), row.id)
    } finally {
      db.close()
    }
    const r = new SqliteStore({ path, readers: { workers: 0 } })
    try {
      const ids = events.slice(0, 3).map((e) => e.event.id)
      for (let i = 0; i < 2; i++) {
        await expect(r.getMany(ids), `read ${i + 1}`).rejects.toMatchObject({ code: 'KEATRAIL_ERR_STORE_READ' })
        await expect(r.search({ sort: 'asc', size: 10 }), `read ${i + 1}`).rejects.toMatchObject({ code: 'KEATRAIL_ERR_STORE_READ' })
      }
    } finally {
      await r.close()
    }
  })

  it('reads a version 2 payload as it was written', () => {
    expect(headerOf(v2Payload).readInt32LE(0)).toBe(2)
    expect(unpackLines(v2Payload, CODECS.deflate)).toEqual(v2Lines)
    const b = DecodedBlock.unpack(v2Payload, CODECS.deflate, 'src')
    for (const i of [0, 7, 11, 255, 256, 299]) {
      expect(b.indexOf(b.id(i)), `event ${i}`).toBe(i)
      expect(b.size(i)).toBeGreaterThan(v2Lines.originals[i]?.length as number)
    }
    expect(b.id(7)).toBe('other-shape-id')
    expect(b.id(1)).toBe(`src-${v2Lines.ids[1] as string}`)
    expect(b.indexOf('src-fffffff')).toBeUndefined()
  })

  it('writes version 3: each frame holds its events\' lengths; ids as offsets when every one is, else as text', () => {
    const offsets: BlockLines = { ...v2Lines, ids: v2Lines.ids.map((id, i) => i === 7 ? (0xfffffe).toString(16) : id) }
    const cases: Array<[string, BlockLines, number]> = [['offsets', offsets, 1], ['an id of another shape', v2Lines, 0],
      // A leading zero would not read back the same as an offset.
      ['a zero-padded id', { ...offsets, ids: offsets.ids.map((id, i) => i === 3 ? '0' + id : id) }, 0],
      // 13 hex digits are an offset (< 2^52); 14 are not (a hash, a journal cursor's).
      ['13 hex digits', { ...offsets, ids: offsets.ids.map((id, i) => i === 5 ? 'fffffffffffff' : id) }, 1],
      ['14 hex digits', { ...offsets, ids: offsets.ids.map((id, i) => i === 5 ? '10000000000000' : id) }, 0]]
    for (const [name, lines, kind] of cases) {
      for (const codec of [CODECS.deflate, CODECS.zstd]) {
        const payload = packLines(lines, codec)
        const head = decompress(payload.subarray(4, 4 + payload.readUInt32LE(0)), codec)
        expect(head.readInt32LE(0), name).toBe(PAYLOAD_VERSION)
        expect(head.readInt32LE(12), name).toBe(kind)
        expect(unpackLines(payload, codec), name).toEqual(lines)
        const b = DecodedBlock.unpack(payload, codec, 'src')
        for (let i = 0; i < b.n; i++) expect(b.indexOf(b.id(i)), `${name}: event ${i}`).toBe(i)
        expect(b.indexOf('src-fffffff')).toBeUndefined()
        expect(b.indexOf('other-src-0')).toBeUndefined()
      }
    }
    // Offsets: ~2 bytes an event in the header; text ids cost more.
    expect(headerOf(packLines(offsets, CODECS.deflate)).length).toBeLessThan(headerOf(packLines(v2Lines, CODECS.deflate)).length)
  })

  it('a page\'s total stops counting soon after the page is full (reported "at least"); count() stays exact', async () => {
    const path = fresh()
    const store = new SqliteStore({ path, readers: { workers: 0 } })
    const s = shape(30_000)
    const { events } = await fill(store, s)
    try {
      // Every event matches: the page is full in the newest block, the rest is only counted.
      const dense = parseQuery('ip:10.0.0.0/8') as QueryNode
      const page = await store.search({ where: dense, size: 10 })
      expect(page.events.length).toBe(10)
      expect(page.total.relation).toBe('gte')
      expect(page.total.value).toBeGreaterThanOrEqual(10)
      expect(page.total.value).toBeLessThanOrEqual(2 * BLOCK_EVENTS)
      expect(await store.count({ where: dense })).toBe(events)
      // A client's few events: counted exactly.
      const sparse = parseQuery(`mac:${mac(7, 0)}`) as QueryNode
      const few = await store.search({ where: sparse, size: 2 })
      expect(few.total).toEqual({ value: await store.count({ where: sparse }), relation: 'eq' })
      expect(few.total.value).toBeGreaterThan(2)
    } finally {
      await store.close()
    }
  })

  it('dense matches page as the row layout does, newest or oldest first, though their totals stop counting', async () => {
    // 12,000 lease lines at random times within an hour (ties included), in no time order: a
    // page is full long before its first block ends, and what the scan meets after that may
    // still beat the page.
    let x = 7
    const rnd = (n: number): number => { x = (x * 1103515245 + 12345) % 2147483648; return x % n }
    const t0 = Date.UTC(2026, 10, 24)
    // Half at any ms of the hour, half on 40 instants: many hits tie with a page's last one.
    const lines = Array.from({ length: 12_000 }, (_, i) => {
      const stamp = new Date(t0 + (i % 2 === 0 ? rnd(3_600_000) : 90_000 * rnd(40))).toISOString().replace('T', ' ').slice(0, 23)
      const label = `[hwtype=1 02:00:00:00:${(i >> 8 & 255).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}], cid=[no info], tid=0x${i.toString(16)}`
      return i % 10 === 9
        ? `${stamp} INFO  [kea-dhcp4.leases/811.140000000000000] DHCP4_RELEASE ${label}: address 10.0.${i >> 8 & 255}.${i & 255} was released properly.`
        : `${stamp} INFO  [kea-dhcp4.leases/811.140000000000000] DHCP4_LEASE_ALLOC ${label}: lease 10.0.${i >> 8 & 255}.${i & 255} has been allocated for 4000 seconds`
    })
    const { events } = await parseBuffer(lines.join('\n') + '\n', { host: 'kea-a', path: 'dense.log', rederivable: true })
    const blocks = new SqliteStore({ path: fresh(), readers: { workers: 0 } })
    const rows = new SqliteRowStore({ path: fresh(), readers: { workers: 0 } })
    try {
      await blocks.write(events)
      await rows.write(events)
      // Every tenth event, and every event.
      for (const q of ['"was released properly"', 'ip:10.0.0.0/8']) {
        const where = parseQuery(q) as QueryNode
        const walk = async (st: Store, sort: 'asc' | 'desc'): Promise<string[]> => {
          const out: string[] = []
          let cursor: string | undefined
          // The first pages: each one's scan passes its cutoff and stops testing.
          for (let i = 0; i < 6; i++) {
            const p = await st.search({ where, sort, size: 100, ...(cursor === undefined ? {} : { cursor }) })
            out.push(...p.events.map((e) => e.event.id))
            cursor = p.cursor
            if (cursor === undefined) break
          }
          return out
        }
        for (const sort of ['desc', 'asc'] as const) {
          const want = await walk(rows, sort)
          expect(want.length, `${q} ${sort}`).toBe(600)
          expect(await walk(blocks, sort), `${q} ${sort}`).toEqual(want)
        }
        // 1,200 releases are counted whole; 12,000 addresses stop counting.
        const first = await blocks.search({ where, size: 100 })
        const all = await blocks.count({ where })
        expect(first.total, q).toEqual(q.startsWith('ip:') ? { value: expect.any(Number), relation: 'gte' } : { value: all, relation: 'eq' })
        expect(first.total.value, q).toBeLessThan(q.startsWith('ip:') ? all : all + 1)
      }
    } finally {
      await blocks.close()
      await rows.close()
    }
  })

  it('compression: deflate writes deflate blocks, and a file mixes codecs (a block grown by another keatrail is re-packed with its codec)', async () => {
    const path = fresh()
    const events = await fixtureEvents(true)
    const v4 = events.filter((e) => e.event.dataset === 'kea.dhcp4')
    const deflate = new SqliteStore({ path, compression: 'deflate' })
    await deflate.write(v4.slice(0, 20))
    await deflate.close()
    const codecs = (): number[] => { const db = new Database(path, { readonly: true }); try { return db.prepare('SELECT codec FROM blocks ORDER BY id').pluck().all() as number[] } finally { db.close() } }
    expect(codecs()).toEqual([CODECS.deflate])
    const zstd = new SqliteStore({ path })
    await zstd.write(v4.slice(20))
    expect(codecs()).toEqual([CODECS.zstd])
    expect((await allIds(zstd)).sort()).toEqual(v4.map((e) => e.event.id).sort())
    await zstd.close()
    expect(() => new SqliteStore({ path, compression: 'lz4' as 'zstd' })).toThrow(expect.objectContaining({ code: 'KEATRAIL_ERR_CONFIG_INVALID', message: expect.stringContaining('store.sqlite.compression') }))
  })

  it('keatrail store migrate: a row-layout file converts into the same answers, resuming where it stopped', async () => {
    const path = fresh()
    const rows = new SqliteRowStore({ path, readers: { workers: 0 } })
    const events = await fixtureEvents()
    await rows.write(events)
    const where = parseQuery('action:allocate OR ip:192.0.2.0/24') as QueryNode
    const want = { all: await allIds(rows), some: await allIds(rows, where) }
    const ip = events.find((e) => e.event.action === 'allocate' && e.client?.ip !== undefined) as KeaEvent
    const holder = await holderAt(rows.leases, ip.client?.ip as string, Date.parse(ip['@timestamp']) + 1)
    await rows.close()
    // The block layout refuses the file until it is converted: never an empty answer.
    expect(() => new SqliteStore({ path })).toThrow(expect.objectContaining({ code: 'KEATRAIL_ERR_STORE_LAYOUT' }))
    // Stopped after its first chunk (as a kill would), then run again.
    let calls = 0
    await expect(migrateRowsToBlocks(path, () => { if (++calls === 2) throw new Error('stopped') })).rejects.toThrow('stopped')
    const seen: number[] = []
    expect(await migrateRowsToBlocks(path, (p) => { seen.push(p.converted) })).toBe(events.length)
    expect(seen[0]).toBeGreaterThan(0)
    const blocks = new SqliteStore({ path, readers: { workers: 0 } })
    expect(await allIds(blocks)).toEqual(want.all)
    expect(await allIds(blocks, where)).toEqual(want.some)
    expect(await holderAt(blocks.leases, ip.client?.ip as string, Date.parse(ip['@timestamp']) + 1)).toEqual(holder)
    expect(await blocks.write(events.slice(0, 100))).toMatchObject({ written: 0, duplicates: 100 })
    await blocks.close()
    expect(await migrateRowsToBlocks(path)).toBe(0)
  })

  it('keeps only the raw record of an event its parser can make again, and reads it back as written', async () => {
    const sizes: Record<string, number> = {}
    for (const rederivable of [false, true]) {
      const path = fresh()
      const store = new SqliteStore({ path, readers: { workers: 0 } })
      const events = await fixtureEvents(rederivable)
      await store.write(events)
      const key = (e: KeaEvent): string => e.event.id
      const back = await store.getMany(events.map(key))
      expect(back.map((e) => JSON.stringify(e))).toEqual(events.map((e) => JSON.stringify(e)))
      await store.close()
      const db = new Database(path, { readonly: true })
      const rows = db.prepare('SELECT payload, codec, pv FROM blocks').all() as Array<{ payload: Buffer, codec: number, pv: number | null }>
      sizes[String(rederivable)] = rows.reduce((n, r) => n + r.payload.length, 0)
      const contexts = rows.flatMap((r) => { const b = DecodedBlock.unpack(r.payload, r.codec, ''); return Array.from({ length: b.n }, (_, i) => b.context(i)) })
      expect(contexts.every((c) => rederivable ? c >= 0 : c === -1)).toBe(true)
      expect(rows.every((r) => r.pv === (rederivable ? PARSER_VERSION : null))).toBe(true)
      expect(db.prepare('SELECT count(*) FROM parse_contexts').pluck().get()).toBe(rederivable ? 2 : 0)
      db.close()
    }
    // Raw records only: well under half the bytes of stored documents (bench/store has the figures).
    expect(sizes.true).toBeLessThan((sizes.false as number) / 2)
  })

  it('scans, rather than prunes by postings, a block written by an older parser, and reads it with today\'s rules', async () => {
    const path = fresh()
    const store = new SqliteStore({ path, readers: { workers: 0 } })
    const events = await fixtureEvents(true)
    await store.write(events)
    await store.close()
    const mac = events.find((e) => e.client?.mac !== undefined)?.client?.mac as string
    const where = parseQuery(`mac:${mac}`) as QueryNode
    const want = events.filter((e) => e.client?.mac === mac).map((e) => e.event.id).sort()
    // An older parser's blocks: their postings lack what today's rules find (none left here).
    const db = new Database(path)
    db.prepare('UPDATE blocks SET pv = ?').run(PARSER_VERSION - 1)
    db.prepare('DELETE FROM block_postings').run()
    db.close()
    const old = new SqliteStore({ path, readers: { workers: 0 } })
    expect((await allIds(old, where)).sort()).toEqual(want)
    const [first] = await old.getMany([want[0] as string])
    expect(first?.client?.mac).toBe(mac)
    await old.close()
  })

  it('a block corrupted on disk: a read that reaches it fails with a coded error, the others answer, and new events are still stored', async () => {
    const path = fresh()
    const events = await fixtureEvents(true)
    const v4 = events.filter((e) => e.event.dataset === 'kea.dhcp4')
    const v6 = events.filter((e) => e.event.dataset === 'kea.dhcp6')
    const store = new SqliteStore({ path })
    await store.write(v4.slice(0, -10))
    await store.write(v6)
    await store.close()
    // Bytes of the payload past its header overwritten (a torn or bit-rotten page).
    const db = new Database(path)
    const victim = db.prepare('SELECT id, payload FROM blocks WHERE source_id = ?').get(v4[0]?.kea.source_id) as { id: number, payload: Buffer }
    const bad = Buffer.from(victim.payload)
    bad.fill(0x5a, bad.length - Math.min(200, bad.length - 8))
    db.prepare('UPDATE blocks SET payload = ? WHERE id = ?').run(bad, victim.id)
    db.close()
    const again = new SqliteStore({ path, retention: { maxAgeDays: 1 } })
    try {
      await expect(again.search({ where: parseQuery('dataset:kea.dhcp4') as QueryNode, size: 10_000 })).rejects.toMatchObject({ code: 'KEATRAIL_ERR_STORE_READ' })
      const six = await again.search({ where: parseQuery('dataset:kea.dhcp6') as QueryNode, size: 10_000 })
      expect(six.events.length).toBe(v6.length)
      // The source's newest block cannot be read to grow: the batch goes to a block of its own.
      expect(await again.write(v4.slice(-10))).toMatchObject({ written: 10 })
      expect((await again.getMany(v4.slice(-10).map((e) => e.event.id))).length).toBe(10)
      // And it still ages out.
      again.applyRetention(Date.parse('2100-01-01'))
      expect(await again.count()).toBe(0)
      expect(tables(path).postings).toEqual([])
    } finally {
      await again.close()
    }
  })

  it('a parse context deleted or damaged on disk: its events read from their raw records, marked unparsed; nothing else changes', async () => {
    const events = await fixtureEvents(true)
    for (const damage of ['DELETE FROM parse_contexts WHERE id = 1', 'UPDATE parse_contexts SET spec = \'{"v":1,"pattern":\' WHERE id = 1', 'UPDATE parse_contexts SET spec = \'{"v":1,"pattern":{}}\' WHERE id = 1']) {
      const path = fresh()
      const store = new SqliteStore({ path })
      await store.write(events)
      await store.close()
      const db = new Database(path)
      const damaged = db.prepare('SELECT count(*) FROM parse_contexts').pluck().get() as number
      db.exec(damage)
      db.close()
      expect(damaged, 'one context per fixture file').toBe(2)
      // Reader workers (they make the newest contexts' parsers when they start) and the store's own connection.
      for (const workers of [2, 0]) {
        const again = new SqliteStore({ path, readers: { workers } })
        try {
          const back = (await again.search({ sort: 'asc', size: 10_000 })).events
          expect(back.length, damage).toBe(events.length)
          const byId = new Map(back.map((e) => [e.event.id, e]))
          let underived = 0
          for (const e of events) {
            const b = byId.get(e.event.id) as KeaEvent
            expect(b.event.original).toBe(e.event.original)
            expect(b['@timestamp']).toBe(e['@timestamp'])
            if (b.kea.parse.status === 'unmatched' && b.kea.parse.reason?.startsWith('not re-derived: parse context 1') === true) {
              underived++
              expect(b.message).toBe(e.event.original)
            } else {
              expect(JSON.stringify(b)).toBe(JSON.stringify(e))
            }
          }
          const ctx1 = events.filter((e) => e.log.file?.path === events[0]?.log.file?.path).length
          expect(underived, `${damage}: the events of context 1`).toBe(ctx1)
          // Full text still finds them; new events are still stored and read whole.
          expect((await again.search({ where: parseQuery('"DHCP4_LEASE_ALLOC"') as QueryNode, size: 10 })).events.length).toBeGreaterThan(0)
        } finally {
          await again.close()
        }
      }
    }
  })

  it('tests identifiers and IPv4 ranges on a re-derived event\'s raw record before re-deriving it, and lets every match through', async () => {
    const events = (await fixtureEvents(true)).slice(0, FRAME_EVENTS)
    const src = events[0]?.kea.source_id as string
    for (const [stored, contextOf] of [['re-derived', () => 1], ['stored documents', () => -1]] as const) {
      const b = DecodedBlock.unpack(packLines(linesOf(events, src, contextOf)), CODECS.zstd, src)
      for (const q of ['ip:192.0.2.0/24', 'ip:192.0.0.0/16', 'ip:192.0.2.10', `mac:${events.find((e) => e.client?.mac !== undefined)?.client?.mac ?? ''}`]) {
        const where = parseQuery(q) as QueryNode
        const test = literalFilter(planOf({ where }))?.(b, 0)
        expect(test, `${q}: a test`).toBeDefined()
        const passed = events.map((_, i) => (test as (i: number) => boolean)(i))
        const matching = events.map((e) => evaluate(where, e))
        expect(matching.filter((m, i) => m && !passed[i]), `${q}, ${stored}: every match passes`).toEqual([])
        // Kept out: the events whose raw record (stored document) lacks the text.
        expect(passed.filter(Boolean).length, `${q}, ${stored}: events are kept out`).toBeLessThan(events.length)
        expect(matching.some(Boolean), `${q}: the fixture holds matches`).toBe(true)
      }
    }
  })

  it('finds a word in a frame\'s documents and raw records in any ASCII case, and names every event beyond ASCII', async () => {
    const events = (await fixtureEvents(true)).slice(0, FRAME_EVENTS)
    const src = events[0]?.kea.source_id as string
    const release = events.findIndex((e) => e.event.original.includes('released'))
    expect(release).toBeGreaterThanOrEqual(0)
    const edited = events.map((x, i) => i === release
      ? { ...x, event: { ...x.event, original: x.event.original.replace('released', 'RELEASED') } }
      : i === 3 ? { ...x, event: { ...x.event, original: x.event.original + ' café' }, message: x.message + ' café' } : x)
    for (const [stored, contextOf] of [['re-derived', () => 1], ['stored documents', () => -1]] as const) {
      const b = DecodedBlock.unpack(packLines(linesOf(edited, src, contextOf)), CODECS.zstd, src)
      for (const word of ['released', 'properly', 'lease', 'dhcp4_lease_alloc', 'no_such_word']) {
        const want = edited.flatMap((_, i) => {
          const text = `${b.doc(i)}\n${b.original(i)}`
          return /[^\x00-\x7f]/.test(text) || text.toLowerCase().includes(word) ? [i] : []
        })
        expect([...b.linesWithWord(0, Buffer.from(word))].sort((x, y) => x - y), `${word}, ${stored}`).toEqual(want)
      }
      expect(b.linesWithWord(0, Buffer.from('released')).has(release), stored).toBe(true)
      expect(b.linesWithWord(0, Buffer.from('no_such_word'))).toEqual(new Set([3]))
    }
  })

  it('finds an identifier in a raw record whatever its ASCII case, with bytes beyond ASCII where they were', async () => {
    expect(lowerBytes(Buffer.from('HWTYPE=1 0A:BC É ×ß')).toString('latin1')).toBe(Buffer.from('hwtype=1 0a:bc É ×ß').toString('latin1').toLowerCase())
    expect(lowerBytes(Buffer.from('É host-Ä')).length).toBe(Buffer.from('É host-Ä').length)
    const events = (await fixtureEvents(true)).slice(0, FRAME_EVENTS)
    const src = events[0]?.kea.source_id as string
    const at = events.findIndex((e) => e.client?.mac !== undefined && e.event.original.includes(e.client.mac.toLowerCase().replaceAll('-', ':')))
    const e = events[at] as KeaEvent
    const mac = (e.client?.mac as string).toLowerCase().replaceAll('-', ':')
    const shouted = events.map((x, i) => i === at ? { ...x, event: { ...x.event, original: x.event.original.replace(mac, mac.toUpperCase()) } } : x)
    expect(shouted[at]?.event.original).toContain(mac.toUpperCase())
    const b = DecodedBlock.unpack(packLines(linesOf(shouted, src, () => 1)), CODECS.zstd, src)
    const hits = b.linesWith(0, Buffer.from('"no such document text"'), lowerBytes(Buffer.from(mac)))
    expect(hits.has(at)).toBe(true)
  })
})
