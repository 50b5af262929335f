import type { KeaEvent } from '../parse/event.js'
import { isoMillis } from '../parse/time/iso.js'
import { parseAddressOrPrefix } from './address.js'
import type { LeasesConfig } from './config.js'
import { NO_DOMAINS, type LeaseDomains } from './domains.js'
import { compareObservations, sequenceOf } from './observe.js'
import type { LeaseKey, LeaseObservation, LeaseType } from './types.js'

/**
 * A lease wipe: `lease4-wipe` / `lease6-wipe` made one Kea server drop every lease of a subnet
 * (`subnet_id` 0: of every subnet) at `ts` — Kea 2.2 logs `DHCPSRV_MEMFILE_WIPE_LEASES4/6 …
 * from subnet N`, later versions `LEASE_CMDS_WIPE4/6` too. It names no address: it ends the
 * intervals of that server, family and subnet open at that moment (deriveIntervals).
 */
export interface LeaseWipe {
  /** host.name of the server ('' when unknown), or its lease domain's name: as lease keys have it. */
  scope: string
  family: 4 | 6
  /** 0: every subnet. */
  subnet_id: number
  ts: number
  seq: string
  event_id: string
}

/** The action a wipe has as an observation of one key (deriveIntervals ends or marks the open interval). */
export const WIPE_ACTION = 'lease-wipe'

/**
 * The wipe an event records, if it is one. In a lease domain it reaches the domain's history:
 * servers on one SQL lease database share what was wiped; an HA peer does not (its copy of
 * the leases stays), but the domain keeps one history, and a lease the peer still renews opens
 * again at its next line.
 */
export function observeWipe (e: KeaEvent, domains: LeaseDomains = NO_DOMAINS): LeaseWipe | undefined {
  if (e.event.action !== WIPE_ACTION) return undefined
  const family = e.event.dataset === 'kea.dhcp4' ? 4 : e.event.dataset === 'kea.dhcp6' ? 6 : undefined
  if (family === undefined) return undefined
  const ts = isoMillis(e['@timestamp'])
  if (Number.isNaN(ts)) return undefined
  // lease4-wipe without a subnet-id wipes every subnet (Kea's lease_cmds).
  return { scope: domains.scopeOf(e.host?.name ?? ''), family, subnet_id: e.kea.subnet_id ?? 0, ts, seq: sequenceOf(e.event.id), event_id: e.event.id }
}

export function wipesOf (events: readonly KeaEvent[], domains: LeaseDomains = NO_DOMAINS): LeaseWipe[] {
  const out: LeaseWipe[] = []
  for (const e of events) {
    if (e.event.action !== WIPE_ACTION) continue
    const w = observeWipe(e, domains)
    if (w !== undefined) out.push(w)
  }
  return out
}

export function familyOf (type: LeaseType): 4 | 6 {
  return type === 'V4' ? 4 : 6
}

/** The lease types a wipe of `family` reaches. */
export function typesOf (family: 4 | 6): LeaseType[] {
  return family === 4 ? ['V4'] : ['IA_NA', 'IA_PD']
}

/**
 * A wipe as an observation of key `k`: what a key's derivation folds in, and what evidence names.
 * `inSubnet`: whether the configured subnets put k's address in the wiped subnet (SubnetMap).
 */
export function wipeObservation (w: LeaseWipe, k: LeaseKey, inSubnet?: boolean): LeaseObservation {
  const o: LeaseObservation = { event_id: w.event_id, ts: w.ts, seq: w.seq, key: k.key, scope: k.scope, type: k.type, lease: k.lease, lo: k.lo, hi: k.hi, action: WIPE_ACTION, subnet_id: w.subnet_id }
  if (inSubnet !== undefined) o.in_subnet = inSubnet
  return o
}

/** The configured subnets (`leases.subnets`) by server and family: which subnet an address is in. */
export class SubnetMap {
  private readonly byScope = new Map<string, Array<{ id: number, lo: string, hi: string }>>()

