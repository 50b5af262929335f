import { parseAddressOrPrefix } from '../../../leases/address.js'
import type { KeaEvent } from '../../../parse/event.js'
import { toEcsMac } from '../../../parse/kea/label.js'
import { textTokens } from '../../../query/evaluate.js'
import { FIELDS } from '../../../query/fields.js'
import type { QueryNode } from '../../../query/parse.js'
import { FILTER_FIELDS, type EventQuery, type FilterField } from '../../types.js'
import { ipKey } from '../ip-key.js'

/*
 * Which blocks of ~4,096 events (issue 19) a query must decode. A block carries the distinct
 * posting terms of its events (`<code>:<value>`) and a bloom filter of their message tokens; a
 * plan is a condition on those that every block holding a match meets. It may keep blocks
 * without a match (the decoded events are then evaluated by compileQuery), never drop one with.
 */

/** The fields whose exact stored values are posted per block, and the code of their terms. */
export const POSTED_FIELDS = {
  'event.code': 'c',
  'event.action': 'a',
  'event.dataset': 'd',
  'log.level': 'l',
  'log.logger': 'g',
  'host.name': 'h',
  'client.mac': 'm',
  'kea.hwaddr': 'w',
  'kea.client_id': 'i',
  'kea.duid': 'u',
  'kea.hostname': 'n',
  'kea.parse.status': 's',
  'kea.source_id': 'o',
  'kea.subnet_id': 'b',
  'event.kind': 'k'
} as const
export type PostedField = keyof typeof POSTED_FIELDS

/** The code of related.ip terms: 'p:' + the address's fixed-width hex form (ip-key.ts), 'p:x:' + text for no address. */
export const IP_CODE = 'p'

export type Plan =
  | { kind: 'all' } // cannot prune
  | { kind: 'none' } // nothing can match
  | { kind: 'term', term: string } // the block has this posting
  | { kind: 'range', lo: string, hi: string } // the block has a posting t with lo <= t <= hi (UTF-16 string order)
  | { kind: 'tokens', tokens: string[] } // the block's bloom holds all these text tokens
  | { kind: 'and', parts: Plan[] }
  | { kind: 'or', parts: Plan[] }

const ALL: Plan = { kind: 'all' }
const NONE: Plan = { kind: 'none' }

/** Codes of TermCollector's value sets, in their order. */
const TERM_CODES = ['c', 'a', 'd', 'k', 'l', 'g', 'h', 'm', 'i', 'u', 'n', 's', 'o', 'b'] as const

/**
 * The posting terms of many events (a frame's): each field's distinct values, made into terms
 * once. A value seen again costs a Set lookup of a string the parser made (its hash cached),
 * where building `code:value` per event and hashing the fresh string cost ~7 % of a write's CPU
 * (bench/e2e profile).
 */
export class TermCollector {
  private readonly values: Array<Set<string | number>> = TERM_CODES.map(() => new Set())
  /**
   * Each field's value in the event added last: most fields repeat from one event to the next
   * (dataset, level, logger, host, status, source), and comparing with the last value costs
   * less than hashing a fresh string for the Set (3 % of a write's CPU, bench/e2e profile).
   */
  private readonly last: Array<string | number | undefined> = TERM_CODES.map(() => undefined)
  private readonly ips = new Set<string>()

  add (e: KeaEvent): void {
    const ev = e.event
    const kea = e.kea
    this.put(0, ev.code)
    this.put(1, ev.action)
    this.put(2, ev.dataset)
    this.put(3, ev.kind)
    this.put(4, e.log.level)
    this.put(5, e.log.logger)
    this.put(6, e.host?.name)
    // kea.hwaddr: found through client.mac (postedText).
    this.put(7, e.client?.mac)
    this.put(8, kea.client_id)
    this.put(9, kea.duid)
    this.put(10, kea.hostname)
    this.put(11, kea.parse.status)
    this.put(12, kea.source_id)
    this.put(13, kea.subnet_id)
    const ips = e.related?.ip
    if (ips !== undefined) for (const ip of ips) this.ips.add(ip)
  }

  private put (k: number, v: string | number | undefined): void {
    if (v === undefined || v === this.last[k]) return
    this.last[k] = v
    const set = this.values[k] as Set<string | number>
    set.add(v)
  }

