import { UsageError } from '../errors.js'
import { normalizeClientId, normalizeDuid, normalizeMac, parseAddress, parseAddressOrPrefix } from './address.js'
import { MAX_INTERVALS, type CollectionGap, type Holder, type HistoryQuery, type HolderAnswer, type LeaseInterval, type LeaseStore } from './types.js'

function iso (ms: number | null): string | null {
  return ms === null ? null : new Date(ms).toISOString()
}

/** ECS form of a Kea hardware address: uppercase, hyphens. */
function ecsMac (hwaddr: string | undefined): string | undefined {
  return hwaddr?.toUpperCase().replaceAll(':', '-')
}

/** An interval as answers show it; an inferred end still ahead of `now` is "still-active". */
export function toHolder (iv: LeaseInterval, now = Date.now()): Holder {
  const active = iv.end_reason === 'expiry-by-lifetime' && iv.end !== null && iv.end > now
  const h: Holder = {
    lease: iv.lease,
    type: iv.type,
    scope: iv.scope,
    start: iso(iv.start),
    end: iso(iv.end),
    end_reason: active ? 'still-active' : iv.end_reason,
    certainty: iv.certainty,
    evidence: iv.evidence,
    origin: iv.origin
  }
  if (iv.servers !== undefined) h.servers = iv.servers
  const mac = ecsMac(iv.hwaddr)
  if (mac !== undefined) h.mac = mac
  for (const k of ['hwaddr', 'client_id', 'duid', 'duid_ll', 'iaid', 'hostname'] as const) {
    const v = iv[k]
    if (v !== undefined) (h as unknown as Record<string, unknown>)[k] = v
  }
  return h
}

/**
 * Marks intervals that reach past what keatrail collected for their scope: their end is a
 * guess about a time it has no logs for, so they are "gap" rather than "inferred".
 */
async function withCoverage (store: LeaseStore, ivs: LeaseInterval[]): Promise<LeaseInterval[]> {
  // Coverage and gaps are read once per scope (not once per interval: 100,000 intervals were
  // 100,000 gap queries on the main thread), then checked here.
  const lo = (iv: LeaseInterval): number => iv.start ?? iv.end ?? 0
  const hi = (iv: LeaseInterval): number => iv.end ?? Number.MAX_SAFE_INTEGER
  const scopes = new Map<string, { cov: { from: number, to: number } | undefined, gaps: CollectionGap[] }>()
  for (const scope of new Set(ivs.map((iv) => iv.scope))) {
    const own = ivs.filter((iv) => iv.scope === scope && iv.origin === 'log' && iv.certainty !== 'gap')
    const gaps = own.length === 0 ? [] : await store.gapsIn(scope, Math.min(...own.map(lo)), Math.max(...own.map(hi)))
    scopes.set(scope, { cov: await store.coverage(scope), gaps })
  }
  return ivs.map((iv) => {
    const { cov: c, gaps } = scopes.get(iv.scope) ?? { cov: undefined, gaps: [] }
    const beyond = iv.origin === 'log' && c !== undefined && iv.certainty === 'inferred' && (iv.end === null || iv.end > c.to)
    // Input lost inside the interval (dropped datagrams): its end, or another holder, may be missing.
    // Same overlap as gapsIn: a gap starting before the interval's end and ending at or after its start.
    const lost = iv.origin === 'log' && iv.certainty !== 'gap' && gaps.some((g) => g.from < hi(iv) && g.to >= lo(iv))
    return beyond || lost ? { ...iv, certainty: 'gap' } : iv
  })
}

/**
 * The scopes an answer for `scope` searches: the server itself and the empty scope. Events
 * stored without host.name (`keatrail import` before it stamped this machine's name, as `run`
 * does) belong to a server nobody recorded: they may be this one's, and a scoped question that
 * left them out would answer "nobody held it" where the backfill says who did. Their intervals
 * keep scope '' in the answer, so it shows where they came from. `undefined`: every scope.
 */
export function searchedScopes (scope: string | undefined): Array<string | undefined> {
  return scope === undefined || scope === '' ? [scope] : [scope, '']
}