  /** `domains`: a server's subnets belong to its lease domain's history (a shared lease database's servers share them). */
  constructor (subnets: LeasesConfig['subnets'] = [], domains: LeaseDomains = NO_DOMAINS) {
    for (const s of subnets) {
      const r = parseAddressOrPrefix(s.prefix)
      const k = `${r.family}|${domains.scopeOf(s.server)}`
      const list = this.byScope.get(k) ?? []
      list.push({ id: s.id, lo: r.lo, hi: r.hi })
      this.byScope.set(k, list)
    }
  }

  get size (): number { return this.byScope.size }

  /**
   * Whether `k`'s address or prefix lies in subnet `w.subnet_id` of the wipe's server: undefined
   * when no configured subnet of that server holds it (unknown), false when another one does.
   * (lo/hi are fixed-width hex of one family: they compare as text.)
   */
  holds (k: LeaseKey, w: LeaseWipe): boolean | undefined {
    const ids = this.idsHolding(k, w.family)
    return ids.length === 0 ? undefined : ids.includes(w.subnet_id)
  }

  /** The ids of the configured subnets of k's server that hold its address or prefix. */
  idsHolding (k: LeaseKey, family: 4 | 6 = familyOf(k.type)): number[] {
    const list = this.byScope.get(`${family}|${k.scope}`)
    if (list === undefined) return []
    const out: number[] = []
    for (const s of list) if (s.lo <= k.lo && k.hi <= s.hi) out.push(s.id)
    return out
  }
}

/**
 * Wipes a store keeps at most. Each costs ~0.3 KB in memory for the store's life, and a syslog
 * peer can send any line: a flood of forged wipe lines must not grow memory without end. Kea
 * logs a wipe of every subnet as one line per subnet, so this is 50 wipes of a 2,000-subnet
 * server. Wipes past it are not applied: counted, logged and recorded as collection gaps.
 */
export const MAX_WIPES = 100_000

/** What WipeRegistry.add did with a wipe. */
export type WipeAdded = 'added' | 'known' | 'over-limit'

/** One server and family's wipes in (ts, seq) order: all of them, and by subnet. */
interface ScopeWipes {
  all: LeaseWipe[]
  bySubnet: Map<number, LeaseWipe[]>
}

/** Inserts in (ts, seq) order: wipes arrive in time order as a rule; a late one goes in place. */
function insertSorted (list: LeaseWipe[], w: LeaseWipe): void {
  const last = list[list.length - 1]
  if (last === undefined || compareObservations(last, w) <= 0) { list.push(w); return }
  list.splice(firstAtOrAfter(list, w), 0, w)
}

/** Index of the first wipe of `list` at or after position `p` (binary search). */
function firstAtOrAfter (list: readonly LeaseWipe[], p: { ts: number, seq: string }): number {
  let lo = 0
  let hi = list.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (compareObservations(list[mid] as LeaseWipe, p) < 0) lo = mid + 1
    else hi = mid
  }
  return lo
}

/**
 * The first of a batch's wipes (in order) inside an interval (`start` null: from before
 * collection; `end` null: still open; an end in the wipe's millisecond may still follow it):
 * the one a stored key must meet (WipeRegistry.merge adds the rest). Undefined: none.
 */
export function firstWipeWithin (group: readonly LeaseWipe[], start: number | null, end: number | null): LeaseWipe | undefined {
  let lo = 0
  let hi = group.length
  if (start !== null) {
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if ((group[mid] as LeaseWipe).ts < start) lo = mid + 1
      else hi = mid
    }
  }
  const w = group[lo]
  return w === undefined || (end !== null && w.ts > end) ? undefined : w
}

/** The first wipe of `list` after `after` (at or after it when `inclusive`) and before `before`, if any. */
function firstBetween (list: readonly LeaseWipe[] | undefined, after: { ts: number, seq: string }, inclusive: boolean, before: { ts: number, seq: string } | undefined): LeaseWipe | undefined {
  if (list === undefined) return undefined
  let i = firstAtOrAfter(list, after)
  while (!inclusive && i < list.length && compareObservations(list[i] as LeaseWipe, after) === 0) i++
  const w = list[i]
  return w === undefined || (before !== undefined && compareObservations(w, before) >= 0) ? undefined : w
}

