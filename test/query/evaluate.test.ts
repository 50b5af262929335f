import Database from 'better-sqlite3'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { KeaEvent } from '../../src/parse/event.js'
import { compileQuery, textTokens } from '../../src/query/evaluate.js'
import { ftsMatch } from '../../src/query/translate.js'
import { SQLITE_VERSION } from '../../src/query/unicode61-table.js'
import { SqliteStore } from '../../src/store/sqlite/store.js'
import type { EventQuery } from '../../src/store/types.js'
import { eventQueries, loadEvents } from '../helpers/query-cases.js'

// The block store (issue 19) evaluates queries on decoded events in JavaScript; these tests hold
// that evaluation to what today's SQLite store answers: FTS5's own tokens, and the store's hits.

/** An FTS5 table configured like events_fts, and its tokens per row read back through fts5vocab. */
class Fts {
  readonly db = new Database(':memory:')
  constructor () {
    this.db.exec(`CREATE VIRTUAL TABLE t USING fts5 (x, tokenize = "unicode61 tokenchars '_'");
      CREATE VIRTUAL TABLE v USING fts5vocab (t, 'instance');`)
  }

  insert (rows: readonly string[]): void {
    const ins = this.db.prepare('INSERT INTO t (rowid, x) VALUES (?, ?)')
    this.db.transaction(() => { rows.forEach((r, i) => ins.run(i + 1, r)) })()
  }

  /** SQLite's tokens of each row, in order (rows without tokens are absent). */
  tokens (): Map<number, string[]> {
    const out = new Map<number, string[]>()
    for (const r of this.db.prepare('SELECT term, doc FROM v ORDER BY doc, offset').iterate() as IterableIterator<{ term: string, doc: number }>) {
      const list = out.get(r.doc)
      if (list === undefined) out.set(r.doc, [r.term]); else list.push(r.term)
    }
    return out
  }

  match (q: string): number[] {
    return (this.db.prepare('SELECT rowid FROM t WHERE t MATCH ? ORDER BY rowid').all(q) as Array<{ rowid: number }>).map((r) => r.rowid)
  }
}

/** Rows whose JS tokens differ from SQLite's, for a readable failure. */
function mismatches (rows: readonly string[]): Array<{ row: string, sqlite: string[], js: string[] }> {
  const fts = new Fts()
  fts.insert(rows)
  const sqlite = fts.tokens()
  const bad: Array<{ row: string, sqlite: string[], js: string[] }> = []
  rows.forEach((row, i) => {
    const want = sqlite.get(i + 1) ?? []
    // A token cut inside a character ends in its kept bytes as lone surrogates (evaluate.ts),
    // which SQLite's text reads back as U+FFFD.
    const got = textTokens(row).map((t) => t.replace(/[\udc80-\udcff]+$/u, '\ufffd'))
    if (got.length !== want.length || got.some((t, j) => t !== want[j])) bad.push({ row: row.length > 200 ? `${row.slice(0, 200)}…` : row, sqlite: want, js: got })
  })
  fts.db.close()
  return bad
}