  /** Hands over every distinct term added since the last drain, and forgets them. */
  drain (out: (term: string) => void): void {
    for (let k = 0; k < TERM_CODES.length; k++) {
      this.last[k] = undefined
      const set = this.values[k] as Set<string | number>
      if (set.size === 0) continue
      const code = TERM_CODES[k] as string
      for (const value of set) out(`${code}:${value}`)
      set.clear()
    }
    for (const ip of this.ips) out(ipTerm(ip))
    this.ips.clear()
  }
}

/** Adds the posting terms of `e` to `out`. */
export function eventTerms (e: KeaEvent, out: Set<string>): void {
  const c = new TermCollector()
  c.add(e)
  c.drain((t) => out.add(t))
}

/** Posting terms of addresses seen lately: a block repeats its addresses, and parsing one costs 0.1-1 µs. */
const ipTerms = new Map<string, string>()

function ipTerm (ip: string): string {
  let t = ipTerms.get(ip)
  if (t === undefined) {
    t = `p:${ipKey(ip)}`
    if (ipTerms.size >= 65_536) ipTerms.clear()
    ipTerms.set(ip, t)
  }
  return t
}

/** The least string above every string that starts with `s`, or undefined when none is (all U+FFFF). */
function successor (s: string): string | undefined {
  let i = s.length - 1
  while (i >= 0 && s.charCodeAt(i) === 0xffff) i--
  if (i < 0) return undefined
  return s.slice(0, i) + String.fromCharCode(s.charCodeAt(i) + 1)
}

/**
 * Postings starting with `prefix`. The range ends at the prefix's successor, inclusive: a value
 * equal to it is a needless keep, while an end of prefix + '\uffff' would drop a value that
 * continues with U+FFFF twice.
 */
function prefixRange (prefix: string): Plan {
  const hi = successor(prefix)
  return hi === undefined ? ALL : { kind: 'range', lo: prefix, hi }
}

function and (parts: Plan[]): Plan {
  const kept: Plan[] = []
  for (const p of parts) {
    if (p.kind === 'none') return NONE
    if (p.kind === 'all') continue
    if (p.kind === 'and') kept.push(...p.parts); else kept.push(p)
  }
  // Token conditions of one AND merge into one bloom probe.
  const tokens = kept.filter((p): p is Extract<Plan, { kind: 'tokens' }> => p.kind === 'tokens')
  const rest: Plan[] = kept.filter((p) => p.kind !== 'tokens')
  if (tokens.length > 1) rest.push({ kind: 'tokens', tokens: [...new Set(tokens.flatMap((t) => t.tokens))] })
  else rest.push(...tokens)
  if (rest.length === 0) return ALL
  return rest.length === 1 ? rest[0] as Plan : { kind: 'and', parts: rest }
}

function or (parts: Plan[]): Plan {
  const kept: Plan[] = []
  for (const p of parts) {
    if (p.kind === 'all') return ALL
    if (p.kind === 'none') continue
    if (p.kind === 'or') kept.push(...p.parts); else kept.push(p)
  }
  if (kept.length === 0) return NONE
  return kept.length === 1 ? kept[0] as Plan : { kind: 'or', parts: kept }
}

/** Full text: every token of every word; a word without tokens matches nothing (FTS5). */
function tokensPlan (words: readonly string[]): Plan {
  const tokens = new Set<string>()
  for (const w of words) {
    const t = textTokens(w)
    if (t.length === 0) return NONE
    for (const x of t) tokens.add(x)
  }
  return tokens.size === 0 ? ALL : { kind: 'tokens', tokens: [...tokens] }
}

const splitWords = (text: string): string[] => text.split(/\s+/).filter((w) => w.length > 0)

/** A value as its posting: numbers as SQLite compares them (Number), undefined when it binds as NULL. */
function posted (field: PostedField, value: string | number): string | undefined {
  if (FIELDS[field]?.kind === 'number') {
    const n = Number(value)
    return Number.isNaN(n) ? undefined : `${POSTED_FIELDS[field]}:${n}`
  }
  return postedText(field, String(value))
}

/**
 * A text value (or prefix) as its posting. kea.hwaddr is looked up among the client.mac
 * postings: the parser sets client.mac to toEcsMac(hwaddr) wherever it sets hwaddr, a mapping
 * character by character (so prefixes map too); posting the MAC twice was 17 % of the postings.
 * Blocks written before still hold `w:` postings, unused.
 */
