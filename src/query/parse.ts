import { QuerySyntaxError, QueryTooComplexError, withCause } from '../errors.js'
import { parseAddressOrPrefix, parseTime } from '../leases/address.js'
import { FIELDS, resolveField } from './fields.js'

/**
 * keatrail's query language, a small KQL:
 *   mac:02-00-00-00-00-0a   field:value (exact; any spelling of identifiers)
 *   msg:"was released"      field:"phrase"
 *   code:DHCP4_LEASE_*      field:prefix*
 *   subnet_id >= 2          ranges on numbers and @timestamp (RFC 3339)
 *   ip:192.0.2.0/24         an address or a CIDR on address fields
 *   declined NOT host:kea-b bare words and "phrases" are full-text on the message
 *   (a OR b) AND c          AND (also implied by juxtaposition), OR, NOT, parentheses
 */
export type QueryNode =
  | { type: 'and', children: QueryNode[] }
  | { type: 'or', children: QueryNode[] }
  | { type: 'not', child: QueryNode }
  | { type: 'text', value: string, phrase: boolean }
  | { type: 'term', field: string, value: string }
  | { type: 'prefix', field: string, value: string }
  | { type: 'range', field: string, op: '>' | '>=' | '<' | '<=', value: string }
  | { type: 'cidr', field: string, value: string }

export const MAX_QUERY_LENGTH = 4096
/**
 * Cost bounds: what one query may ask of a store. Every leaf is an index lookup or a full-text
 * doclist read; with 32 of them a 20-clause CIDR query on 200k events is answered from the
 * hex key of event_ips in milliseconds instead of a 7 s scan (issue 17). Nesting counts NOT as
 * well as parentheses: ~1,000 chained NOTs used to reach SQLite's expression recursion limit.
 */
export const QUERY_LIMITS = {
  /** Terms: field:value, bare words and "phrases". */
  leaves: 32,
  /** Nested parentheses and NOTs on any path from the root. */
  depth: 32,
  /** Characters of one word or phrase. */
  textChars: 256,
  /** Words of one phrase (or word that full-text splits, such as a.b.c), each a doclist read. */
  textWords: 16
} as const

type Tok =
  | { t: 'word', v: string, at: number }
  | { t: 'string', v: string, at: number }
  | { t: 'op', v: '>' | '>=' | '<' | '<=', at: number }
  | { t: '(' | ')', at: number }
  | { t: 'end', at: number }