/**
 * The wipes a store knows, by server and family, in time order. Every derivation of a key
 * consults its server's: an interval is ended by a wipe whenever the wipe and the interval's
 * observations were collected, in whatever order. At most `limit` (MAX_WIPES) are kept.
 */
export class WipeRegistry {
  private readonly byScope = new Map<string, ScopeWipes>()
  private readonly ids = new Set<string>()

  /** `subnets`: the configured subnets, which tell a wipe which leases of unknown subnet it ends. */
  constructor (private readonly subnets?: SubnetMap, private readonly limit = MAX_WIPES) {}

  /** Adds a wipe: 'known' when it was (the same event again), 'over-limit' when the registry is full. */
  add (w: LeaseWipe): WipeAdded {
    if (this.ids.has(w.event_id)) return 'known'
    if (this.ids.size >= this.limit) return 'over-limit'
    this.ids.add(w.event_id)
    const k = `${w.family}|${w.scope}`
    let sw = this.byScope.get(k)
    if (sw === undefined) { sw = { all: [], bySubnet: new Map() }; this.byScope.set(k, sw) }
    insertSorted(sw.all, w)
    let own = sw.bySubnet.get(w.subnet_id)
    if (own === undefined) { own = []; sw.bySubnet.set(w.subnet_id, own) }
    insertSorted(own, w)
    return 'added'
  }

  /**
   * A batch's wipes added: those kept, grouped by server and family in time order (each group is
   * one probe of the server's keys), and per server the span and count of those past the bound
   * (not applied: the stores record the span as a collection gap). The same wipe twice counts once.
   */
  admit (wipes: readonly LeaseWipe[]): { groups: LeaseWipe[][], ignored: Map<string, { from: number, to: number, n: number }> } {
    const groups = new Map<string, LeaseWipe[]>()
    const ignored = new Map<string, { from: number, to: number, n: number }>()
    const seen = new Set<string>()
    for (const w of wipes) {
      if (seen.has(w.event_id)) continue
      seen.add(w.event_id)
      if (this.add(w) === 'over-limit') {
        const g = ignored.get(w.scope)
        if (g === undefined) ignored.set(w.scope, { from: w.ts, to: w.ts, n: 1 })
        else { g.from = Math.min(g.from, w.ts); g.to = Math.max(g.to, w.ts); g.n++ }
        continue
      }
      const k = `${w.family}|${w.scope}`
      const g = groups.get(k)
      if (g === undefined) groups.set(k, [w])
      else g.push(w)
    }
    return { groups: [...groups.values()].map((g) => g.sort(compareObservations)), ignored }
  }

  /** Adds many (a store's stored wipes): sorted once, not one insertion each (out of order, that was quadratic). */
  addAll (wipes: readonly LeaseWipe[]): void {
    const touched = new Set<ScopeWipes>()
    for (const w of wipes) {
      if (this.ids.has(w.event_id) || this.ids.size >= this.limit) continue
      this.ids.add(w.event_id)
      const k = `${w.family}|${w.scope}`
      let sw = this.byScope.get(k)
      if (sw === undefined) { sw = { all: [], bySubnet: new Map() }; this.byScope.set(k, sw) }
      sw.all.push(w)
      let own = sw.bySubnet.get(w.subnet_id)
      if (own === undefined) { own = []; sw.bySubnet.set(w.subnet_id, own) }
      own.push(w)
      touched.add(sw)
    }
    for (const sw of touched) {
      sw.all.sort(compareObservations)
      for (const own of sw.bySubnet.values()) own.sort(compareObservations)
    }
  }

  get size (): number { return this.ids.size }

  /** SubnetMap.holds for a wipe of one subnet (not of every subnet: 0). */
  inSubnet (k: LeaseKey, w: LeaseWipe): boolean | undefined {
    return w.subnet_id === 0 || this.subnets === undefined || this.subnets.size === 0 ? undefined : this.subnets.holds(k, w)
  }

