import { createHash } from 'node:crypto'
import type { ControlFailure, KeaAnswer, KeaService } from './control.js'

export interface SubnetUsage {
  id: number
  subnet?: string
  shared_network?: string
  /** Addresses (v4) or IA_NA addresses (v6) in the pools. */
  total: number
  assigned: number
  declined: number
  free: number
  /** assigned / total, percent. */
  utilization: number
  /** DHCPv6 delegated prefixes. */
  pd_total?: number
  pd_assigned?: number
  pd_utilization?: number
}

export interface SharedNetworkUsage {
  name: string
  total: number
  assigned: number
  declined: number
  free: number
  utilization: number
}

export interface HaState {
  mode?: string
  local_role?: string
  local_state?: string
  remote_role?: string
  remote_state?: string
  /** The partner answers heartbeats. */
  in_touch?: boolean
  communication_interrupted?: boolean
}

/** How a Kea server stood at one moment: what status-get, statistic-get-all, version-get and config-get said. */
export interface KeaSnapshot {
  '@timestamp': string
  /** server|service|time bucket: a second poll in the same bucket replaces the first. */
  id: string
  server: string
  service: KeaService
  state: 'up' | 'unreachable' | 'error'
  error?: { kind: SnapshotFailure, message: string }
  pid?: number
  /** Seconds since start and since the last reconfiguration. */
  uptime?: number
  reload?: number
  version?: string
  multi_threading?: boolean
  ha?: HaState[]
  config_hash?: string
  subnets: SubnetUsage[]
  shared_networks: SharedNetworkUsage[]
  totals: { total: number, assigned: number, declined: number, free: number, utilization: number }
  /** Packet counters (pkt4-received, pkt6-reply-sent, …). */
  packets: Record<string, number>
}

/**
 * Why a snapshot is not "up": a control-channel failure (unreachable), Kea answering an error
 * ('kea'), or keatrail unable to build or store a snapshot from the answers ('internal').
 */
export type SnapshotFailure = ControlFailure | 'kea' | 'internal'

/**
 * Longest text (characters) kept of what Kea says in free text: an error text, a version. A
 * result≠0 answer's text could be as long as the answer (8 MB), logged and stored on every poll.
 */
export const MAX_ERROR_TEXT = 1024

/** `text` cut to `max` characters, saying how many more there were. */
export function cutText (text: string, max = MAX_ERROR_TEXT): string {
  if (text.length <= max) return text
  // Not between the two halves of a surrogate pair: that would be invalid UTF-16 in the store.
  const last = text.charCodeAt(max - 1)
  const end = last >= 0xd800 && last <= 0xdbff ? max - 1 : max
  return `${text.slice(0, end)}… [cut: ${text.length - end} more characters]`
}

/** What keatrail keeps of a config-get: its hash and the subnets (for names and prefixes). */
export interface ConfigSummary {
  hash: string
  subnets: Array<{ id: number, subnet: string, shared_network?: string }>
}

/**
 * JSON with the keys of every object sorted, for a hash that does not depend on key order.
 * Walks with a stack of its own, not recursion: however deep the value, it cannot overflow
 * the call stack. Its text is what the recursive version wrote (stored hashes stay comparable).
 */
function canonical (root: unknown): string {
  const out: string[] = []
  // Work in reverse order: literal text to write, or a value to write out.
  const todo: Array<string | { v: unknown }> = [{ v: root }]
  for (let item = todo.pop(); item !== undefined; item = todo.pop()) {
    if (typeof item === 'string') { out.push(item); continue }
    const v = item.v
    if (Array.isArray(v)) {
      todo.push(']')
      for (let i = v.length - 1; i >= 0; i--) { todo.push({ v: v[i] }); if (i > 0) todo.push(',') }
      todo.push('[')
    } else if (v !== null && typeof v === 'object') {
      const keys = Object.keys(v).sort()
      todo.push('}')
      for (let i = keys.length - 1; i >= 0; i--) {
        const k = keys[i] as string
        todo.push({ v: (v as Record<string, unknown>)[k] }, `${JSON.stringify(k)}:`)
        if (i > 0) todo.push(',')
      }
      todo.push('{')
    } else {
      out.push(JSON.stringify(v))
    }
  }
  return out.join('')
}

