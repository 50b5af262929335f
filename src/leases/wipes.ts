import type { KeaEvent } from '../parse/event.js'
import { isoMillis } from '../parse/time/iso.js'
import { parseAddressOrPrefix } from './address.js'
import type { LeasesConfig } from './config.js'
import { compareObservations, sequenceOf } from './observe.js'
import type { LeaseKey, LeaseObservation, LeaseType } from './types.js'

/**
 * A lease wipe: `lease4-wipe` / `lease6-wipe` made one Kea server drop every lease of a subnet
 * (`subnet_id` 0: of every subnet) at `ts` — Kea 2.2 logs `DHCPSRV_MEMFILE_WIPE_LEASES4/6 …
 * from subnet N`, later versions `LEASE_CMDS_WIPE4/6` too. It names no address: it ends the
 * intervals of that server, family and subnet open at that moment (deriveIntervals).
 */
export interface LeaseWipe {
  /** host.name of the server ('' when unknown), as lease keys have it. */
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

/** The wipe an event records, if it is one. */
export function observeWipe (e: KeaEvent): LeaseWipe | undefined {
  if (e.event.action !== WIPE_ACTION) return undefined
  const family = e.event.dataset === 'kea.dhcp4' ? 4 : e.event.dataset === 'kea.dhcp6' ? 6 : undefined
  if (family === undefined) return undefined
  const ts = isoMillis(e['@timestamp'])
  if (Number.isNaN(ts)) return undefined
  // lease4-wipe without a subnet-id wipes every subnet (Kea's lease_cmds).
  return { scope: e.host?.name ?? '', family, subnet_id: e.kea.subnet_id ?? 0, ts, seq: sequenceOf(e.event.id), event_id: e.event.id }
}

export function wipesOf (events: readonly KeaEvent[]): LeaseWipe[] {
  const out: LeaseWipe[] = []
  for (const e of events) {
    if (e.event.action !== WIPE_ACTION) continue
    const w = observeWipe(e)
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

  constructor (subnets: LeasesConfig['subnets'] = []) {
    for (const s of subnets) {
      const r = parseAddressOrPrefix(s.prefix)
      const k = `${r.family}|${s.server}`
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
    const list = this.byScope.get(`${w.family}|${k.scope}`)
    if (list === undefined) return undefined
    let other = false
    for (const s of list) {
      if (s.lo > k.lo || k.hi > s.hi) continue
      if (s.id === w.subnet_id) return true
      other = true
    }
    return other ? false : undefined
  }
}

/**
 * The wipes a store knows, by server and family, in time order. Wipes are operators' commands
 * (a handful in a store's life), so all of them are kept in memory and every derivation of a key
 * consults its server's: an interval is ended by a wipe whenever the wipe and the interval's
 * observations were collected, in whatever order.
 */
export class WipeRegistry {
  private readonly byScope = new Map<string, LeaseWipe[]>()
  private readonly ids = new Set<string>()

  /** `subnets`: the configured subnets, which tell a wipe which leases of unknown subnet it ends. */
  constructor (private readonly subnets?: SubnetMap) {}

  /** Adds a wipe; false when it was known (the same event again). */
  add (w: LeaseWipe): boolean {
    if (this.ids.has(w.event_id)) return false
    this.ids.add(w.event_id)
    const k = `${w.family}|${w.scope}`
    const list = this.byScope.get(k) ?? []
    list.push(w)
    // Wipes arrive in time order as a rule: sorted only when one does not.
    const prev = list[list.length - 2]
    if (prev !== undefined && compareObservations(prev, w) > 0) list.sort(compareObservations)
    this.byScope.set(k, list)
    return true
  }

  get size (): number { return this.ids.size }

  /** The wipes of key `k`'s server and family at or after `fromTs`. */
  private from (k: LeaseKey, fromTs: number): LeaseWipe[] {
    const list = this.byScope.get(`${familyOf(k.type)}|${k.scope}`)
    if (list === undefined) return []
    // From the first at or after fromTs (binary search): a store of years may hold thousands, a
    // key derived in order meets the few after its first observation.
    let lo = 0
    let hi = list.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if ((list[mid] as LeaseWipe).ts < fromTs) lo = mid + 1
      else hi = mid
    }
    return list.slice(lo)
  }

  /** SubnetMap.holds for a wipe of one subnet (not of every subnet: 0). */
  inSubnet (k: LeaseKey, w: LeaseWipe): boolean | undefined {
    return w.subnet_id === 0 || this.subnets === undefined || this.subnets.size === 0 ? undefined : this.subnets.holds(k, w)
  }

  /**
   * `obs` (one key's, in derivation order) with the wipes of its server and family at or after
   * its first observation merged in, those it has already (by event id) left out. Wipes before it
   * cannot end anything it opens. `after`: where the key's derivation stood (a resumed fold):
   * only wipes after it.
   */
  merge (obs: readonly LeaseObservation[], after?: { ts: number, seq: string }): LeaseObservation[] {
    const first = obs[0]
    if (first === undefined || this.size === 0) return obs as LeaseObservation[]
    const wipes = this.from(first, first.ts)
    if (wipes.length === 0) return obs as LeaseObservation[]
    const byId = new Map(wipes.map((w) => [w.event_id, w]))
    let out: LeaseObservation[] | undefined
    // A wipe the key stores already is made again from the registry: what the configured
    // subnets say of it now, not when it was stored.
    obs.forEach((o, i) => {
      const w = o.action === WIPE_ACTION ? byId.get(o.event_id) : undefined
      if (w === undefined) return
      byId.delete(o.event_id)
      const fresh = wipeObservation(w, first, this.inSubnet(first, w))
      if (fresh.in_subnet === o.in_subnet) return
      out ??= [...obs]
      out[i] = fresh
    })
    const add: LeaseObservation[] = []
    for (const w of byId.values()) {
      if (after !== undefined && compareObservations(w, after) <= 0) continue
      add.push(wipeObservation(w, first, this.inSubnet(first, w)))
    }
    if (add.length === 0) return out ?? obs as LeaseObservation[]
    return [...(out ?? obs), ...add].sort(compareObservations)
  }
}