function postedText (field: PostedField, value: string): string {
  return field === 'kea.hwaddr' ? `${POSTED_FIELDS['client.mac']}:${toEcsMac(value)}` : `${POSTED_FIELDS[field]}:${value}`
}

const isPosted = (field: string): field is PostedField => Object.hasOwn(POSTED_FIELDS, field)

/**
 * kea.transaction_id is not posted, but Kea prints it in the message (`tid=0x86c912,`), where the
 * parser reads it (src/parse/kea/label.ts): an event with tid 0x… has that token. Checked on the
 * fixtures by test/store/sqlite/plan.test.ts.
 */
const TID = /^0x[0-9a-f]+$/i

function nodePlan (n: QueryNode): Plan {
  switch (n.type) {
    case 'and': return and(n.children.map(nodePlan))
    case 'or': return or(n.children.map(nodePlan))
    // A negation holds in blocks without the posting as well as in most blocks with it.
    case 'not': return ALL
    case 'text': return tokensPlan(n.phrase ? [n.value] : splitWords(n.value))
    default: return leafPlan(n)
  }
}

function leafPlan (n: Extract<QueryNode, { field: string }>): Plan {
  const def = FIELDS[n.field]
  if (def === undefined || 'time' in def.sql) return ALL
  if ('ips' in def.sql) {
    // client.ip is one of related.ip: its conditions imply one on the postings.
    let r
    try { r = parseAddressOrPrefix(n.value) } catch { return ALL }
    return n.type === 'cidr' ? { kind: 'range', lo: `${IP_CODE}:${r.lo}`, hi: `${IP_CODE}:${r.hi}` } : { kind: 'term', term: `${IP_CODE}:${r.lo}` }
  }
  if (n.field === 'kea.transaction_id' && n.type === 'term') return TID.test(n.value) ? { kind: 'tokens', tokens: textTokens(n.value) } : ALL
  if (!isPosted(n.field)) return ALL
  if (n.type === 'term') {
    const t = posted(n.field, n.value)
    return t === undefined ? NONE : { kind: 'term', term: t }
  }
  // substr(column, 1, n) = value: SQLite compares a number's decimal text too.
  if (n.type === 'prefix') return prefixRange(postedText(n.field, n.value))
  return ALL
}

/**
 * A condition on a block's postings and token bloom that every block holding an event matching
 * `q` meets (time bounds excluded: the store prunes by time itself).
 */
export function planOf (q: EventQuery): Plan {
  const parts: Plan[] = []
  if (q.text !== undefined) {
    const words = splitWords(q.text)
    if (words.length > 0) parts.push(tokensPlan(words))
  }
  for (const [field, values] of Object.entries(q.filters ?? {}) as Array<[FilterField, ReadonlyArray<string | number>]>) {
    if (values.length === 0) continue
    if (field === 'ip') {
      parts.push(or(values.map((v) => ({ kind: 'term', term: `${IP_CODE}:${ipKey(String(v))}` }))))
      continue
    }
    const path = FILTER_FIELDS[field] as string | undefined
    if (path === undefined || !isPosted(path)) { parts.push(ALL); continue }
    const terms: Plan[] = []
    for (const v of values) {
      const t = posted(path, field === 'subnet_id' ? Number(v) : String(v))
      if (t !== undefined) terms.push({ kind: 'term', term: t })
    }
    parts.push(or(terms))
  }
  if (q.where !== undefined) parts.push(nodePlan(q.where))
  return and(parts)
}

/** Whether a block with these postings and tokens may hold a match (tests and the store's reference). */
export function admits (plan: Plan, has: (term: string) => boolean, hasInRange: (lo: string, hi: string) => boolean, mayHoldToken: (token: string) => boolean): boolean {
  switch (plan.kind) {
    case 'all': return true
    case 'none': return false
    case 'term': return has(plan.term)
    case 'range': return hasInRange(plan.lo, plan.hi)
    case 'tokens': return plan.tokens.every(mayHoldToken)
    case 'and': return plan.parts.every((p) => admits(p, has, hasInRange, mayHoldToken))
    case 'or': return plan.parts.some((p) => admits(p, has, hasInRange, mayHoldToken))
  }
}