/** Hash (Kea 2.2 has no config-hash-get) and subnets of a config-get answer. */
export function summarizeConfig (answer: KeaAnswer, service: KeaService): ConfigSummary {
  const args = answer.arguments ?? {}
  const root = (args[service === 'dhcp4' ? 'Dhcp4' : 'Dhcp6'] ?? {}) as Record<string, unknown>
  const key = service === 'dhcp4' ? 'subnet4' : 'subnet6'
  const subnets: ConfigSummary['subnets'] = []
  const add = (list: unknown, network?: string): void => {
    if (!Array.isArray(list)) return
    for (const s of list as Array<Record<string, unknown>>) {
      if (typeof s.id !== 'number' || typeof s.subnet !== 'string') continue
      subnets.push({ id: s.id, subnet: cutText(s.subnet), ...(network === undefined ? {} : { shared_network: cutText(network) }) })
    }
  }
  add(root[key])
  for (const n of (Array.isArray(root['shared-networks']) ? root['shared-networks'] : []) as Array<Record<string, unknown>>) {
    add(n[key], typeof n.name === 'string' ? n.name : undefined)
  }
  return { hash: createHash('sha256').update(canonical(root)).digest('hex'), subnets: subnets.sort((a, b) => a.id - b.id) }
}

/** The current value of one statistic in statistic-get-all ([[value, time], …], newest first). */
function stat (stats: Record<string, unknown>, name: string): number | undefined {
  const samples = stats[name]
  if (!Array.isArray(samples) || !Array.isArray(samples[0])) return undefined
  const v = (samples[0] as unknown[])[0]
  return typeof v === 'number' ? v : undefined
}

const pct = (part: number, total: number): number => total <= 0 ? 0 : Math.round((part / total) * 10_000) / 100

function haStates (status: Record<string, unknown>): HaState[] | undefined {
  const list = status['high-availability']
  if (!Array.isArray(list)) return undefined
  return (list as Array<Record<string, unknown>>).map((h) => {
    const servers = (h['ha-servers'] ?? {}) as Record<string, Record<string, unknown> | undefined>
    const local = servers.local ?? {}
    const remote = servers.remote ?? {}
    const out: HaState = {}
    if (typeof h['ha-mode'] === 'string') out.mode = h['ha-mode']
    if (typeof local.role === 'string') out.local_role = local.role
    if (typeof local.state === 'string') out.local_state = local.state
    if (typeof remote.role === 'string') out.remote_role = remote.role
    if (typeof remote['last-state'] === 'string') out.remote_state = remote['last-state']
    if (typeof remote['in-touch'] === 'boolean') out.in_touch = remote['in-touch']
    if (typeof remote['communication-interrupted'] === 'boolean') out.communication_interrupted = remote['communication-interrupted']
    return out
  })
}

export function snapshotId (server: string, service: KeaService, time: number, bucketMs: number): string {
  return `${server}|${service}|${Math.floor(time / bucketMs) * bucketMs}`
}

export interface SnapshotInput {
  server: string
  service: KeaService
  time: number
  bucketMs: number
  status: KeaAnswer
  version?: KeaAnswer
  stats?: KeaAnswer
  /** stat-lease4-get / stat-lease6-get (stat_cmds hook): counted from the lease database itself. */
  statLease?: KeaAnswer
  config?: ConfigSummary
}