// Words may hold what Kea values hold (addresses, MACs, ids, times, tid=0x…); other punctuation
// is refused so that stray SQL or JSON is a syntax error, never a search for it.
const WORD = /[A-Za-z0-9_.:\-/@#=,+%*]/

// C0 controls but tab, newline and carriage return (whitespace), and DEL.
const CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/
const CONTROLS = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/g
/** What full-text indexing splits text into (FTS5 unicode61 with '_' as a token character). */
const TEXT_WORD = /[\p{L}\p{N}_]+/gu

function tooComplex (what: string): never {
  throw new QueryTooComplexError(what)
}

function fail (q: string, at: number, what: string): never {
  // The query is echoed: without control characters, which logs and terminals would act on.
  const shown = (q.length > 80 ? `${q.slice(0, 77)}...` : q).replace(CONTROLS, '?')
  throw new QuerySyntaxError(at, what, shown)
}

function tokenize (q: string): Tok[] {
  const out: Tok[] = []
  let i = 0
  while (i < q.length) {
    const c = q[i] as string
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r') { i++; continue }
    if (c === '(' || c === ')') { out.push({ t: c, at: i }); i++; continue }
    if (c === '>' || c === '<') {
      const op = q[i + 1] === '=' ? `${c}=` : c
      out.push({ t: 'op', v: op as '>' | '>=' | '<' | '<=', at: i })
      i += op.length
      continue
    }
    if (c === '"') {
      let v = ''
      let j = i + 1
      for (; j < q.length && q[j] !== '"'; j++) {
        if (q[j] === '\\' && j + 1 < q.length) j++
        v += q[j]
      }
      if (j >= q.length) fail(q, i, 'a closing " for the phrase started here')
      out.push({ t: 'string', v, at: i })
      i = j + 1
      continue
    }
    if (!WORD.test(c)) fail(q, i, `a word, "phrase", field:value, ( or ) — not ${JSON.stringify(c)}${c === '\'' ? ' (phrases take double quotes)' : ''}`)
    let j = i
    while (j < q.length && WORD.test(q[j] as string)) j++
    out.push({ t: 'word', v: q.slice(i, j), at: i })
    i = j
  }
  out.push({ t: 'end', at: q.length })
  return out
}

/** A typed prefix in the form the field stores values (MACs ECS-style, DUIDs Kea-style). */
function prefixForm (field: string, stem: string): string {
  if (field === 'client.mac') return stem.toUpperCase().replaceAll(':', '-')
  if (['kea.hwaddr', 'kea.duid', 'kea.client_id'].includes(field)) return stem.toLowerCase().replaceAll('-', ':')
  if (field === 'log.level' || field === 'kea.transaction_id') return stem.toLowerCase()
  return stem
}

/** Parses a query; throws KEATRAIL_ERR_QUERY_SYNTAX with the position and what was expected. */
export function parseQuery (q: string): QueryNode | undefined {
  if (q.length > MAX_QUERY_LENGTH) fail(q, MAX_QUERY_LENGTH, `a query of at most ${MAX_QUERY_LENGTH} characters`)
  if (q.includes('\uFFFD')) fail(q, q.indexOf('\uFFFD'), 'valid UTF-8 (the query holds a replacement character)')
  const toks = tokenize(q)
  let p = 0
  let clauses = 0
  const peek = (): Tok => toks[p] as Tok
  const keyword = (k: string): boolean => { const t = peek(); return t.t === 'word' && t.v === k }

  function orExpr (depth: number): QueryNode {
    if (depth > QUERY_LIMITS.depth) tooComplex(`at most ${QUERY_LIMITS.depth} nested parentheses and NOTs`)
    const parts = [andExpr(depth)]
    while (keyword('OR')) { p++; parts.push(andExpr(depth)) }
    return parts.length === 1 ? parts[0] as QueryNode : { type: 'or', children: parts }
  }

  function andExpr (depth: number): QueryNode {
    const parts = [unary(depth)]
    for (;;) {
      const t = peek()
      if (t.t === 'end' || t.t === ')' || keyword('OR')) break
      if (keyword('AND')) p++
      parts.push(unary(depth))
    }
    return parts.length === 1 ? parts[0] as QueryNode : { type: 'and', children: parts }
  }

  function unary (depth: number): QueryNode {
    if (keyword('NOT')) {
      if (depth + 1 > QUERY_LIMITS.depth) tooComplex(`at most ${QUERY_LIMITS.depth} nested parentheses and NOTs`)
      p++
      return { type: 'not', child: unary(depth + 1) }
    }
    return primary(depth)
  }

  function value (field: string, at: number): string {
    const t = peek()
    if (t.t === 'word' || t.t === 'string') { p++; return t.v }
    return fail(q, t.at, `a value for ${field} (after position ${at})`)
  }

  function clause (node: QueryNode): QueryNode {
    if (++clauses > QUERY_LIMITS.leaves) tooComplex(`at most ${QUERY_LIMITS.leaves} terms (field:value, words, "phrases"); combine values or split the search`)
    return node
  }

  function primary (depth: number): QueryNode {
    const t = peek()
    if (t.t === '(') {
      p++
      const inner = orExpr(depth + 1)
      if (peek().t !== ')') fail(q, peek().at, 'a closing )')
      p++
      return inner
    }
    if (t.t === 'string') { p++; return clause(text(t.v, true, t.at)) }
    if (t.t !== 'word') return fail(q, t.at, t.t === 'end' ? 'a search term' : `a search term, not ${t.t === 'op' ? t.v : t.t}`)
    if (t.v === 'AND' || t.v === 'OR') fail(q, t.at, `a search term before ${t.v}`)
    p++
    // field >= value
    const next = peek()
    if (next.t === 'op') {
      const field = known(t.v, t.at)
      p++
      return clause(range(field, next.v, value(field, next.at), next.at))
    }
    const colon = t.v.indexOf(':')
    // A MAC, DUID or IPv6 address typed bare is a word, not field:value.
    if (colon > 0 && !/^[0-9a-f]{1,4}(:[0-9a-f]{0,4})+$/i.test(t.v)) {
      const field = known(t.v.slice(0, colon), t.at)
      let raw = t.v.slice(colon + 1)
      let quoted = false
      if (raw === '') {
        const n = peek()
        if (n.t !== 'string' || n.at !== t.at + t.v.length) fail(q, t.at + t.v.length, `a value right after ${t.v}`)
        p++
        raw = n.v
        quoted = true
      }
      return clause(fieldValue(field, raw, quoted, t.at + colon + 1))
    }
    if (t.v === 'NOT') fail(q, t.at, 'a search term after NOT')
    return clause(text(t.v, false, t.at))
  }

  /** A full-text leaf, within the cost bounds; control characters are refused (NUL ended SQLite's FTS query text early). */
  function text (value: string, phrase: boolean, at: number): QueryNode {
    const ctl = CONTROL.exec(value)
    if (ctl !== null) fail(q, at + 1 + ctl.index, 'a phrase without control characters (such as NUL)')
    if (value.length > QUERY_LIMITS.textChars) tooComplex(`a word or phrase of at most ${QUERY_LIMITS.textChars} characters`)
    if ((value.match(TEXT_WORD) ?? []).length > QUERY_LIMITS.textWords) tooComplex(`a phrase of at most ${QUERY_LIMITS.textWords} words`)
    return { type: 'text', value, phrase }
  }

  function known (name: string, at: number): string {
    const f = resolveField(name)
    if (f === undefined) fail(q, at, `a known field, not ${JSON.stringify(name)} (fields: ${Object.keys(FIELDS).join(', ')}; aliases such as mac, ip, duid, msg, id, level)`)
    return f
  }

  function normalized (field: string, raw: string, at: number): string {
    const def = FIELDS[field]
    try {
      return def?.normalize === undefined ? raw : def.normalize(raw)
    } catch (err) {
      throw withCause(new QuerySyntaxError(at, `a valid ${field}: ${(err as Error).message}`, q), err)
    }
  }

  function fieldValue (field: string, raw: string, quoted: boolean, at: number): QueryNode {
    const def = FIELDS[field]
    if (def === undefined) return fail(q, at, 'a known field')
    if (def.kind === 'text') return text(raw, quoted, at)
    if (!quoted && raw.endsWith('*') && def.kind === 'keyword') {
      const stem = raw.slice(0, -1)
      if (stem === '' || stem.includes('*')) fail(q, at, 'a prefix before a single trailing *')
      return { type: 'prefix', field, value: prefixForm(field, stem) }
    }
    if (def.kind === 'ip') {
      let r
      try { r = parseAddressOrPrefix(raw) } catch { return fail(q, at, `an IPv4/IPv6 address or CIDR for ${field}, not ${JSON.stringify(raw)}`) }
      return r.length === (r.family === 4 ? 32 : 128) ? { type: 'term', field, value: r.text } : { type: 'cidr', field, value: r.text }
    }
    if (def.kind === 'number') {
      if (!/^-?\d+$/.test(raw)) fail(q, at, `a whole number for ${field}`)
      return { type: 'term', field, value: raw }
    }
    if (def.kind === 'date') return range(field, '>=', raw, at)
    return { type: 'term', field, value: normalized(field, raw, at) }
  }

  function range (field: string, op: '>' | '>=' | '<' | '<=', raw: string, at: number): QueryNode {
    const def = FIELDS[field] as (typeof FIELDS)[string]
    if (def.kind === 'number') {
      if (!/^-?\d+$/.test(raw)) fail(q, at, `a whole number for ${field}`)
      return { type: 'range', field, op, value: raw }
    }
    if (def.kind === 'date') {
      let ms: number
      try { ms = parseTime(raw) } catch { return fail(q, at, `an RFC 3339 time with offset for ${field}, e.g. 2026-11-24T04:16:00Z, or now-15m`) }
      return { type: 'range', field, op, value: new Date(ms).toISOString() }
    }
    return fail(q, at, `a field that has an order (numbers, @timestamp), not ${field}`)
  }

  if (peek().t === 'end') return undefined
  const root = orExpr(0)
  if (peek().t !== 'end') fail(q, peek().at, 'the end of the query or AND/OR')
  return root
}

/** Back to text, in a form parseQuery reads as the same AST. */
export function printQuery (n: QueryNode): string {
  const quote = (v: string): string => `"${v.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`
  const bare = (v: string): boolean => (/^[A-Za-z0-9_.\-/@#=,+%*]+$/.test(v) || /^[0-9a-f]{1,4}(:[0-9a-f]{0,4})+$/i.test(v)) && !['AND', 'OR', 'NOT'].includes(v)
  switch (n.type) {
    case 'and': return `(${n.children.map(printQuery).join(' AND ')})`
    case 'or': return `(${n.children.map(printQuery).join(' OR ')})`
    case 'not': return `NOT ${printQuery(n.child)}`
    case 'text': return n.phrase || !bare(n.value) ? quote(n.value) : n.value
    case 'term': return `${n.field}:${quote(n.value)}`
    case 'prefix': return `${n.field}:${n.value}*`
    case 'range': return `${n.field} ${n.op} ${n.value}`
    case 'cidr': return `${n.field}:${n.value}`
  }
}
