import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parseAddressOrPrefix } from '../../src/leases/address.js'
import type { KeaEvent } from '../../src/parse/event.js'
import { FIELDS } from '../../src/query/fields.js'
import { parseQuery, type QueryNode } from '../../src/query/parse.js'
import { SqliteStore } from '../../src/store/sqlite/store.js'
import { SqliteRowStore } from '../../src/store/sqlite/row-store.js'
import type { Store } from '../../src/store/types.js'
import { engineStore, enginesUp } from '../helpers/engines.js'
import { parseBuffer, plainCopy, readFixture } from '../helpers/fixtures.js'
import { CONTRACT_QUERIES } from '../helpers/query-cases.js'

// The query language, every store: the same real events, the same queries, the same hits as an
// evaluator of the AST written here against the events themselves.

function get (e: KeaEvent, path: string): unknown {
  return path.split('.').reduce<unknown>((o, k) => (o as Record<string, unknown> | undefined)?.[k], e)
}

/** Structured clauses evaluated in JS (full text is compared between stores only). */
function evaluate (n: QueryNode, e: KeaEvent): boolean {
  switch (n.type) {
    case 'and': return n.children.every((c) => evaluate(c, e))
    case 'or': return n.children.some((c) => evaluate(c, e))
    case 'not': return !evaluate(n.child, e)
    case 'text': throw new Error('text is compared between stores')
    default: {
      const def = FIELDS[n.field]
      const v = n.field === '@timestamp' ? e['@timestamp'] : get(e, def?.path ?? n.field)
      const values = Array.isArray(v) ? v : v === undefined ? [] : [v]
      return values.some((x) => {
        if (n.type === 'term') return String(x) === n.value
        if (n.type === 'prefix') return String(x).startsWith(n.value)
        if (n.type === 'cidr') { const r = parseAddressOrPrefix(n.value); const a = parseAddressOrPrefix(String(x)); return a.lo >= r.lo && a.lo <= r.hi }
        const a = n.field === '@timestamp' ? Date.parse(String(x)) : Number(x)
        const b = n.field === '@timestamp' ? Date.parse(n.value) : Number(n.value)
        return n.op === '>' ? a > b : n.op === '>=' ? a >= b : n.op === '<' ? a < b : a <= b
      })
    }
  }
}
const hasText = (n: QueryNode): boolean => n.type === 'text' || (n.type === 'not' ? hasText(n.child) : n.type === 'and' || n.type === 'or' ? n.children.some(hasText) : false)

const QUERIES = CONTRACT_QUERIES

const { up: engines, skip: esSkip } = enginesUp()
const kinds = ['sqlite', 'rows', ...engines.map((e) => e.name)]

describe(`query language on ${kinds.join(' and ')}${esSkip === '' ? '' : ` (skipped: ${esSkip})`}`, () => {
  const stores: Record<string, Store> = {}
  let events: KeaEvent[] = []
  beforeAll(async () => {
    if (process.env.CI === 'true' && esSkip !== '') throw new Error(`CI needs Elasticsearch and OpenSearch: ${esSkip}`)
    for (const [file, host] of [['captured/kea-dhcp4-INFO-file.log', 'kea-a'], ['captured/kea-dhcp6-INFO-file.log', 'kea-a'], ['kea-2.2.0-dhcp4-INFO-full.log', 'kea-b']] as const) {
      events.push(...(await parseBuffer(readFixture(file), { host, path: `${host}/${file}`, rederivable: true })).events)
    }
    // Marked re-derivable: the block store keeps their raw records only (documents made again when read).
    events = events.map(plainCopy)
    stores.sqlite = new SqliteStore({ path: join(mkdtempSync(join(tmpdir(), 'kt-q-')), 'k.db') })
    stores.rows = new SqliteRowStore({ path: join(mkdtempSync(join(tmpdir(), 'kt-q-')), 'k.db') })
    for (const engine of engines) {
      const es = engineStore(engine, { namespace: `query${Date.now().toString(36)}`, refresh: true })
      await es.ensureTemplates()
      stores[engine.name] = es
    }
    for (const s of Object.values(stores)) await s.write(events)
  }, 120_000)
  afterAll(async () => { for (const s of Object.values(stores)) await s.close() })

  async function ids (s: Store, where: QueryNode): Promise<string[]> {
    const out: string[] = []
    let cursor: string | undefined
    for (let i = 0; i < 50; i++) {
      const page = await s.search({ where, sort: 'asc', size: 1000, ...(cursor === undefined ? {} : { cursor }) })
      out.push(...page.events.map((e) => e.event.id))
      cursor = page.cursor
      if (cursor === undefined) break
    }
    return out
  }

  for (const q of QUERIES) {
    it(`${q}`, async () => {
      const where = parseQuery(q) as QueryNode
      const answers = await Promise.all(kinds.map(async (k) => await ids(stores[k] as Store, where)))
      for (const a of answers.slice(1)) expect(a).toEqual(answers[0])
      if (!hasText(where)) {
        const want = events.filter((e) => evaluate(where, e)).map((e) => e.event.id).sort()
        expect([...(answers[0] ?? [])].sort()).toEqual(want)
      }
      expect((answers[0] ?? []).length, 'the fixtures hold hits for every query').toBeGreaterThan(0)
      for (const k of kinds) expect(await (stores[k] as Store).count({ where })).toBe(answers[0]?.length)
    })
  }
})
