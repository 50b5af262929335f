import { parseAddressOrPrefix } from '../leases/address.js'
import type { KeaEvent } from '../parse/event.js'
import { ipKey } from '../store/sqlite/ip-key.js'
import { isoToMicros } from '../store/time.js'
import type { EventQuery, FilterField } from '../store/types.js'
import { FIELDS } from './fields.js'
import type { QueryNode } from './parse.js'
import { CLASS_RUNS, FOLD_RUNS } from './unicode61-table.js'

/*
 * Queries answered on decoded events, exactly as the SQLite store answers them in SQL
 * (src/query/translate.ts toSql, src/store/sqlite/reader.ts where): the block store (issue 19)
 * decodes candidate blocks and keeps the events this predicate accepts.
 */

// ---------------------------------------------------------------------------------------------
// Full text: FTS5's unicode61 tokenizer with tokenchars '_' and remove_diacritics 1.

/** ASCII: 0 separator, 1 token character, 2 uppercase letter (folded by +32). */
const ASCII = new Uint8Array(128)
for (let c = 0; c < 128; c++) {
  ASCII[c] = (c >= 48 && c <= 57) || (c >= 97 && c <= 122) || c === 95 ? 1 : c >= 65 && c <= 90 ? 2 : 0
}

/** Beyond ASCII, per SQLite's own tables (unicode61-table.ts): the BMP in flat arrays, the rest by search. */
const BMP_CLASS = new Uint8Array(0x10000)
const BMP_FOLD = new Uint16Array(0x10000)
const ASTRAL_STARTS: number[] = []
const ASTRAL_CLASSES: number[] = []
const ASTRAL_FOLD_STARTS: number[] = []
const ASTRAL_FOLD_DELTAS: number[] = []
{
  const runs = (table: string): Array<[number, number]> => table.split(',').map((r) => {
    const [start, value] = r.split('.') as [string, string]
    return [parseInt(start, 36), parseInt(value, 36)]
  })
  const classes = runs(CLASS_RUNS)
  for (let i = 0; i < classes.length; i++) {
    const [start, k] = classes[i] as [number, number]
    const end = (classes[i + 1]?.[0] ?? 0x110000) - 1
    for (let c = start; c <= Math.min(end, 0xffff); c++) BMP_CLASS[c] = k
    if (end > 0xffff) { ASTRAL_STARTS.push(Math.max(start, 0x10000)); ASTRAL_CLASSES.push(k) }
  }
  const folds = runs(FOLD_RUNS)
  for (let i = 0; i < folds.length; i++) {
    const [start, delta] = folds[i] as [number, number]
    const end = (folds[i + 1]?.[0] ?? 0x110000) - 1
    for (let c = start; c <= Math.min(end, 0xffff); c++) BMP_FOLD[c] = c + delta
    if (end > 0xffff) { ASTRAL_FOLD_STARTS.push(Math.max(start, 0x10000)); ASTRAL_FOLD_DELTAS.push(delta) }
  }
}

/** The index of the last start <= c. */
function runOf (starts: readonly number[], c: number): number {
  let lo = 0
  let hi = starts.length - 1
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1
    if ((starts[mid] as number) <= c) lo = mid; else hi = mid - 1
  }
  return lo
}

function classOf (cp: number): number {
  return cp < 0x10000 ? BMP_CLASS[cp] as number : ASTRAL_CLASSES[runOf(ASTRAL_STARTS, cp)] as number
}

function foldOf (cp: number): number {
  return cp < 0x10000 ? BMP_FOLD[cp] as number : cp + (ASTRAL_FOLD_DELTAS[runOf(ASTRAL_FOLD_STARTS, cp)] as number)
}

/** The code point at i; a lone surrogate reaches SQLite as U+FFFD (a separator). */
function codePointAt (s: string, i: number): number {
  const c = s.charCodeAt(i)
  if (c < 0xd800 || c > 0xdfff) return c
  if (c <= 0xdbff && i + 1 < s.length) {
    const d = s.charCodeAt(i + 1)
    if (d >= 0xdc00 && d <= 0xdfff) return ((c - 0xd800) << 10) + (d - 0xdc00) + 0x10000
  }
  return 0xfffd
}

/** FTS5 keeps the first 32,768 bytes (UTF-8) of a longer token, in the index and in queries. */
const MAX_TOKEN_BYTES = 32768