/**
 * What a question about `server` asks: its lease domain's history (and the empty scope, see
 * searchedScopes), and for a server in a domain its own name too — history derived before
 * the domain was configured is kept under it.
 */
function asked (store: LeaseStore, server: string | undefined): { scope: string | undefined, scopes: Array<string | undefined> } {
  if (server === undefined) return { scope: undefined, scopes: [undefined] }
  const scope = store.domains?.scopeOf(server) ?? server
  const scopes = searchedScopes(scope)
  if (scope !== server) scopes.push(server)
  return { scope, scopes }
}

function by<T> (pick: (a: T, b: T) => boolean): (found: Array<T | undefined>) => T | undefined {
  return (found) => found.reduce<T | undefined>((best, x) => x === undefined ? best : best === undefined || pick(x, best) ? x : best, undefined)
}

/**
 * Who held `address` at `time`: the holders (for DHCPv6, the holder of a delegated prefix
 * containing it too) with their evidence; or nobody, with the nearest intervals before and after.
 */
export async function holderAt (store: LeaseStore, address: string, time: number, server?: string, now = Date.now()): Promise<HolderAnswer> {
  // A server in a lease domain: its domain's history.
  const { scope, scopes } = asked(store, server)
  const range = parseAddress(address)
  const found = (await Promise.all(scopes.map(async (s) => await store.intervalsAt(range, time, s)))).flat()
    .sort((a, b) => (a.start ?? -Infinity) - (b.start ?? -Infinity) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
  const truncated = found.length > MAX_INTERVALS
  const at = await withCoverage(store, found.slice(0, MAX_INTERVALS))
  // Covered when the time lies in what was collected for any scope searched.
  const covs = (await Promise.all(scopes.map(async (s) => await store.coverage(s)))).filter((c): c is { from: number, to: number } => c !== undefined)
  const cov = covs.length === 0 ? undefined : { from: Math.min(...covs.map((c) => c.from)), to: Math.max(...covs.map((c) => c.to)) }
  const gaps = await store.gapsIn(scope ?? '*', time, time + 1)
  const covered = covs.some((c) => time >= c.from && time <= c.to) && gaps.length === 0
  const answer: HolderAnswer = {
    address: range.text,
    time: new Date(time).toISOString(),
    holders: at.map((iv) => toHolder(iv, now)),
    covered,
    ...(cov === undefined ? {} : { coverage: { from: new Date(cov.from).toISOString(), to: new Date(cov.to).toISOString() } }),
    ...(gaps.length === 0 ? {} : { gaps: gaps.map((g) => ({ from: new Date(g.from).toISOString(), to: new Date(g.to).toISOString(), reason: g.reason })) }),
    ...(truncated ? { truncated } : {})
  }
  if (at.length === 0) {
    const n = await neighbourIntervals(store, range, time, scopes)
    if (n.before !== undefined) answer.before = toHolder(n.before, now)
    if (n.after !== undefined) answer.after = toHolder(n.after, now)
  }
  return answer
}

async function neighbourIntervals (store: LeaseStore, range: { lo: string, hi: string }, time: number, scopes: Array<string | undefined>): Promise<{ before?: LeaseInterval, after?: LeaseInterval }> {
  const ns = await Promise.all(scopes.map(async (s) => await store.neighbours(range, time, s)))
  const before = by<LeaseInterval>((a, b) => (a.end ?? 0) > (b.end ?? 0))(ns.map((n) => n.before))
  const after = by<LeaseInterval>((a, b) => (a.start ?? 0) < (b.start ?? 0))(ns.map((n) => n.after))
  return { ...(before === undefined ? {} : { before }), ...(after === undefined ? {} : { after }) }
}

/**
 * The holders of an address just before `before` ends and just after `after` (ms): an evidence
 * report's timeline around the holders it names. `server` as in holderAt.
 */
export async function holdersAround (store: LeaseStore, address: string, before: number, after: number, server?: string, now = Date.now()): Promise<{ before?: Holder, after?: Holder }> {
  const { scopes } = asked(store, server)
  const range = parseAddress(address)
  const b = (await neighbourIntervals(store, range, before, scopes)).before
  const a = (await neighbourIntervals(store, range, after, scopes)).after
  return { ...(b === undefined ? {} : { before: toHolder(b, now) }), ...(a === undefined ? {} : { after: toHolder(a, now) }) }
}

/** Validates and normalizes a history query: exactly one subject, identifiers in Kea's form. */
export function normalizeHistoryQuery (q: HistoryQuery): HistoryQuery {
  const subjects = (['address', 'prefix', 'mac', 'client_id', 'duid', 'hostname'] as const).filter((k) => q[k] !== undefined)
  if (subjects.length !== 1) throw new UsageError('give exactly one of address, prefix, mac, client-id, duid, hostname')
  const out: HistoryQuery = { ...q }
  if (q.address !== undefined) out.address = parseAddress(q.address).text
  if (q.prefix !== undefined) out.prefix = parseAddressOrPrefix(q.prefix).text
  if (q.mac !== undefined) out.mac = normalizeMac(q.mac)
  if (q.client_id !== undefined) out.client_id = normalizeClientId(q.client_id)
  if (q.duid !== undefined) out.duid = normalizeDuid(q.duid)
  if (q.hostname !== undefined) {
    out.hostname = q.hostname.trim().toLowerCase().replace(/\.$/, '')
    if (out.hostname === '') throw new UsageError('empty hostname')
  }
  if (q.from !== undefined && q.to !== undefined && q.from >= q.to) throw new UsageError('from must be before to')
  return out
}

export type HistoryEntry = Holder & { address?: string, prefix?: string }

/** The intervals of an address, prefix or client in time order: the first MAX_INTERVALS, then `truncated`. */
export async function historyPage (store: LeaseStore, q: HistoryQuery, now = Date.now()): Promise<{ intervals: HistoryEntry[], truncated: boolean }> {
  const nq = normalizeHistoryQuery(q)
  // A server in a lease domain: its domain's history.
  const found = (await Promise.all(asked(store, nq.scope).scopes.map(async (s) => {
    const { scope: _scope, ...rest } = nq
    return await store.intervals(s === undefined ? { ...rest, limit: MAX_INTERVALS + 1 } : { ...rest, scope: s, limit: MAX_INTERVALS + 1 })
  }))).flat()
  // The stores' order: coalesce(start, end), then id.
  found.sort((a, b) => (a.start ?? a.end ?? 0) - (b.start ?? b.end ?? 0) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
  const ivs = await withCoverage(store, found.slice(0, MAX_INTERVALS))
  return {
    intervals: ivs.map((iv) => ({ ...toHolder(iv, now), ...(iv.type === 'IA_PD' ? { prefix: iv.lease } : { address: iv.lease }) })),
    truncated: found.length > MAX_INTERVALS
  }
}

/** The intervals of an address, prefix or client, in time order: at most MAX_INTERVALS (historyPage says whether more exist). */
export async function history (store: LeaseStore, q: HistoryQuery, now = Date.now()): Promise<HistoryEntry[]> {
  return (await historyPage(store, q, now)).intervals
}

/** The identifier values a client query matches, per column (a MAC also finds DUID-LL/LLT clients). */
export function clientMatchers (q: HistoryQuery): Array<{ column: 'hwaddr' | 'client_id' | 'duid' | 'duid_ll' | 'hostname', values: string[] }> {
  if (q.mac !== undefined) return [{ column: 'hwaddr', values: [q.mac] }, { column: 'duid_ll', values: [q.mac] }]
  if (q.client_id !== undefined) {
    // Given without its type byte, a client-id is most often type 1 (Ethernet) + MAC.
    const values = [q.client_id]
    if (q.client_id.split(':').length === 6) values.push(`01:${q.client_id}`)
    return [{ column: 'client_id', values }]
  }
  if (q.duid !== undefined) return [{ column: 'duid', values: [q.duid] }, { column: 'duid_ll', values: [q.duid] }]
  if (q.hostname !== undefined) return [{ column: 'hostname', values: [q.hostname, `${q.hostname}.`] }]
  return []
}
