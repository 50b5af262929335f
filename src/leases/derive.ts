import { createHash } from 'node:crypto'
import type { EndReason, LeaseClient, LeaseInterval, LeaseObservation } from './types.js'
import { WIPE_ACTION } from './wipes.js'

const START_ACTIONS = new Set(['allocate', 'renew', 'reuse', 'lease-add', 'lease-update'])
const END_REASON: Record<string, EndReason> = {
  release: 'release',
  decline: 'decline',
  reclaim: 'reclaim',
  expire: 'reclaim',
  revoke: 'deleted',
  'lease-delete': 'deleted'
}
/** Evidence kept per interval: the first event, the latest extensions, the end. */
const EVIDENCE_TAIL = 8

export function intervalId (key: string, firstEvent: string): string {
  return createHash('sha1').update(key).update('\0').update(firstEvent).digest('hex').slice(0, 24)
}

/**
 * Two observations are about different clients when an identifier both carry differs. Kea
 * logs the hwaddr and/or client-id for v4 and the DUID (+ IAID) for v6; an admin command may
 * carry only some of them, and then the ones it has decide.
 */
export function sameClient (a: LeaseClient, b: LeaseClient): boolean {
  if (a.hwaddr !== undefined && b.hwaddr !== undefined && a.hwaddr !== b.hwaddr) return false
  if (a.client_id !== undefined && b.client_id !== undefined && a.client_id !== b.client_id) return false
  if (a.duid !== undefined && b.duid !== undefined && a.duid !== b.duid) return false
  if (a.iaid !== undefined && b.iaid !== undefined && a.iaid !== b.iaid) return false
  return true
}

interface Open {
  iv: LeaseInterval
  /** When the lease runs out unless extended (ms); null when no lifetime is known. */
  expiry: number | null
  tail: string[]
  /** A wipe of its server met it and its subnet is not known: whether it ended then is not (certainty gap). */
  unsure?: boolean
}

/** An interval of a lease domain holds a line of o's server: it is among its servers (a new array: `iv` may be a stored interval's copy). */
function heardFrom (iv: LeaseInterval, o: LeaseObservation): boolean {
  const s = o.server
  if (s === undefined || iv.servers?.includes(s) === true) return false
  iv.servers = [...(iv.servers ?? []), s].sort()
  return true
}

function adopt (iv: LeaseClient, o: LeaseObservation): void {
  if (o.hwaddr !== undefined) iv.hwaddr = o.hwaddr
  if (o.client_id !== undefined) iv.client_id = o.client_id
  if (o.duid !== undefined) iv.duid = o.duid
  if (o.duid_ll !== undefined) iv.duid_ll = o.duid_ll
  if (o.iaid !== undefined) iv.iaid = o.iaid
  if (o.hostname !== undefined) iv.hostname = o.hostname
}

/**
 * Lease caching (Kea's cache-threshold, on by default from 3.0): `…_LEASE_REUSE … reused for N
 * seconds` hands the lease out again unchanged, N being the seconds it has left. So the lease
 * runs out at t + N, whatever the line before said — Kea 3.0.4 logs a cached DHCPv4 renewal as
 * `DHCP4_LEASE_ALLOC … allocated for 8 seconds` and then, same transaction, `DHCP4_LEASE_REUSE
 * … reused for 6 seconds`, and its lease file keeps the old expiry. And N is not the lease's
 * lifetime: a later DHCPv6 renewal, logged without one, is granted the full lifetime (3.0.4:
 * a renewal after reuses for 8 s of a 10 s lease wrote expire = renewal + 10 s).
 */
function extendByReuse (cur: Open, o: LeaseObservation): void {
  if (o.lifetime === undefined) return
  cur.expiry = o.ts + o.lifetime * 1000
  // Only a lower bound of the lifetime, kept when nothing better is known: a lifetime-less
  // renewal then extends by it rather than not at all.
  cur.iv.lifetime ??= o.lifetime
}