function capped (token: string, ascii: boolean): string {
  if (token.length <= MAX_TOKEN_BYTES / 4) return token
  if (ascii) return token.length > MAX_TOKEN_BYTES ? token.slice(0, MAX_TOKEN_BYTES) : token
  if (Buffer.byteLength(token) <= MAX_TOKEN_BYTES) return token
  let used = 0
  let i = 0
  for (;;) {
    const cp = codePointAt(token, i)
    const n = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4
    if (used + n > MAX_TOKEN_BYTES) {
      // SQLite cuts inside this character and compares the bytes kept. A JS string cannot hold
      // half a character: each kept byte becomes a lone low surrogate (U+DC80 + byte - 0x80),
      // which no real token holds (lone surrogates separate tokens), so tokens stay equal
      // exactly when SQLite's are.
      const bytes = Buffer.from(String.fromCodePoint(cp))
      let tail = ''
      for (let b = 0; b < MAX_TOKEN_BYTES - used; b++) tail += String.fromCharCode(0xdc00 + (bytes[b] as number))
      return token.slice(0, i) + tail
    }
    used += n
    i += cp > 0xffff ? 2 : 1
  }
}

/**
 * The tokens FTS5's unicode61 tokenizer (tokenchars '_', remove_diacritics 1) makes of `s`, folded,
 * in order, repeats kept. Token characters are ASCII letters, digits and '_', and beyond ASCII
 * what SQLite's Unicode tables say (letters, numbers, private use, unassigned code points);
 * diacritics continue a token and are dropped. The ASCII path slices, never builds per character.
 * Cost: ~0.9 µs per message over the 18k fixture messages (145 chars on average), ~1.3 µs with three non-ASCII words added.
 */
export function textTokens (s: string): string[] {
  const out: string[] = []
  const n = s.length
  let i = 0
  while (i < n) {
    const c = s.charCodeAt(i)
    if (c < 128) {
      if (ASCII[c] === 0) { i++; continue }
    } else {
      const cp = codePointAt(s, i)
      if (classOf(cp) !== 1) { i += cp > 0xffff ? 2 : 1; continue }
    }
    // A token starts at i: ASCII characters are sliced in one piece, lowercased only if needed.
    const start = i
    let upper = false
    while (i < n) {
      const d = s.charCodeAt(i)
      if (d >= 128) break
      const k = ASCII[d]
      if (k === 0) break
      if (k === 2) upper = true
      i++
    }
    if (i >= n || s.charCodeAt(i) < 128) {
      const t = s.slice(start, i)
      out.push(capped(upper ? t.toLowerCase() : t, true))
      continue
    }
    // Beyond ASCII: code points folded one by one.
    let t = upper ? s.slice(start, i).toLowerCase() : s.slice(start, i)
    while (i < n) {
      const d = s.charCodeAt(i)
      if (d < 128) {
        const k = ASCII[d]
        if (k === 0) break
        t += k === 2 ? String.fromCharCode(d + 32) : s[i]
        i++
        continue
      }
      const cp = codePointAt(s, i)
      const k = classOf(cp)
      if (k === 0) break
      if (k === 1) t += String.fromCodePoint(foldOf(cp))
      i += cp > 0xffff ? 2 : 1
    }
    out.push(capped(t, false))
  }
  return out
}

// ---------------------------------------------------------------------------------------------
// Predicates. A clause on a NULL column is NULL in SQL, not false, yet reading it as false gives
// the same answers: toSql wraps every NOT as `NOT coalesce(x, 0)` (NULL → true, like false), the
// top level keeps only true rows, and AND/OR of NULL are never true where the same with false is
// not (NULL OR true is true, NULL OR false and NULL AND anything are not true). So two values
// suffice; test/query/evaluate.test.ts checks NOT over missing columns against the store.

/** What one event's evaluation computes once, whichever clauses ask for it. */
class Probe {
  private tokensMemo: string[] | undefined
  private tsMemo: number | undefined
  private keysMemo: string[] | undefined
  constructor (readonly e: KeaEvent) {}

  get tokens (): string[] {
    this.tokensMemo ??= textTokens(this.e.message)
    return this.tokensMemo
  }

  /** @timestamp as the store's ts column (µs). */
  get ts (): number {
    this.tsMemo ??= isoToMicros(this.e['@timestamp'])
    return this.tsMemo
  }

  /** event_ips' keys of the event: one per related.ip (ip-key.ts). */
  get ipKeys (): string[] {
    this.keysMemo ??= (this.e.related?.ip ?? []).map(ipKey)
    return this.keysMemo
  }
}

type Pred = (p: Probe) => boolean

/** Whether `phrase` occurs as consecutive tokens; a phrase without tokens matches nothing (FTS5). */
function hasPhrase (tokens: readonly string[], phrase: readonly string[]): boolean {
  const m = phrase.length
  if (m === 0) return false
  const first = phrase[0]
  for (let i = 0; i + m <= tokens.length; i++) {
    if (tokens[i] !== first) continue
    let j = 1
    while (j < m && tokens[i + j] === phrase[j]) j++
    if (j === m) return true
  }
  return false
}