  /**
   * `obs` (one key's, in derivation order) with the wipes of its server and family that can
   * change its derivation merged in, from its first observation on (wipes before it cannot end
   * anything it opens); those it has already (by event id) are made again from the registry.
   * `after`: where the key's derivation stood (a resumed fold): only wipes after it.
   * `context`: the interval the derivation resumes or follows (its subnet).
   *
   * Between two of the key's own observations its state changes only by wipes, and after the
   * first wipe of a subnet (or of every subnet) another of the same changes nothing: it ended
   * the lease, or the lease is known to be in another subnet, or it was marked (deriveIntervals).
   * So each stretch between observations takes only the first wipe, the first of every subnet
   * (0), and the first of each subnet the key could be known in — the subnets its observations
   * and `context` name, and the configured ones holding its address. A key meets a handful of
   * wipes however many were sent, in O(log wipes) each.
   */
  merge (obs: readonly LeaseObservation[], after?: { ts: number, seq: string }, context?: { subnet_id?: number }): LeaseObservation[] {
    const first = obs[0]
    if (first === undefined || this.size === 0) return obs as LeaseObservation[]
    const sw = this.byScope.get(`${familyOf(first.type)}|${first.scope}`)
    // None of its server's wipes at or after its first observation (the usual case: wipes are
    // rare): nothing to merge, and no subnet lookups (2,000 configured subnets made them 50 µs).
    const newest = sw?.all[sw.all.length - 1]
    if (sw === undefined || newest === undefined || newest.ts < first.ts) return obs as LeaseObservation[]
    const subnets = new Set<number>(this.subnets?.idsHolding(first) ?? [])
    if (context?.subnet_id !== undefined) subnets.add(context.subnet_id)
    const stored = new Map<string, number>()
    obs.forEach((o, i) => {
      if (o.action === WIPE_ACTION) stored.set(o.event_id, i)
      else if (o.subnet_id !== undefined) subnets.add(o.subnet_id)
    })
    subnets.delete(0)
    const lists = [sw.all, sw.bySubnet.get(0), ...[...subnets].map((s) => sw.bySubnet.get(s))]
    // From the first observation's millisecond (as the stores have always merged), or after `after`.
    let from: { ts: number, seq: string } = { ts: first.ts, seq: '' }
    let inclusive = true
    if (after !== undefined && compareObservations(after, from) >= 0) { from = after; inclusive = false }
    const chosen = new Map<string, LeaseWipe>()
    const pick = (lo: { ts: number, seq: string }, loInclusive: boolean, hi: { ts: number, seq: string } | undefined): void => {
      for (const list of lists) {
        const w = firstBetween(list, lo, loInclusive, hi)
        if (w !== undefined) chosen.set(w.event_id, w)
      }
    }
    // Stretches between the key's own observations (wipes it stores are not boundaries).
    let lo = from
    let loInclusive = inclusive
    for (const o of obs) {
      if (o.action === WIPE_ACTION || compareObservations(o, lo) < 0) continue
      pick(lo, loInclusive, o)
      lo = o
      // A wipe at the observation's very position (two ids with one seq) folds after it (the
      // sort below is stable): it belongs to the stretch that follows.
      loInclusive = true
    }
    pick(lo, loInclusive, undefined)
    let out: LeaseObservation[] | undefined
    // A wipe the key stores already is made again from the registry: what the configured
    // subnets say of it now, not when it was stored.
    for (const [id, i] of stored) {
      const w = chosen.get(id) ?? this.byId(sw, obs[i] as LeaseObservation)
      chosen.delete(id)
      if (w === undefined) continue
      const fresh = wipeObservation(w, first, this.inSubnet(first, w))
      if (fresh.in_subnet === (obs[i] as LeaseObservation).in_subnet) continue
      out ??= [...obs]
      out[i] = fresh
    }
    if (chosen.size === 0) return out ?? obs as LeaseObservation[]
    const add = [...chosen.values()].map((w) => wipeObservation(w, first, this.inSubnet(first, w)))
    return (out ?? [...obs]).concat(add).sort(compareObservations)
  }

  /** The registry's wipe for a stored wipe observation (by position, then id). */
  private byId (sw: ScopeWipes, o: LeaseObservation): LeaseWipe | undefined {
    const list = sw.all
    for (let i = firstAtOrAfter(list, o); i < list.length; i++) {
      const w = list[i] as LeaseWipe
      if (compareObservations(w, o) !== 0) return undefined
      if (w.event_id === o.event_id) return w
    }
    return undefined
  }
}