function open (o: LeaseObservation, start: number | null): Open {
  const iv: LeaseInterval = {
    id: intervalId(o.key, o.event_id),
    key: o.key,
    scope: o.scope,
    type: o.type,
    lease: o.lease,
    lo: o.lo,
    hi: o.hi,
    start,
    end: null,
    end_reason: 'still-active',
    certainty: 'inferred',
    extensions: 0,
    evidence: [o.event_id],
    origin: 'log'
  }
  if (o.subnet_id !== undefined) iv.subnet_id = o.subnet_id
  adopt(iv, o)
  heardFrom(iv, o)
  // A reuse's N is what the lease had left: a lifetime only until a better one is known (see
  // extendByReuse and the borrowing below).
  if (o.lifetime !== undefined) iv.lifetime = o.lifetime
  return { iv, expiry: o.lifetime === undefined ? null : o.ts + o.lifetime * 1000, tail: [] }
}

/** An interval the fold closed only because its input ended: it can take more observations. */
export function resumable (iv: LeaseInterval): boolean {
  return iv.origin === 'log' && iv.start !== null && (iv.end_reason === 'expiry-by-lifetime' || iv.end_reason === 'still-active')
}

function reopen (iv: LeaseInterval): Open {
  // finish() wrote the head (the first event, and the wipe that marked it) then the tail of
  // extensions, at most EVIDENCE_TAIL of them; a resumable interval has no end event.
  const tailLength = Math.min(iv.extensions, EVIDENCE_TAIL, Math.max(iv.evidence.length - 1, 0))
  const split = iv.evidence.length - tailLength
  return {
    iv: { ...iv, end: null, end_reason: 'still-active', certainty: 'inferred', evidence: iv.evidence.slice(0, split) },
    expiry: iv.end,
    tail: iv.evidence.slice(split),
    // finish() makes 'gap' with a known start only for an interval a wipe met (see unsure).
    ...(iv.certainty === 'gap' && iv.start !== null ? { unsure: true } : {})
  }
}

function finish (cur: Open, end: number | null, reason: EndReason, observed: boolean, endEvent?: string): LeaseInterval {
  const iv = cur.iv
  iv.end = end
  iv.end_reason = reason
  iv.certainty = cur.unsure === true || iv.start === null ? 'gap' : observed ? 'observed' : 'inferred'
  iv.evidence = [...iv.evidence, ...cur.tail, ...(endEvent === undefined ? [] : [endEvent])]
  return iv
}

/**
 * Lease intervals of one key (one address or prefix of one server) from its observations in
 * (ts, seq) order. Pure and deterministic: the same observations always give the same
 * intervals with the same ids, whatever order they were stored in.
 *
 * - allocate/renew/reuse/lease-add/lease-update by the holder extend its interval (a renewal
 *   without a lifetime, as DHCPv6 logs it, keeps the last lifetime; a reuse sets the expiry:
 *   extendByReuse); by another client, or
 *   after the lease ran out, they close it and open a new one;
 * - release, decline, reclaim, delete end it at the logged time (reclaim: at the expiry if
 *   that came first, since reclamation runs after the lease has run out);
 * - a wipe of its server's subnet (an observation WipeRegistry.merge adds) ends it ("wiped");
 *   one of a subnet it is not known to be in marks it (certainty "gap");
 * - otherwise the lease ends when its last lifetime runs out ("expiry-by-lifetime",
 *   inferred: Kea logs expiry only at DEBUG).
 *
 * `before`: when `obs` is the tail of a key's history starting at an interval's first event,
 * the interval just before it (a lifetime-less renewal opening an interval borrows its lifetime).
 * `resume`: when `obs` all come after every observation already derived, the key's last
 * interval if it was still open when that derivation ran out of observations (see resumable).
 */