/**
 * A phrase of ASCII tokens as a regular expression over ASCII text: its tokens in any case,
 * each a whole run of token characters, one or more other characters between them — what
 * hasPhrase finds in such text's tokens.
 */
function phraseRegex (phrase: readonly string[]): RegExp | undefined {
  if (phrase.length === 0 || !phrase.every((t) => /^[a-z0-9_]+$/.test(t))) return undefined
  return new RegExp(`(?<![A-Za-z0-9_])${phrase.join('[^A-Za-z0-9_]+')}(?![A-Za-z0-9_])`, 'i')
}

const BEYOND_ASCII = /[^\x00-\x7f]/

/**
 * Every phrase must occur (the quoted, ANDed FTS5 query of ftsMatch and the reader's ftsQuery).
 * An ASCII message is tested by each phrase's regex rather than tokenized: tokens were ~2.3 µs
 * a message, a seventh of a phrase query's CPU (bench/api, 10M events). Beyond ASCII (folding)
 * and past a token's byte cap, by its tokens.
 */
function textPred (phrases: ReadonlyArray<readonly string[]>): Pred {
  const regexes = phrases.map(phraseRegex)
  const fast = regexes.every((r) => r !== undefined) ? regexes as RegExp[] : undefined
  return (p) => {
    const message = p.e.message
    if (fast !== undefined && message.length < MAX_TOKEN_BYTES && !BEYOND_ASCII.test(message)) {
      for (const r of fast) if (!r.test(message)) return false
      return true
    }
    const tokens = p.tokens
    for (const ph of phrases) if (!hasPhrase(tokens, ph)) return false
    return true
  }
}

/** Whitespace-separated words, each a phrase of its tokens. */
function wordPhrases (text: string): string[][] {
  return text.split(/\s+/).filter((w) => w.length > 0).map(textTokens)
}

/** A getter of the value a column of `events` holds for an event (undefined = NULL). */
function getter (path: string): (e: KeaEvent) => unknown {
  const [a, b, c] = path.split('.') as [string, string | undefined, string | undefined]
  if (b === undefined) return (e) => (e as unknown as Record<string, unknown>)[a]
  if (c === undefined) return (e) => ((e as unknown as Record<string, Record<string, unknown> | undefined>)[a])?.[b]
  return (e) => ((e as unknown as Record<string, Record<string, Record<string, unknown> | undefined> | undefined>)[a])?.[b]?.[c]
}

/** Whether s holds surrogates: SQLite's substr counts characters, JS's length UTF-16 units. */
function hasSurrogates (s: string): boolean {
  for (let i = 0; i < s.length; i++) { const c = s.charCodeAt(i); if (c >= 0xd800 && c <= 0xdfff) return true }
  return false
}

function compare (a: number | string, op: '>' | '>=' | '<' | '<=', b: number | string): boolean {
  return op === '>' ? a > b : op === '>=' ? a >= b : op === '<' ? a < b : a <= b
}

function leafPred (n: Extract<QueryNode, { field: string }>): Pred {
  const def = FIELDS[n.field]
  if (def === undefined) throw new Error(`field ${n.field} is not in the allow-list`)
  const s = def.sql
  if ('time' in s) {
    // toSql compares ts with every node type on @timestamp, `>=` unless it is a range.
    const op = n.type === 'range' ? n.op : '>='
    const bound = isoToMicros(n.value)
    return (p) => compare(p.ts, op, bound)
  }
  if ('ips' in s) {
    const r = parseAddressOrPrefix(n.value)
    if (n.type === 'cidr') {
      const related: Pred = (p) => { for (const k of p.ipKeys) if (k >= r.lo && k <= r.hi) return true; return false }
      if (s.ips === 'related') return related
      // event_ips in range AND client_hex in range; client_hex is NULL without a parseable client.ip.
      return (p) => {
        const ip = p.e.client?.ip
        if (ip === undefined || !related(p)) return false
        let hex: string
        try { hex = parseAddressOrPrefix(ip).lo } catch { return false }
        return hex >= r.lo && hex <= r.hi
      }
    }
    if (s.ips === 'client') {
      // client_ip = the text as given (the parser gives canonical text, which Kea prints).
      const want = n.value
      return (p) => p.e.client?.ip === want
    }
    const key = r.lo
    return (p) => p.ipKeys.includes(key)
  }
  if (!('column' in s)) throw new Error(`field ${n.field} has no column`)
  const get = getter(def.path)
  const numeric = def.kind === 'number'
  if (n.type === 'prefix') {
    const v = n.value
    // substr(col, 1, length) = value, length in UTF-16 units: with surrogate pairs the substring
    // has more characters than value, so only a column equal to value matches.
    const exact = hasSurrogates(v)
    return (p) => {
      const x = get(p.e)
      if (x === undefined || x === null) return false
      const t = String(x)
      return exact ? t === v : t.startsWith(v)
    }
  }
  if (n.type === 'range') {
    const b = Number(n.value)
    // NaN binds as NULL; a text column compares with the number as text (TEXT affinity).
    if (Number.isNaN(b)) return () => false
    const op = n.op
    const bt = String(b)
    return (p) => {
      const x = get(p.e)
      if (x === undefined || x === null) return false
      return numeric ? compare(Number(x), op, b) : compare(String(x), op, bt)
    }
  }
  if (numeric) {
    const b = Number(n.value)
    if (Number.isNaN(b)) return () => false
    return (p) => { const x = get(p.e); return x !== undefined && x !== null && Number(x) === b }
  }
  const v = n.value
  return (p) => get(p.e) === v
}

