import type { KeaEvent } from '../parse/event.js'
import { isoMillis } from '../parse/time/iso.js'
import { duidLinkLayer, parseAddressOrPrefix } from './address.js'
import { NO_DOMAINS, type LeaseDomains } from './domains.js'
import type { LeaseObservation, LeaseType } from './types.js'

/**
 * Actions that shape lease intervals. Offers, NAKs and failures are evidence in the event store
 * but never make anyone a holder: Kea's lease file does not change for them either.
 */
export const SHAPING_ACTIONS = new Set(['allocate', 'renew', 'reuse', 'lease-add', 'lease-update', 'release', 'decline', 'reclaim', 'expire', 'revoke', 'lease-delete'])

/** `<source>-<hex offset>` → a string that sorts like (source, offset). Other ids sort as they are. */
export function sequenceOf (eventId: string): string {
  // Once per lease observation: by hand, without a regex and the slices it tested (bench/e2e).
  const dash = eventId.lastIndexOf('-')
  const digits = eventId.length - dash - 1
  if (dash < 0 || digits < 1 || digits > 13) return eventId
  for (let i = dash + 1; i < eventId.length; i++) {
    const c = eventId.charCodeAt(i)
    if (!((c >= 48 && c <= 57) || (c >= 97 && c <= 102))) return eventId
  }
  return digits === 13 ? eventId : eventId.slice(0, dash + 1) + ZEROS.slice(digits) + eventId.slice(dash + 1)
}
const ZEROS = '0000000000000'

function leaseType (e: KeaEvent): LeaseType | undefined {
  const t = e.kea.lease?.type
  if (t === 'V4' || t === 'IA_NA' || t === 'IA_PD') return t
  if (t === 'IA_TA') return undefined
  if (e.event.dataset === 'kea.dhcp4') return 'V4'
  if (e.event.dataset === 'kea.dhcp6') return e.kea.lease?.prefix !== undefined ? 'IA_PD' : 'IA_NA'
  return undefined
}

/**
 * The lease observation in an event, if the event shapes a lease of one address or prefix.
 * `domains`: a server in a lease domain keeps its leases under the domain's name.
 */
export function observe (e: KeaEvent, domains: LeaseDomains = NO_DOMAINS): LeaseObservation | undefined {
  const action = e.event.action
  if (action === undefined || !SHAPING_ACTIONS.has(action)) return undefined
  const type = leaseType(e)
  if (type === undefined) return undefined
  const lease = e.kea.lease
  let text: string | undefined
  if (type === 'IA_PD') {
    if (lease?.prefix === undefined || lease.prefix_length === undefined) return undefined
    text = `${lease.prefix}/${lease.prefix_length}`
  } else {
    text = lease?.address ?? e.client?.ip
  }
  if (text === undefined) return undefined
  let range
  try { range = parseAddressOrPrefix(text) } catch { return undefined }
  if ((type === 'V4') !== (range.family === 4)) return undefined
  const ts = isoMillis(e['@timestamp'])
  if (Number.isNaN(ts)) return undefined
  const host = e.host?.name ?? ''
  const scope = domains.scopeOf(host)
  const o: LeaseObservation = {
    event_id: e.event.id,
    ts,
    seq: sequenceOf(e.event.id),
    key: `${scope}|${type}|${range.text}`,
    scope,
    type,
    lease: range.text,
    lo: range.lo,
    hi: range.hi,
    action
  }
  if (lease?.lifetime !== undefined) o.lifetime = lease.lifetime
  if (e.kea.subnet_id !== undefined) o.subnet_id = e.kea.subnet_id
  if (e.kea.hwaddr !== undefined) o.hwaddr = e.kea.hwaddr.toLowerCase()
  if (e.kea.client_id !== undefined) o.client_id = e.kea.client_id.toLowerCase()
  if (e.kea.duid !== undefined) {
    o.duid = e.kea.duid.toLowerCase()
    const ll = duidLinkLayer(o.duid)
    if (ll !== undefined) o.duid_ll = ll
  }
  if (e.kea.iaid !== undefined) o.iaid = e.kea.iaid
  if (e.kea.hostname !== undefined) o.hostname = e.kea.hostname
  // In a lease domain: which of its servers said so (answers list them).
  if (scope !== host) o.server = host
  return o
}

export function observeAll (events: readonly KeaEvent[], domains: LeaseDomains = NO_DOMAINS): LeaseObservation[] {
  const out: LeaseObservation[] = []
  for (const e of events) {
    if (e.event.action === undefined) continue
    const o = observe(e, domains)
    if (o !== undefined) out.push(o)
  }
  return out
}

/**
 * The observations of events being withdrawn or read back, under today's lease domains and,
 * for a domain's servers, under their own names too: history derived before a domain was
 * configured is kept under the server's name, and a delete, a replacement or a repair must
 * still reach it (re-observed with today's domains only, it stayed, citing deleted events).
 */
export function observeAllEither (events: readonly KeaEvent[], domains: LeaseDomains = NO_DOMAINS): LeaseObservation[] {
  const now = observeAll(events, domains)
  if (domains.size === 0) return now
  for (const e of events) {
    if (e.event.action === undefined || domains.scopeOf(e.host?.name ?? '') === (e.host?.name ?? '')) continue
    const o = observe(e)
    if (o !== undefined) now.push(o)
  }
  return now
}

/** Derivation order: time, then source and offset. Also of wipes (anything with ts and seq). */
export function compareObservations (a: Pick<LeaseObservation, 'ts' | 'seq'>, b: Pick<LeaseObservation, 'ts' | 'seq'>): number {
  return a.ts - b.ts || (a.seq < b.seq ? -1 : a.seq > b.seq ? 1 : 0)
}

/**
 * The time span of a batch per scope (host.name, '' when unknown): what was collected. Lines
 * that matched no pattern say nothing about leases (a log read with the wrong pattern is all
 * unmatched, stamped with the time it was read): they widen no span.
 */
export function coverageSpans (events: readonly KeaEvent[], domains: LeaseDomains = NO_DOMAINS): Map<string, { first: number, last: number }> {
  const spans = new Map<string, { first: number, last: number }>()
  // A batch is mostly of one scope: its span is looked up when the scope changes.
  let scope: string | undefined
  let s: { first: number, last: number } | undefined
  for (const e of events) {
    if (e.kea.parse.status === 'unmatched') continue
    const ms = isoMillis(e['@timestamp'])
    if (Number.isNaN(ms)) continue
    // A lease domain's servers: one span (their leases have one history).
    const name = domains.scopeOf(e.host?.name ?? '')
    if (name !== scope) { scope = name; s = spans.get(name) }
    if (s === undefined) {
      s = { first: ms, last: ms }
      spans.set(name, s)
    } else if (ms < s.first) {
      s.first = ms
    } else if (ms > s.last) {
      s.last = ms
    }
  }
  return spans
}
