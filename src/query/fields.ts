import { normalizeClientId, normalizeDuid, normalizeMac } from '../leases/address.js'

export type FieldKind = 'keyword' | 'text' | 'ip' | 'number' | 'date'

export interface FieldDef {
  /** ECS / keatrail field path (what Elasticsearch indexes). */
  path: string
  kind: FieldKind
  /** SQLite: a column of `events` (documents are deflated: SQL cannot look inside them). */
  sql: { column: string } | { ips: 'related' | 'client' } | { fts: true } | { time: true }
  /** Turns what a user typed into the stored form (MACs in any spelling…); throws on nonsense. */
  normalize?: (v: string) => string
}

const ecsMac = (v: string): string => normalizeMac(v).toUpperCase().replaceAll(':', '-')

/** The fields queries may use: nothing outside this list reaches a store. */
export const FIELDS: Record<string, FieldDef> = {
  '@timestamp': { path: '@timestamp', kind: 'date', sql: { time: true } },
  message: { path: 'message', kind: 'text', sql: { fts: true } },
  'event.id': { path: 'event.id', kind: 'keyword', sql: { column: 'id' } },
  'event.code': { path: 'event.code', kind: 'keyword', sql: { column: 'code' } },
  'event.action': { path: 'event.action', kind: 'keyword', sql: { column: 'action' } },
  'event.dataset': { path: 'event.dataset', kind: 'keyword', sql: { column: 'dataset' } },
  'event.kind': { path: 'event.kind', kind: 'keyword', sql: { column: 'kind' } },
  'log.level': { path: 'log.level', kind: 'keyword', sql: { column: 'level' }, normalize: (v) => v.toLowerCase() },
  'log.logger': { path: 'log.logger', kind: 'keyword', sql: { column: 'logger' } },
  'host.name': { path: 'host.name', kind: 'keyword', sql: { column: 'host' } },
  'client.mac': { path: 'client.mac', kind: 'keyword', sql: { column: 'mac' }, normalize: ecsMac },
  'client.ip': { path: 'client.ip', kind: 'ip', sql: { ips: 'client' } },
  'related.ip': { path: 'related.ip', kind: 'ip', sql: { ips: 'related' } },
  'kea.hwaddr': { path: 'kea.hwaddr', kind: 'keyword', sql: { column: 'hwaddr' }, normalize: normalizeMac },
  'kea.client_id': { path: 'kea.client_id', kind: 'keyword', sql: { column: 'client_id' }, normalize: normalizeClientId },
  'kea.duid': { path: 'kea.duid', kind: 'keyword', sql: { column: 'duid' }, normalize: normalizeDuid },
  'kea.subnet_id': { path: 'kea.subnet_id', kind: 'number', sql: { column: 'subnet_id' } },
  'kea.transaction_id': { path: 'kea.transaction_id', kind: 'keyword', sql: { column: 'tid' }, normalize: (v) => v.toLowerCase() },
  'kea.hostname': { path: 'kea.hostname', kind: 'keyword', sql: { column: 'hostname' } },
  'kea.iaid': { path: 'kea.iaid', kind: 'number', sql: { column: 'iaid' } },
  'kea.parse.status': { path: 'kea.parse.status', kind: 'keyword', sql: { column: 'status' } },
  'kea.source_id': { path: 'kea.source_id', kind: 'keyword', sql: { column: 'source_id' } }
}

/** Short names people type. */
export const ALIASES: Record<string, string> = {
  time: '@timestamp',
  timestamp: '@timestamp',
  msg: 'message',
  id: 'event.id',
  code: 'event.code',
  action: 'event.action',
  dataset: 'event.dataset',
  kind: 'event.kind',
  level: 'log.level',
  severity: 'log.level',
  logger: 'log.logger',
  host: 'host.name',
  server: 'host.name',
  mac: 'client.mac',
  ip: 'related.ip',
  hwaddr: 'kea.hwaddr',
  client_id: 'kea.client_id',
  cid: 'kea.client_id',
  duid: 'kea.duid',
  subnet_id: 'kea.subnet_id',
  subnet: 'kea.subnet_id',
  tid: 'kea.transaction_id',
  hostname: 'kea.hostname',
  iaid: 'kea.iaid',
  status: 'kea.parse.status'
}

/** The canonical name of a field or alias, or undefined. */
export function resolveField (name: string): string | undefined {
  const n = name.toLowerCase()
  if (FIELDS[n] !== undefined) return n
  return ALIASES[n]
}