function nodePred (n: QueryNode): Pred {
  switch (n.type) {
    case 'and': {
      const parts = n.children.map(nodePred)
      return (p) => { for (const part of parts) if (!part(p)) return false; return true }
    }
    case 'or': {
      const parts = n.children.map(nodePred)
      return (p) => { for (const part of parts) if (part(p)) return true; return false }
    }
    case 'not': {
      const c = nodePred(n.child)
      return (p) => !c(p)
    }
    case 'text': {
      if (n.phrase) return textPred([textTokens(n.value)])
      const words = wordPhrases(n.value)
      // ftsMatch makes '' of blank text, which FTS5 refuses with a syntax error: so does this.
      if (words.length === 0) throw new Error('full text without words (FTS5: syntax error)')
      return textPred(words)
    }
    default: return leafPred(n)
  }
}

/** Filter field → the event's column value (ip is answered from related.ip). */
const FILTER_GETTERS: Record<Exclude<FilterField, 'ip'>, (e: KeaEvent) => unknown> = {
  code: (e) => e.event.code,
  action: (e) => e.event.action,
  dataset: (e) => e.event.dataset,
  level: (e) => e.log.level,
  logger: (e) => e.log.logger,
  host: (e) => e.host?.name,
  status: (e) => e.kea.parse.status,
  mac: (e) => e.client?.mac,
  hwaddr: (e) => e.kea.hwaddr,
  client_id: (e) => e.kea.client_id,
  duid: (e) => e.kea.duid,
  subnet_id: (e) => e.kea.subnet_id,
  source_id: (e) => e.kea.source_id
}

/**
 * `q` as a predicate on a decoded event that accepts exactly the events the SQLite store returns
 * for it: time bounds in µs, full text per FTS5, filters ORed within a field and ANDed across,
 * and `where` as toSql's SQL (NULL columns included). Everything derivable from `q` is computed here once;
 * per event, only what the query needs (the message is tokenized only for text clauses).
 * Throws where toSql throws (an invalid address or time in `where`).
 */
export function compileQuery (q: EventQuery): (e: KeaEvent) => boolean {
  const preds: Pred[] = []
  // Time first: the cheapest clause and the most selective one in the store's reads.
  if (q.from !== undefined) { const lo = q.from * 1000; preds.push((p) => p.ts >= lo) }
  if (q.to !== undefined) { const hi = q.to * 1000; preds.push((p) => p.ts < hi) }
  for (const [field, values] of Object.entries(q.filters ?? {}) as Array<[FilterField, ReadonlyArray<string | number>]>) {
    if (values.length === 0) continue
    if (field === 'ip') {
      const keys = new Set(values.map((v) => ipKey(String(v))))
      preds.push((p) => { for (const k of p.ipKeys) if (keys.has(k)) return true; return false })
      continue
    }
    const get = FILTER_GETTERS[field]
    if (get === undefined) throw new Error(`unknown filter field ${JSON.stringify(field)}`)
    if (field === 'subnet_id') {
      // Number(v) as bound; NaN binds as NULL and matches nothing.
      const wanted = new Set(values.map(Number).filter((v) => !Number.isNaN(v)))
      preds.push((p) => { const x = get(p.e); return x !== undefined && x !== null && wanted.has(Number(x)) })
      continue
    }
    const wanted = new Set(values.map(String))
    preds.push((p) => { const x = get(p.e); return typeof x === 'string' && wanted.has(x) })
  }
  if (q.where !== undefined) preds.push(nodePred(q.where))
  // Full text last: tokenizing the message is the dearest step, skipped when another clause fails.
  if (q.text !== undefined) {
    const phrases = wordPhrases(q.text)
    if (phrases.length > 0) preds.push(textPred(phrases))
  }
  return (e) => {
    const p = new Probe(e)
    for (const pred of preds) if (!pred(p)) return false
    return true
  }
}