/** A snapshot from a successful poll. */
export function buildSnapshot (i: SnapshotInput): KeaSnapshot {
  const status = i.status.arguments ?? {}
  const stats = i.stats?.result === 0 ? i.stats.arguments ?? {} : {}
  const bySubnet = new Map<number, SubnetUsage>()
  const config = new Map((i.config?.subnets ?? []).map((s) => [s.id, s]))
  const v6 = i.service === 'dhcp6'
  // Subnet ids from the statistics, the stat_cmds rows and the config alike.
  const ids = new Set<number>(config.keys())
  for (const k of Object.keys(stats)) { const m = /^subnet\[(\d+)\]\./.exec(k); if (m !== null) ids.add(Number(m[1])) }
  const rows = new Map<number, Record<string, number>>()
  const rs = (i.statLease?.result === 0 ? i.statLease.arguments?.['result-set'] : undefined) as { columns?: unknown, rows?: unknown } | undefined
  // A table of columns and rows as stat_cmds answers it; anything else is not used.
  if (Array.isArray(rs?.columns) && Array.isArray(rs.rows)) {
    const columns = rs.columns.map(String)
    for (const r of rs.rows as unknown[]) {
      if (!Array.isArray(r)) continue
      const rec = Object.fromEntries(columns.map((c, j) => [c, Number(r[j])]))
      if (Number.isFinite(rec['subnet-id'])) { rows.set(rec['subnet-id'] as number, rec); ids.add(rec['subnet-id'] as number) }
    }
  }
  for (const id of [...ids].sort((a, b) => a - b)) {
    const row = rows.get(id)
    const s = (name: string): number => stat(stats, `subnet[${id}].${name}`) ?? 0
    const total = row?.[v6 ? 'total-nas' : 'total-addresses'] ?? s(v6 ? 'total-nas' : 'total-addresses')
    const assigned = row?.[v6 ? 'assigned-nas' : 'assigned-addresses'] ?? s(v6 ? 'assigned-nas' : 'assigned-addresses')
    const declined = row?.[v6 ? 'declined-nas' : 'declined-addresses'] ?? s('declined-addresses')
    const c = config.get(id)
    const u: SubnetUsage = {
      id,
      ...(c === undefined ? {} : { subnet: c.subnet }),
      ...(c?.shared_network === undefined ? {} : { shared_network: c.shared_network }),
      total,
      assigned,
      declined,
      free: Math.max(total - assigned, 0),
      utilization: pct(assigned, total)
    }
    if (v6) {
      u.pd_total = row?.['total-pds'] ?? s('total-pds')
      u.pd_assigned = row?.['assigned-pds'] ?? s('assigned-pds')
      u.pd_utilization = pct(u.pd_assigned, u.pd_total)
    }
    bySubnet.set(id, u)
  }
  const subnets = [...bySubnet.values()]
  const networks = new Map<string, SharedNetworkUsage>()
  for (const u of subnets) {
    if (u.shared_network === undefined) continue
    const n = networks.get(u.shared_network) ?? { name: u.shared_network, total: 0, assigned: 0, declined: 0, free: 0, utilization: 0 }
    n.total += u.total
    n.assigned += u.assigned
    n.declined += u.declined
    n.free += u.free
    n.utilization = pct(n.assigned, n.total)
    networks.set(u.shared_network, n)
  }
  const totals = subnets.reduce((t, u) => ({ total: t.total + u.total, assigned: t.assigned + u.assigned, declined: t.declined + u.declined, free: t.free + u.free, utilization: 0 }),
    { total: 0, assigned: 0, declined: 0, free: 0, utilization: 0 })
  totals.utilization = pct(totals.assigned, totals.total)
  const packets: Record<string, number> = {}
  for (const k of Object.keys(stats)) {
    if (!/^pkt[46]-/.test(k)) continue
    const v = stat(stats, k)
    if (v !== undefined) packets[k] = v
  }
  const snap: KeaSnapshot = {
    '@timestamp': new Date(i.time).toISOString(),
    id: snapshotId(i.server, i.service, i.time, i.bucketMs),
    server: i.server,
    service: i.service,
    state: 'up',
    subnets,
    shared_networks: [...networks.values()].sort((a, b) => a.name.localeCompare(b.name)),
    totals,
    packets
  }
  if (typeof status.pid === 'number') snap.pid = status.pid
  if (typeof status.uptime === 'number') snap.uptime = status.uptime
  if (typeof status.reload === 'number') snap.reload = status.reload
  if (typeof status['multi-threading-enabled'] === 'boolean') snap.multi_threading = status['multi-threading-enabled']
  if (i.version?.result === 0 && typeof i.version.text === 'string') snap.version = cutText(i.version.text)
  const ha = haStates(status)
  if (ha !== undefined) snap.ha = ha
  if (i.config !== undefined) snap.config_hash = i.config.hash
  return snap
}

/** A snapshot saying the server could not be asked: that is data too. */
export function failedSnapshot (server: string, service: KeaService, time: number, bucketMs: number, kind: SnapshotFailure, message: string): KeaSnapshot {
  return {
    '@timestamp': new Date(time).toISOString(),
    id: snapshotId(server, service, time, bucketMs),
    server,
    service,
    state: kind === 'kea' || kind === 'internal' ? 'error' : 'unreachable',
    error: { kind, message: cutText(message) },
    subnets: [],
    shared_networks: [],
    totals: { total: 0, assigned: 0, declined: 0, free: 0, utilization: 0 },
    packets: {}
  }
}

export interface SnapshotQuery {
  server?: string
  service?: KeaService
  /** Only snapshots that have this subnet. */
  subnet_id?: number
  /** Epoch ms, inclusive / exclusive. */
  from?: number
  to?: number
  /** At most this many, oldest first (default 1000, at most 10,000). */
  size?: number
}

/** The snapshot half of a store: both stores answer the same queries the same way. */
export interface SnapshotStore {
  /** Upserts by id (server|service|time bucket). */
  write: (snapshots: readonly KeaSnapshot[]) => Promise<void>
  query: (q: SnapshotQuery) => Promise<KeaSnapshot[]>
  /** The newest snapshot of every (server, service), or of one server. */
  latest: (server?: string) => Promise<KeaSnapshot[]>
}

export const MAX_SNAPSHOTS = 10_000
