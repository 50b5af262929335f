import type { estypes } from '@elastic/elasticsearch'
import { parseAddressOrPrefix } from '../leases/address.js'
import { isoToMicros } from '../store/time.js'
import { FIELDS } from './fields.js'
import type { QueryNode } from './parse.js'

type Q = estypes.QueryDslQueryContainer

/** The AST as an Elasticsearch query. Values only ever land in query values, never in structure. */
export function toElasticsearch (n: QueryNode): Q {
  switch (n.type) {
    case 'and': return { bool: { filter: n.children.map(toElasticsearch) } }
    case 'or': return { bool: { should: n.children.map(toElasticsearch), minimum_should_match: 1 } }
    case 'not': return { bool: { must_not: [toElasticsearch(n.child)] } }
    case 'text': return n.phrase ? { match_phrase: { message: n.value } } : { match: { message: { query: n.value, operator: 'and' } } }
    case 'term': {
      const def = FIELDS[n.field]
      return { term: { [def?.path ?? n.field]: def?.kind === 'number' ? Number(n.value) : n.value } }
    }
    case 'prefix': return { prefix: { [FIELDS[n.field]?.path ?? n.field]: n.value } }
    case 'cidr': return { term: { [FIELDS[n.field]?.path ?? n.field]: n.value } }
    case 'range': {
      const def = FIELDS[n.field]
      const op = ({ '>': 'gt', '>=': 'gte', '<': 'lt', '<=': 'lte' } as const)[n.op]
      return { range: { [def?.path ?? n.field]: def?.kind === 'date' ? { [op]: n.value, format: 'strict_date_optional_time' } : { [op]: Number(n.value) } } }
    }
  }
}

export interface SqlWhere { sql: string, params: unknown[] }

/** FTS5 query text: every word quoted (no FTS syntax from users), all required; a phrase stays a phrase. */
export function ftsMatch (value: string, phrase: boolean): string {
  if (phrase) return `"${value.replaceAll('"', '""')}"`
  return value.split(/\s+/).filter(Boolean).map((w) => `"${w.replaceAll('"', '""')}"`).join(' AND ')
}

/**
 * The AST as a parameterized SQL condition over `events` (SQLite store). Column names come from
 * the allow-list in fields.ts; user text is only ever a bound parameter.
 */
export function toSql (n: QueryNode): SqlWhere {
  switch (n.type) {
    case 'and':
    case 'or': {
      const parts = n.children.map(toSql)
      return { sql: `(${parts.map((p) => p.sql).join(n.type === 'and' ? ' AND ' : ' OR ')})`, params: parts.flatMap((p) => p.params) }
    }
    case 'not': {
      const c = toSql(n.child)
      // NOT over a nullable column must also keep the rows where the column is NULL.
      return { sql: `NOT coalesce(${c.sql}, 0)`, params: c.params }
    }
    case 'text': return { sql: 'rowid IN (SELECT rowid FROM events_fts WHERE events_fts MATCH ?)', params: [ftsMatch(n.value, n.phrase)] }
    case 'term':
    case 'prefix':
    case 'cidr':
    case 'range': return leaf(n)
  }
}

function leaf (n: Extract<QueryNode, { field: string }>): SqlWhere {
  const def = FIELDS[n.field]
  if (def === undefined) throw new Error(`field ${n.field} is not in the allow-list`)
  const s = def.sql
  if ('time' in s) {
    const op = n.type === 'range' ? n.op : '>='
    return { sql: `ts ${op} ?`, params: [isoToMicros(n.value)] }
  }
  if ('ips' in s) {
    // event_ips is keyed by the addresses' fixed-width hex forms (schema 9), which sort like
    // the addresses: a CIDR is a range of its primary key, an address an equality.
    const r = parseAddressOrPrefix(n.value)
    if (n.type === 'cidr') {
      const related = 'rowid IN (SELECT event FROM event_ips WHERE hex BETWEEN ? AND ?)'
      return s.ips === 'client'
        ? { sql: `(${related} AND client_hex BETWEEN ? AND ?)`, params: [r.lo, r.hi, r.lo, r.hi] }
        : { sql: related, params: [r.lo, r.hi] }
    }
    return s.ips === 'client' ? { sql: 'client_ip = ?', params: [n.value] } : { sql: 'rowid IN (SELECT event FROM event_ips WHERE hex = ?)', params: [r.lo] }
  }
  if (!('column' in s)) throw new Error(`field ${n.field} has no column`)
  const col = s.column
  // Not LIKE: SQLite's LIKE ignores ASCII case and Elasticsearch's prefix does not.
  if (n.type === 'prefix') return { sql: `substr(${col}, 1, ?) = ?`, params: [n.value.length, n.value] }
  if (n.type === 'range') return { sql: `${col} ${n.op} ?`, params: [Number(n.value)] }
  return { sql: `${col} = ?`, params: [def.kind === 'number' ? Number(n.value) : n.value] }
}