export function deriveIntervals (obs: readonly LeaseObservation[], before?: LeaseInterval, resume?: LeaseInterval): LeaseInterval[] {
  const out: LeaseInterval[] = []
  let cur: Open | undefined = resume === undefined ? undefined : reopen(resume)
  // Stores re-derive only the tail of a key's history; `before` is the stored interval that
  // precedes that tail, so the result equals a derivation from the very first observation.
  let prev: LeaseInterval | undefined = before === undefined ? undefined : { ...before, evidence: [...before.evidence] }
  const context = prev
  let contextChanged = false
  const close = (end: number | null, reason: EndReason, observed: boolean, endEvent?: string): void => {
    if (cur === undefined) return
    prev = finish(cur, end, reason, observed, endEvent)
    out.push(prev)
    cur = undefined
  }
  for (const o of obs) {
    if (o.action === WIPE_ACTION) {
      // A wipe (src/leases/wipes.ts) ends the lease open at that moment if it is in the wiped
      // subnet; one whose subnet is not known may or may not have ended: marked, not guessed.
      // A lease that ran out before it, or nothing open, is not its business.
      if (cur === undefined || (cur.expiry !== null && cur.expiry <= o.ts)) continue
      const subnet = o.subnet_id ?? 0
      // The subnet the logs gave the lease, or else the one the configuration puts its address in.
      const known = cur.iv.subnet_id === undefined ? o.in_subnet : cur.iv.subnet_id === subnet
      if (subnet === 0 || known === true) close(o.ts, 'wiped', true, o.event_id)
      else if (known === undefined && cur.unsure !== true) {
        // The first such wipe is named; later ones change nothing (a site wiping hourly would
        // otherwise grow a long lease's evidence by one a wipe).
        cur.unsure = true
        cur.iv.evidence.push(o.event_id)
      }
      continue
    }
    if (START_ACTIONS.has(o.action)) {
      if (cur !== undefined && sameClient(cur.iv, o) && (cur.expiry === null || o.ts <= cur.expiry)) {
        cur.iv.extensions++
        adopt(cur.iv, o)
        heardFrom(cur.iv, o)
        if (o.subnet_id !== undefined) cur.iv.subnet_id = o.subnet_id
        if (o.action === 'reuse') extendByReuse(cur, o)
        else {
          const lifetime = o.lifetime ?? cur.iv.lifetime
          if (lifetime !== undefined) { cur.iv.lifetime = lifetime; cur.expiry = o.ts + lifetime * 1000 }
        }
        cur.tail.push(o.event_id)
        if (cur.tail.length > EVIDENCE_TAIL) cur.tail.shift()
        continue
      }
      if (cur !== undefined) {
        if (cur.expiry !== null && cur.expiry <= o.ts) close(cur.expiry, 'expiry-by-lifetime', false)
        else close(o.ts, 'superseded', true)
      }
      cur = open(o, o.ts)
      // A renewal without a lifetime opening an interval: take the lifetime this address had
      // (a reuse opening one keeps its t + N as the expiry, but the lifetime is the address's).
      if ((o.lifetime === undefined || o.action === 'reuse') && prev?.lifetime !== undefined && sameClient(prev, o)) {
        cur.iv.lifetime = prev.lifetime
        if (o.lifetime === undefined) cur.expiry = o.ts + prev.lifetime * 1000
      }
      continue
    }
    const reason = END_REASON[o.action]
    if (reason === undefined) continue
    if (cur !== undefined) {
      heardFrom(cur.iv, o)
      const end = reason === 'reclaim' && cur.expiry !== null ? Math.min(cur.expiry, o.ts) : o.ts
      close(end, reason, true, o.event_id)
      continue
    }
    // An end with nothing open: the second line of a reclamation, or the end of a lease that
    // began before collection did.
    if (prev !== undefined && sameClient(prev, o) && prev.end !== null && prev.end <= o.ts) {
      if (!prev.evidence.includes(o.event_id)) {
        prev.evidence.push(o.event_id)
        heardFrom(prev, o)
        if (prev === context) contextChanged = true
      }
      continue
    }
    const started = open(o, null)
    cur = started
    close(o.ts, reason, false, undefined)
  }
  if (cur !== undefined) {
    if (cur.expiry !== null) close(cur.expiry, 'expiry-by-lifetime', false)
    else close(null, 'still-active', false)
  }
  // The context interval gained evidence: hand it back so the store rewrites it.
  if (contextChanged && context !== undefined) out.unshift(context)
  return out
}