/** A small deterministic generator (mulberry32): the same strings on every run. */
function random (seed: number): () => number {
  let a = seed
  return () => {
    a = (a + 0x6d2b79f5) | 0
    let t = Math.imul(a ^ (a >>> 15), 1 | a)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const PIECES = [
  'lease', 'LEASE', 'Lease_Alloc', '_', '__x__', 'tid=0x86c912', '192.0.2.10', '2001:db8::1', '00:0c:01:02:03:05', 'DHCP4_LEASE_ALLOC',
  ' ', ' ', ' ', '  ', '\t', '\n', ',', '.', ':', ';', '-', '/', '[', ']', '(', ')', '"', "'", '=', '*', '#', '@', '%', '+', '…', '—', '«', '»', '\u00a0', '\u2003',
  '0', '42', '١٢٣', '½', '²', 'Ⅻ', 'é', 'É', 'e\u0301', 'E\u0301', 'a\u0332', 'ñandú', 'CAFÉ', 'crème', 'Ǖ', 'ǖ', 'ß', 'ẞ', 'İ', 'ı', 'ſ', 'µ', 'Ω', 'ΆΈΉ', 'ς', 'Σ',
  'Straße', 'Ёлка', 'й', 'ї', 'Ꭰ', 'ꭰ', 'ǅ', 'ﬁ', 'Ａｂｃ', '東京', 'ひらがな', 'カタカナ', '한국어', 'עברית', 'العربية', 'हिन्दी', 'ไทย',
  '😀', '👍🏽', '🏳️‍🌈', '👨‍👩‍👧', '\u200d', '\u200b', '\ufeff', '\ue000', '\u{f0000}', '\u0378', '\u{10ffff}', '𐐀', '𐐨', '𝔘𝔫𝔦', '🄰', '\ud800', '\udc00x',
  '\u0000', '\u0007', '\u007f', '\u0085', '\u00ad', '\u2028', 'x\u0300\u0301y', '\u0300lead', 'trail\u0300', 'Ⓐ', '℃', '€', '$', '^', '`', '~', '|', '\\'
]

function generated (n: number, pieces: readonly string[] = PIECES): string[] {
  const next = random(19)
  const out: string[] = []
  for (let i = 0; i < n; i++) {
    let s = ''
    const parts = 1 + Math.floor(next() * 12)
    for (let j = 0; j < parts; j++) s += pieces[Math.floor(next() * pieces.length)]
    out.push(s)
  }
  return out
}

describe(`textTokens as FTS5 unicode61 tokenchars '_' (SQLite ${SQLITE_VERSION})`, () => {
  it('tokenizes every code point as SQLite does, alone and inside a token', () => {
    // Each code point alone and between two letters: which ones start a token, continue one,
    // separate tokens, and what they fold to. A failure here means SQLite's Unicode tables
    // changed: regenerate src/query/unicode61-table.ts (scripts/unicode61-table.ts).
    const rows: string[] = []
    for (let base = 0; base < 0x110000; base += 256) {
      let s = ''
      for (let c = base; c < base + 256; c++) {
        if (c >= 0xd800 && c <= 0xdfff) continue
        const ch = String.fromCodePoint(c)
        s += `q${ch}q ${ch} `
      }
      rows.push(s)
    }
    expect(mismatches(rows)).toEqual([])
  }, 120_000)

  it('tokenizes the messages of the fixtures as SQLite does', async () => {
    const messages = (await loadEvents()).map((e) => e.message)
    expect(messages.length).toBeGreaterThan(10_000)
    expect(mismatches(messages)).toEqual([])
  }, 120_000)

  it('tokenizes generated text (letters of many scripts, accents, digits, punctuation, _, emojis) as SQLite does', () => {
    const rows = generated(600)
    expect(rows.some((r) => /[^\x00-\x7f]/.test(r))).toBe(true)
    expect(mismatches(rows)).toEqual([])
  })

  it('cuts tokens at 32,768 bytes as FTS5 does', () => {
    const rows = ['a'.repeat(40_000), `x ${'Ab_'.repeat(11_000)} y`, 'é'.repeat(20_000), `${'a'.repeat(32_767)}é`, 'b'.repeat(32_768), 'ア'.repeat(12_000), `${'É'.repeat(5000)}${'𐐀'.repeat(6000)}`]
    expect(textTokens(rows[0] as string)[0]?.length).toBe(32_768)
    // Cut after 10,922 of 3-byte characters and 2 bytes of the next: equal to any token that
    // starts with the same 32,768 bytes, as in SQLite.
    const fts = new Fts()
    fts.insert(['ア'.repeat(12_000)])
    for (const n of [10_922, 10_923, 11_000]) {
      const q = 'ア'.repeat(n)
      expect(compileQuery({ text: q })({ message: 'ア'.repeat(12_000) } as unknown as KeaEvent), `${n}`).toBe(fts.match(ftsMatch(q, true)).length > 0)
    }
    // ASCII past the cut: the message's token and the query's are cut alike (no regex can say so).
    fts.db.close()
    const ascii = new Fts()
    ascii.insert(['a'.repeat(40_000)])
    for (const [message, q] of [['a'.repeat(40_000), 'a'.repeat(40_000)], ['a'.repeat(40_000), 'a'.repeat(33_000)], [`x ${'a'.repeat(40_000)} y`, `x ${'a'.repeat(33_000)} y`]]) {
      for (const phrase of [true, false]) {
        expect(compileQuery({ where: { type: 'text', value: q as string, phrase } })({ message } as unknown as KeaEvent), `${(message as string).length}, ${(q as string).length}, phrase ${phrase}`).toBe(true)
      }
    }
    expect(ascii.match(ftsMatch('a'.repeat(33_000), true))).toEqual([1])
    ascii.db.close()
    expect(mismatches(rows)).toEqual([])
  })

  /** compileQuery's text clauses against FTS5 MATCH over `rows`, with queries cut from them. */
  function matchesAsFts (rows: readonly string[], seed: number): void {
    const fts = new Fts()
    fts.insert(rows)
    const next = random(seed)
    let hits = 0
    let blank = 0
    for (let i = 0; i < 300; i++) {
      // A query made of a piece of a stored row: a phrase, or whitespace-separated words.
      const row = rows[Math.floor(next() * rows.length)] as string
      const from = Math.floor(next() * row.length)
      const text = row.slice(from, from + 1 + Math.floor(next() * 24)).replaceAll('\u0000', '')
      const phrase = next() < 0.5
      const match = ftsMatch(text, phrase)
      const where = { type: 'text', value: text, phrase } as const
      if (match === '') {
        // Blank words: FTS5 refuses the empty query, and so does compileQuery.
        expect(() => fts.match(match)).toThrow(/syntax error/)
        expect(() => compileQuery({ where })).toThrow()
        blank++
        continue
      }
      const want = fts.match(match)
      const pred = compileQuery({ where })
      const got = rows.flatMap((r, j) => pred({ message: r } as unknown as KeaEvent) ? [j + 1] : [])
      expect(got, `${JSON.stringify(text)} phrase=${phrase}`).toEqual(want)
      hits += want.length
    }
    expect(hits).toBeGreaterThan(300)
    expect(blank).toBeLessThan(30)
    fts.db.close()
  }

  it('matches words and phrases in text as FTS5 MATCH does', () => {
    matchesAsFts(generated(300), 7)
  })

  it('matches words and phrases in ASCII text (tested by regexes, not tokens) as FTS5 MATCH does', () => {
    const ascii = PIECES.filter((p) => !/[^\x00-\x7f]/.test(p))
    expect(ascii.length).toBeGreaterThan(30)
    const rows = generated(300, ascii)
    expect(rows.every((r) => !/[^\x00-\x7f]/.test(r))).toBe(true)
    matchesAsFts(rows, 11)
  })
})

describe('compileQuery answers as the SQLite store does', () => {
  let events: KeaEvent[] = []
  let store: SqliteStore
  beforeAll(async () => {
    events = await loadEvents()
    store = new SqliteStore({ path: join(mkdtempSync(join(tmpdir(), 'kt-eval-')), 'k.db'), readers: { workers: 0 } })
    for (let i = 0; i < events.length; i += 2000) await store.write(events.slice(i, i + 2000))
  }, 120_000)
  afterAll(async () => { await store.close() })

  async function storeIds (q: EventQuery): Promise<string[]> {
    const out: string[] = []
    let cursor: string | undefined
    for (let i = 0; i < 100; i++) {
      const page = await store.search({ ...q, sort: 'asc', size: 1000, ...(cursor === undefined ? {} : { cursor }) })
      out.push(...page.events.map((e) => e.event.id))
      cursor = page.cursor
      if (cursor === undefined) break
    }
    return out.sort()
  }

  const jsIds = (q: EventQuery): string[] => events.filter(compileQuery(q)).map((e) => e.event.id).sort()

  it('stores every event (the comparison covers them all)', async () => {
    expect(await store.count({})).toBe(events.length)
  })

  const cases = eventQueries()
  const sizes = new Map<string, number>()
  for (const { name, q } of cases) {
    it(name, async () => {
      const want = await storeIds(q)
      expect(jsIds(q)).toEqual(want)
      expect(await store.count(q)).toBe(want.length)
      sizes.set(name, want.length)
    })
  }

  it('the cases hold hits and misses (no comparison is vacuous)', () => {
    const counts = cases.map(({ name }) => sizes.get(name))
    expect(counts.every((n) => n !== undefined)).toBe(true)
    expect(counts.filter((n) => n !== undefined && n > 0 && n < events.length).length).toBeGreaterThan(cases.length * 0.75)
    expect(counts.some((n) => n === 0)).toBe(true)
  })

  it('keeps events where SQL yields NULL under NOT, as the store does', () => {
    // edge-3: client.ip is no address, so client_hex is NULL; its related.ip 192.0.2.10 is in the
    // CIDR. (true AND NULL) is NULL, NOT coalesce(NULL, 0) is true.
    const e = events.find((x) => x.event.id === 'edge-3') as KeaEvent
    expect(compileQuery({ where: { type: 'cidr', field: 'client.ip', value: '192.0.2.0/24' } })(e)).toBe(false)
    expect(compileQuery({ where: { type: 'not', child: { type: 'cidr', field: 'client.ip', value: '192.0.2.0/24' } } })(e)).toBe(true)
    // edge-5 has no code: NOT (code = X OR false) keeps it, NOT (code = X OR true) drops it.
    const f = events.find((x) => x.event.id === 'edge-5') as KeaEvent
    const not = (...children: EventQuery['where'][]): EventQuery => ({ where: { type: 'not', child: { type: 'or', children: children as NonNullable<EventQuery['where']>[] } } })
    expect(compileQuery(not({ type: 'term', field: 'event.code', value: 'X' }, { type: 'term', field: 'event.dataset', value: 'nope' }))(f)).toBe(true)
    expect(compileQuery(not({ type: 'term', field: 'event.code', value: 'X' }, { type: 'term', field: 'event.dataset', value: f.event.dataset }))(f)).toBe(false)
  })

  it('refuses what toSql refuses', () => {
    expect(() => compileQuery({ where: { type: 'term', field: 'message', value: 'x' } })).toThrow()
    expect(() => compileQuery({ where: { type: 'term', field: 'nope', value: 'x' } })).toThrow()
    expect(() => compileQuery({ where: { type: 'cidr', field: 'related.ip', value: 'not-an-address' } })).toThrow()
    expect(() => compileQuery({ where: { type: 'range', field: '@timestamp', op: '>', value: 'yesterday' } })).toThrow()
  })
})
