import type { estypes } from '@elastic/elasticsearch'
import type { SearchEngine } from './engine.js'
import { containingPrefixLos, parseAddressOrPrefix } from '../../leases/address.js'
import { deriveIntervals, resumable } from '../../leases/derive.js'
import { compareObservations, observeAllEither, sequenceOf } from '../../leases/observe.js'
import { NO_DOMAINS, type LeaseDomains } from '../../leases/domains.js'
import { firstWipeWithin, MAX_WIPES, observeWipe, typesOf, WIPE_ACTION, wipeObservation, WipeRegistry, type LeaseWipe, type SubnetMap } from '../../leases/wipes.js'
import { clientMatchers } from '../../leases/query.js'
import { MAX_INTERVALS, type CollectionGap, type HistoryQuery, type LeaseInterval, type LeaseObservation, type LeaseStore } from '../../leases/types.js'
import type { KeaEvent } from '../../parse/event.js'

type Q = estypes.QueryDslQueryContainer

export function leaseIndices (namespace: string): { intervals: string, obs: string, coverage: string } {
  return { intervals: `keatrail-leases-${namespace}`, obs: `keatrail-lease-obs-${namespace}`, coverage: `keatrail-coverage-${namespace}` }
}

/**
 * Deletes the documents matching `query` in `index` (a pattern too), returning how many: search
 * and bulk delete, page after page, since a cluster without the reindex module (the test
 * cluster) has no _delete_by_query. Bounded: a page of 10,000 per round, at most 100,000 rounds.
 */
export async function deleteMatching (client: SearchEngine, index: string, query: Q): Promise<number> {
  let deleted = 0
  for (let round = 0; round < 100_000; round++) {
    await client.indices.refresh({ index, ignore_unavailable: true, allow_no_indices: true })
    const res = await client.search({ index, ignore_unavailable: true, allow_no_indices: true, size: 10_000, _source: false, query })
    const hits = res.hits.hits
    if (hits.length === 0) break
    const r = await client.bulk({ operations: hits.map((h) => ({ delete: { _index: h._index, _id: h._id } })), refresh: true })
    for (const item of r.items) {
      if (item.delete?.status === 200) deleted++
      else if (item.delete?.status !== 404) throw new Error(`delete failed: ${item.delete?.status ?? '?'} ${item.delete?.error?.reason ?? ''}`)
    }
  }
  return deleted
}

/** `last`: on a key's latest interval, the newest observation derived into the key. */
function intervalDoc (iv: LeaseInterval, last?: LeaseObservation): Record<string, unknown> {
  const first = iv.evidence[0]
  const seq = first === undefined ? '' : sequenceOf(first)
  return {
    pos_ts: iv.start ?? iv.end ?? 0,
    pos_seq: seq,
    last_ts: last?.ts ?? null,
    last_seq: last?.seq ?? null,
    '@timestamp': iv.start ?? iv.end ?? 0,
    id: iv.id,
    key: iv.key,
    origin: iv.origin,
    scope: iv.scope,
    type: iv.type,
    lease: iv.lease,
    lo: iv.lo,
    hi: iv.hi,
    start: iv.start,
    start_seq: iv.start === null || first === undefined ? null : sequenceOf(first),
    end: iv.end,
    end_reason: iv.end_reason,
    certainty: iv.certainty,
    hwaddr: iv.hwaddr ?? null,
    mac: iv.hwaddr?.toUpperCase().replaceAll(':', '-') ?? null,
    client_id: iv.client_id ?? null,
    duid: iv.duid ?? null,
    duid_ll: iv.duid_ll ?? null,
    iaid: iv.iaid ?? null,
    hostname: iv.hostname?.toLowerCase() ?? null,
    subnet_id: iv.subnet_id ?? null,
    lifetime: iv.lifetime ?? null,
    extensions: iv.extensions,
    doc: iv
  }
}

interface IntervalHit { _id?: string | null, _source?: { doc: LeaseInterval, start?: number, start_seq?: string, last_ts?: number | null, last_seq?: string | null } }

/** A key's latest derived interval and the newest observation derived into the key. */
type Latest = Pick<NonNullable<IntervalHit['_source']>, 'doc' | 'last_ts' | 'last_seq'>

/** What `observe` reads of an event: re-derivation fetches no more of each document. */
export const OBSERVED_FIELDS = ['@timestamp', 'event.id', 'event.action', 'event.dataset', 'host.name', 'client.ip', 'kea.lease', 'kea.subnet_id', 'kea.hwaddr', 'kea.client_id', 'kea.duid', 'kea.iaid', 'kea.hostname']

/** Keys whose latest interval is remembered (about 1 KiB each). */
const LATEST_CACHE_KEYS = 100_000

/**
 * Lease history in Elasticsearch, derived by the same code as the SQLite store. The events are
 * the observations: each lease-shaping event document carries its key (`kea.lease.key`), so a
 * batch adds no document per observation, only the intervals it changed. In-order batches
 * extend each key's latest interval; keys with late or replayed observations are re-derived from
 * their last interval before the earliest one, reading the observations back from the events
 * (and from the observation index earlier versions wrote, one document per observation), stale
 * intervals deleted and the rest indexed by their deterministic id.
 */
export class EsLeases implements LeaseStore {
  private readonly idx: ReturnType<typeof leaseIndices>
  /** Lease application runs one batch at a time (the event bulks may overlap). */
  private applying: Promise<void> = Promise.resolve()
  /**
   * The latest interval of recently derived keys as this process wrote it (null: the key has
   * none), so that in-order batches need no search. Only this process derives these keys (one
   * keatrail per Kea server's logs), and any failure clears it.
   */
  private readonly latest = new Map<string, Latest | null>()
  /** Indices written since their last refresh: refreshed before derivation reads them. */
  private readonly unrefreshed = new Set<string>()
  /** The wipes in the stored events (src/leases/wipes.ts), read at the first derivation. */
  private wipes: WipeRegistry | undefined
  /** Wipes not applied since this process started: more than MAX_WIPES (each batch of them logged by the service). */
  wipesIgnored = 0
  /** The most wipes kept (MAX_WIPES; tests set fewer). */
  wipeLimit = MAX_WIPES
  private wipesIgnoredListener: ((scope: string, n: number, from: number, to: number) => void) | undefined
  /** Called for the wipes of one server a batch could not apply (MAX_WIPES). */
  set onWipesIgnored (fn: (scope: string, n: number, from: number, to: number) => void) { this.wipesIgnoredListener = fn }
  private subnetMap: SubnetMap | undefined
  /** The lease domains (`leases.domains`): whose leases have one history (ElasticsearchStore.domains sets it). */
  domains: LeaseDomains = NO_DOMAINS
  /** The configured subnets (`leases.subnets`): which leases of unknown subnet a wipe ends. */
  set subnets (map: SubnetMap) { this.subnetMap = map; this.wipes = undefined }

  /**
   * `events`: the index pattern of this namespace's event data streams. `refreshEachWrite`: make
   * every write searchable at once (tests); else within refresh_interval.
   */
  constructor (private readonly client: SearchEngine, namespace: string, private readonly events: string, private readonly refreshEachWrite = false) {
    this.idx = leaseIndices(namespace)
  }

  private async bulk (operations: unknown[]): Promise<void> {
    if (operations.length === 0) return
    // Marked before sending: a request that fails half-way may still have written some.
    if (!this.refreshEachWrite) for (let i = 0; i < operations.length; i++) this.markWritten(operations[i])
    const res = await this.client.bulk({ operations, refresh: this.refreshEachWrite }, { maxRetries: 0 })
    if (res.errors) {
      const bad = res.items.map((i) => Object.values(i)[0]).find((r) => r?.error !== undefined && r.status !== 404)
      if (bad !== undefined) throw new Error(`lease index update failed: ${bad.status} ${bad.error?.type ?? ''}: ${bad.error?.reason ?? ''}`)
    }
  }

  private markWritten (op: unknown): void {
    const action = op as { index?: { _index?: string }, delete?: { _index?: string } }
    const index = action.index?._index ?? action.delete?._index
    if (index !== undefined) this.unrefreshed.add(index)
  }

  /** Derivation reads what earlier batches wrote: refresh the indices it reads if they changed. */
  private async visible (...indices: string[]): Promise<void> {
    const stale = indices.filter((i) => this.unrefreshed.has(i))
    if (stale.length === 0) return
    for (const i of stale) this.unrefreshed.delete(i)
    try {
      await this.client.indices.refresh({ index: stale, ignore_unavailable: true, allow_no_indices: true })
    } catch (err) {
      for (const i of stale) this.unrefreshed.add(i)
      throw err
    }
  }

  private remember (key: string, value: Latest | null): void {
    this.latest.delete(key)
    this.latest.set(key, value)
    if (this.latest.size > LATEST_CACHE_KEYS) {
      for (const k of this.latest.keys()) { this.latest.delete(k); if (this.latest.size <= LATEST_CACHE_KEYS * 0.9) break }
    }
  }

  /**
   * A place in the order batches are applied, taken when a batch's write starts: `ready` settles
   * once every earlier place is released, `release` lets the next one go. Batches are applied one
   * at a time (two touching the same key at once would both extend the same latest interval, and
   * one update would be lost) and in the order they were written: in the order their event
   * bulks finished, a batch overtaken by the next one found all its observations late and
   * re-derived every key it touched.
   */
  reserve (): { ready: Promise<void>, release: () => void } {
    const ready = this.applying
    let release = (): void => {}
    this.applying = new Promise<void>((resolve) => { release = resolve })
    return { ready, release }
  }

  /** Stores observations and re-derives their keys, after the batches applied before it. */
  async apply (obs: readonly LeaseObservation[], spans: ReadonlyMap<string, { first: number, last: number }>, withdrawn: readonly LeaseObservation[] = [], wipes: readonly LeaseWipe[] = []): Promise<void> {
    const turn = this.reserve()
    try {
      await turn.ready
      await this.applyReserved(obs, spans, withdrawn, wipes)
    } finally {
      turn.release()
    }
  }

  /** `apply` for a caller holding the current place (see reserve). */
  async applyReserved (obs: readonly LeaseObservation[], spans: ReadonlyMap<string, { first: number, last: number }>, withdrawn: readonly LeaseObservation[] = [], wipes: readonly LeaseWipe[] = []): Promise<void> {
    try {
      await this.applyNow(obs, spans, withdrawn, wipes)
    } catch (err) {
      // What was written before the failure is unknown: ask the index again next time.
      this.latest.clear()
      this.wipes = undefined
      throw err
    }
  }

  /** The wipes known: those in the stored events (read once), and those applied since. */
  private async registry (): Promise<WipeRegistry> {
    if (this.wipes === undefined) {
      const reg = new WipeRegistry(this.subnetMap, this.wipeLimit)
      await this.visible(this.events)
      for (let after: estypes.SortResults | undefined, round = 0; round < 1000; round++) {
        const res = await this.client.search<KeaEvent>({
          index: this.events, ignore_unavailable: true, allow_no_indices: true, size: 10_000,
          query: { term: { 'event.action': WIPE_ACTION } },
          sort: [{ '@timestamp': 'asc' }, { 'event.id': 'asc' }] as estypes.Sort,
          _source: ['@timestamp', 'event.id', 'event.action', 'event.dataset', 'host.name', 'kea.subnet_id'],
          ...(after === undefined ? {} : { search_after: after })
        })
        const page: LeaseWipe[] = []
        for (const h of res.hits.hits) { const w = h._source === undefined ? undefined : observeWipe(h._source, this.domains); if (w !== undefined) page.push(w) }
        reg.addAll(page)
        // At most wipeLimit (the earliest by time): after a flood, reading them all could run out of memory.
        if (res.hits.hits.length < 10_000 || reg.size >= this.wipeLimit) break
        after = res.hits.hits[res.hits.hits.length - 1]?.sort
      }
      this.wipes = reg
    }
    return this.wipes
  }

  /**
   * A batch's wipes of one server and family (in order) as observations of every key of theirs
   * with an interval open at one of them: each such key meets the first, and its derivation
   * merges the others that can change it (WipeRegistry.merge); keys derived later meet them
   * there. They join the batch's observations: a key whose history ends before the wipe
   * continues it (extend), the others are re-derived from before it. One search per batch, not
   * per wipe: a flood of wipe lines must not cost a search of every open lease each.
   */
  private async openAtWipe (group: readonly LeaseWipe[]): Promise<LeaseObservation[]> {
    const w = group[0] as LeaseWipe
    const last = group[group.length - 1] as LeaseWipe
    await this.visible(this.idx.intervals)
    const first = new Map<string, { k: LeaseInterval, w: LeaseWipe }>()
    for (let after: estypes.SortResults | undefined, round = 0; round < 1000; round++) {
      const res = await this.client.search<NonNullable<IntervalHit['_source']>>({
        index: this.idx.intervals, ignore_unavailable: true, allow_no_indices: true, size: 10_000,
        query: {
          bool: {
            filter: [
              { term: { origin: 'log' } }, { term: { scope: w.scope } }, { terms: { type: typesOf(w.family) } },
              { bool: { should: [{ range: { start: { lte: last.ts } } }, { bool: { must_not: [{ exists: { field: 'start' } }] } }], minimum_should_match: 1 } },
              // gte: an end in the wipe's millisecond may still follow it (source and offset decide).
              { bool: { should: [{ range: { end: { gte: w.ts } } }, { bool: { must_not: [{ exists: { field: 'end' } }] } }], minimum_should_match: 1 } }
              // No filter by subnet: an interval's stored subnet is its last one, not the one it
              // had at the wipe; the fold decides.
            ]
          }
        },
        sort: [{ key: 'asc' }, { pos_ts: 'asc' }, { pos_seq: 'asc' }] as estypes.Sort,
        _source: ['doc'],
        ...(after === undefined ? {} : { search_after: after })
      })
      for (const h of res.hits.hits) {
        const iv = h._source?.doc
        if (iv === undefined) continue
        // The first of the batch's wipes inside this interval (none: it is not the batch's business).
        const at = firstWipeWithin(group, iv.start, iv.end)
        const had = first.get(iv.key)
        if (at !== undefined && (had === undefined || compareObservations(at, had.w) < 0)) first.set(iv.key, { k: iv, w: at })
      }
      if (res.hits.hits.length < 10_000) break
      after = res.hits.hits[res.hits.hits.length - 1]?.sort
    }
    const out: LeaseObservation[] = []
    for (const { k, w: at } of first.values()) out.push(wipeObservation(at, k, this.wipes?.inSubnet(k, at)))
    return out
  }

  /** `withdrawn`: observations of events replaced or deleted; their keys are re-derived from before them. `wipes`: the batch's. */
  private async applyNow (obs: readonly LeaseObservation[], spans: ReadonlyMap<string, { first: number, last: number }>, withdrawn: readonly LeaseObservation[] = [], wipes: readonly LeaseWipe[] = []): Promise<void> {
    // The batch's events were just indexed: a re-derivation must refresh them before reading.
    if (!this.refreshEachWrite) this.unrefreshed.add(this.events)
    const reg = await this.registry()
    // Also a wipe seen before (a batch applied again): where its keys have it already, nothing changes.
    let wiped: LeaseObservation[] = []
    const { groups, ignored } = reg.admit(wipes)
    for (const g of groups) wiped = wiped.concat(await this.openAtWipe(g))
    if (wiped.length > 0) obs = obs.concat(wiped)
    const ops: unknown[] = []
    for (const [scope, s] of spans) ops.push({ index: { _index: this.idx.coverage, _id: `${scope}|${s.first}|${s.last}` } }, { scope, first: s.first, last: s.last })
    // Unlike SQLite this is not one transaction: a replayed batch re-derives its keys too, so a
    // crash between the event write and this point is repaired by the replay.
    const byKey = new Map<string, LeaseObservation[]>()
    for (const o of obs) {
      const list = byKey.get(o.key)
      if (list === undefined) byKey.set(o.key, [o])
      else list.push(o)
    }
    for (const list of byKey.values()) list.sort(compareObservations)
    const keys = [...byKey.keys()]
    const late: LeaseObservation[] = []
    const next = new Map<string, Latest | null>()
    for (let i = 0; i < keys.length; i += 5000) {
      const chunk = keys.slice(i, i + 5000)
      late.push(...await this.extend(chunk, byKey, ops, next))
    }
    // Observations and the intervals extended from them in one request.
    await this.bulk(ops)
    for (const [key, value] of next) this.remember(key, value)
    // One window per key, from the earliest change: a withdrawn observation's key too.
    const earliest = new Map<string, LeaseObservation>()
    for (const o of [...late, ...withdrawn]) {
      const e = earliest.get(o.key)
      if (e === undefined || compareObservations(o, e) < 0) earliest.set(o.key, o)
    }
    const windows = [...earliest.values()]
    for (const o of windows) this.latest.delete(o.key)
    for (let i = 0; i < windows.length; i += 200) await this.rederive(windows.slice(i, i + 200))
    // Past MAX_WIPES: not applied, recorded as collection gaps (an id of their own: a batch
    // applied again writes the same one), counted and reported once the batch is applied.
    for (const [scope, g] of ignored) {
      const reason = `${g.n} lease wipe(s) not applied: more than ${this.wipeLimit} wipes`
      await this.client.index({ index: this.idx.coverage, id: `${scope}|wipes|${g.from}|${g.to}`, document: { kind: 'gap', scope, first: g.from, last: g.to, reason }, refresh: true })
      this.wipesIgnored += g.n
      try { this.wipesIgnoredListener?.(scope, g.n, g.from, g.to) } catch { /* the count stands */ }
    }
  }

  /**
   * The usual case, logs read in order: each key's latest interval (which records the newest
   * observation derived into the key) comes from the cache or one search; keys whose new
   * observations all come after it continue that interval without reading observations back.
   * Adds the index operations to `ops` and the keys' new latest intervals to `next` (both
   * applied by the caller once written). Returns the earliest new observation of every other
   * key (late or replayed events), for rederive.
   */
  private async extend (keys: string[], byKey: Map<string, LeaseObservation[]>, ops: unknown[], next: Map<string, Latest | null>): Promise<LeaseObservation[]> {
    const latest = new Map<string, Latest>()
    const unknown: string[] = []
    for (const key of keys) {
      const cached = this.latest.get(key)
      if (cached === undefined) unknown.push(key)
      else if (cached !== null) latest.set(key, cached)
    }
    if (unknown.length > 0) {
      await this.visible(this.idx.intervals)
      const res = await this.client.search<NonNullable<IntervalHit['_source']>>({
        index: this.idx.intervals, ignore_unavailable: true, allow_no_indices: true, size: unknown.length,
        query: { bool: { filter: [{ terms: { key: unknown } }, { term: { origin: 'log' } }] } },
        collapse: { field: 'key' },
        sort: [{ pos_ts: 'desc' }, { pos_seq: 'desc' }] as estypes.Sort,
        _source: ['doc', 'last_ts', 'last_seq']
      })
      for (const h of res.hits.hits) if (h._source !== undefined) latest.set(h._source.doc.key, h._source)
    }
    const late: LeaseObservation[] = []
    for (const key of keys) {
      const tail = byKey.get(key) as LeaseObservation[]
      const first = tail[0] as LeaseObservation
      const prev = latest.get(key)
      if (prev !== undefined && (prev.last_ts === undefined || prev.last_ts === null ||
        first.ts < prev.last_ts || (first.ts === prev.last_ts && first.seq <= (prev.last_seq ?? '')))) {
        late.push(first)
        continue
      }
      const lastIv = prev?.doc
      // Wipes after where the key stood (those before it were folded in already).
      const merged = this.wipes?.merge(tail, prev === undefined ? undefined : { ts: prev.last_ts ?? -Infinity, seq: prev.last_seq ?? '' }, lastIv) ?? tail
      const fresh = lastIv !== undefined && resumable(lastIv) ? deriveIntervals(merged, undefined, lastIv) : deriveIntervals(merged, lastIv)
      const last = merged[merged.length - 1] as LeaseObservation
      fresh.forEach((iv, i) => {
        ops.push({ index: { _index: this.idx.intervals, _id: iv.id } }, intervalDoc(iv, i === fresh.length - 1 ? last : undefined))
      })
      const newest = fresh[fresh.length - 1]
      next.set(key, newest !== undefined ? { doc: newest, last_ts: last.ts, last_seq: last.seq } : prev ?? null)
    }
    return late
  }

  private async msearch<T> (index: string, bodies: estypes.SearchRequest[]): Promise<Array<estypes.SearchHit<T>[]>> {
    if (bodies.length === 0) return []
    const searches: estypes.MsearchRequestItem[] = []
    for (const b of bodies) searches.push({ index, ignore_unavailable: true, allow_no_indices: true }, b as estypes.MsearchMultisearchBody)
    const res = await this.client.msearch<T>({ searches })
    return res.responses.map((r) => {
      if ('error' in r) throw new Error(`lease search failed: ${r.error.type}: ${r.error.reason ?? ''}`)
      return r.hits.hits
    })
  }

  /**
   * Each window's observations from its anchor on, in derivation order: from the events that
   * carry its key, and from the legacy observation index; the same event in both counts once.
   */
  private async observationsFrom (windows: ReadonlyArray<{ key: string, anchor?: { start: number, seq: string } }>): Promise<LeaseObservation[][]> {
    const [eventHits, legacyHits] = await Promise.all([
      this.msearch<KeaEvent>(this.events, windows.map((w) => ({
        size: 10_000,
        query: { bool: { filter: [{ term: { 'kea.lease.key': w.key } }, ...(w.anchor === undefined ? [] : [{ range: { '@timestamp': { gte: w.anchor.start, format: 'epoch_millis' } } }])] } },
        sort: [{ '@timestamp': 'asc' }, { 'event.id': 'asc' }] as estypes.Sort,
        _source: OBSERVED_FIELDS
      }))),
      this.msearch<{ doc: LeaseObservation }>(this.idx.obs, windows.map((w) => ({
        size: 10_000,
        query: { bool: { filter: [{ term: { key: w.key } }, ...(w.anchor === undefined ? [] : [{ range: { ts: { gte: w.anchor.start } } }])] } },
        sort: [{ ts: 'asc' }, { seq: 'asc' }] as estypes.Sort,
        _source: ['doc']
      })))
    ])
    return windows.map((w, i) => {
      const byEvent = new Map<string, LeaseObservation>()
      for (const h of legacyHits[i] ?? []) { const o = (h._source as { doc: LeaseObservation }).doc; byEvent.set(o.event_id, o) }
      // Under today's domains, or a domain server's own name (history derived before the domain).
      for (const h of eventHits[i] ?? []) for (const o of observeAllEither([h._source as KeaEvent], this.domains)) if (o.key === w.key) byEvent.set(o.event_id, o)
      const a = w.anchor
      return [...byEvent.values()].filter((o) => a === undefined || o.ts > a.start || (o.ts === a.start && o.seq >= a.seq)).sort(compareObservations)
    })
  }

  private async rederive (firsts: LeaseObservation[]): Promise<void> {
    await this.visible(this.idx.intervals, this.idx.obs, this.events)
    const anchors = await this.msearch<IntervalHit['_source']>(this.idx.intervals, firsts.map((o) => ({
      size: 2,
      query: { bool: { filter: [{ term: { key: o.key } }, { term: { origin: 'log' } }, { range: { start: { lt: o.ts } } }] } },
      sort: [{ start: 'desc' }, { start_seq: 'desc' }] as estypes.Sort,
      _source: ['doc', 'start', 'start_seq']
    })))
    const windows = firsts.map((o, i) => {
      const hits = anchors[i] ?? []
      const a = hits[0]?._source
      const b = hits[1]?._source
      return { key: o.key, anchor: a === undefined ? undefined : { start: a.start as number, seq: a.start_seq as string }, before: b?.doc }
    })
    const staleQ = (w: typeof windows[number]): Q => ({
      bool: {
        filter: [{ term: { key: w.key } }, { term: { origin: 'log' } }],
        ...(w.anchor === undefined
          ? {}
          : {
              should: [
                { range: { start: { gte: w.anchor.start } } },
                { bool: { must_not: [{ exists: { field: 'start' } }], should: [{ range: { end: { gte: w.anchor.start } } }, { bool: { must_not: [{ exists: { field: 'end' } }] } }], minimum_should_match: 1 } }
              ],
              minimum_should_match: 1
            })
      }
    })
    const [tails, staleHits] = await Promise.all([
      this.observationsFrom(windows),
      this.msearch<unknown>(this.idx.intervals, windows.map((w) => ({ size: 10_000, query: staleQ(w), _source: false })))
    ])
    const ops: unknown[] = []
    windows.forEach((w, i) => {
      const tail = this.wipes?.merge(tails[i] ?? [], undefined, w.before) ?? tails[i] ?? []
      const fresh = deriveIntervals(tail, w.before)
      const keep = new Set(fresh.map((iv) => iv.id))
      for (const h of staleHits[i] ?? []) if (typeof h._id === 'string' && !keep.has(h._id)) ops.push({ delete: { _index: this.idx.intervals, _id: h._id } })
      fresh.forEach((iv, j) => { ops.push({ index: { _index: this.idx.intervals, _id: iv.id } }, intervalDoc(iv, j === fresh.length - 1 ? tail[tail.length - 1] : undefined)) })
    })
    await this.bulk(ops)
  }

  private async find (query: Q, sort: estypes.Sort, size: number): Promise<LeaseInterval[]> {
    // Read-your-writes for lease questions: at most one refresh per batch written meanwhile.
    await this.visible(this.idx.intervals)
    const res = await this.client.search<{ doc: LeaseInterval }>({
      index: this.idx.intervals, ignore_unavailable: true, allow_no_indices: true, size, query, sort, _source: ['doc']
    })
    return res.hits.hits.map((h) => (h._source as { doc: LeaseInterval }).doc)
  }

  private rangeFilter (range: { lo: string, hi: string }): Q[] {
    return [{ terms: { lo: containingPrefixLos(range.lo) } }, { range: { hi: { gte: range.lo } } }]
  }

  async intervalsAt (range: { lo: string, hi: string }, time: number, scope?: string): Promise<LeaseInterval[]> {
    return await this.find({
      bool: {
        filter: [
          ...this.rangeFilter(range),
          ...(scope === undefined ? [] : [{ term: { scope } }]),
          { bool: { should: [{ range: { start: { lte: time } } }, { bool: { must_not: [{ exists: { field: 'start' } }] } }], minimum_should_match: 1 } },
          { bool: { should: [{ range: { end: { gt: time } } }, { bool: { must_not: [{ exists: { field: 'end' } }] } }], minimum_should_match: 1 } }
        ]
      }
    }, [{ start: { order: 'asc', missing: '_first' } }, { id: 'asc' }] as estypes.Sort, MAX_INTERVALS + 1)
  }

  async neighbours (range: { lo: string, hi: string }, time: number, scope?: string): Promise<{ before?: LeaseInterval, after?: LeaseInterval }> {
    const base = [...this.rangeFilter(range), ...(scope === undefined ? [] : [{ term: { scope } }])]
    const [before] = await this.find({ bool: { filter: [...base, { range: { end: { lte: time } } }] } }, [{ end: 'desc' }, { id: 'asc' }] as estypes.Sort, 1)
    const [after] = await this.find({ bool: { filter: [...base, { range: { start: { gt: time } } }] } }, [{ start: 'asc' }, { id: 'asc' }] as estypes.Sort, 1)
    return { ...(before === undefined ? {} : { before }), ...(after === undefined ? {} : { after }) }
  }

  async intervals (q: HistoryQuery): Promise<LeaseInterval[]> {
    const filter: Q[] = []
    if (q.address !== undefined || q.prefix !== undefined) {
      const r = parseAddressOrPrefix((q.address ?? q.prefix) as string)
      filter.push({ term: { lo: r.lo } }, { term: { hi: r.hi } })
    } else {
      filter.push({ bool: { should: clientMatchers(q).map((m) => ({ terms: { [m.column]: m.values } })), minimum_should_match: 1 } })
    }
    if (q.from !== undefined) filter.push({ bool: { should: [{ range: { end: { gt: q.from } } }, { bool: { must_not: [{ exists: { field: 'end' } }] } }], minimum_should_match: 1 } })
    if (q.to !== undefined) filter.push({ bool: { should: [{ range: { start: { lt: q.to } } }, { bool: { must_not: [{ exists: { field: 'start' } }] } }], minimum_should_match: 1 } })
    if (q.scope !== undefined) filter.push({ term: { scope: q.scope } })
    // Same order as SQLite: coalesce(start, end), then id.
    const ivs = await this.find({ bool: { filter } }, [{ '@timestamp': 'asc' }, { id: 'asc' }] as estypes.Sort, Math.min(q.limit ?? 10_000, 10_000))
    return ivs
  }

  async coverage (scope?: string): Promise<{ from: number, to: number } | undefined> {
    await this.visible(this.idx.coverage)
    const res = await this.client.search({
      index: this.idx.coverage, ignore_unavailable: true, allow_no_indices: true, size: 0,
      query: { bool: { must_not: [{ term: { kind: 'gap' } }], ...(scope === undefined ? {} : { filter: [{ term: { scope } }] }) } },
      aggs: { f: { min: { field: 'first' } }, l: { max: { field: 'last' } } }
    })
    const f = (res.aggregations?.f as estypes.AggregationsMinAggregate | undefined)?.value
    const l = (res.aggregations?.l as estypes.AggregationsMaxAggregate | undefined)?.value
    if (f === null || f === undefined || l === null || l === undefined) return undefined
    return { from: f, to: l }
  }

  /**
   * Events replaced or deleted: their documents in the observation index of earlier versions
   * (_id = event id) go too, or re-derivation would read them back.
   */
  async forgetLegacy (eventIds: readonly string[]): Promise<void> {
    if (eventIds.length === 0 || !await this.client.indices.exists({ index: this.idx.obs })) return
    for (let i = 0; i < eventIds.length; i += 5000) {
      await this.bulk(eventIds.slice(i, i + 5000).map((id) => ({ delete: { _index: this.idx.obs, _id: id } })))
    }
  }

  /**
   * Events of `scope` were deleted: its coverage shrinks to `left` (the span of the parsed events
   * left; none: no coverage), never widening what was there. Coverage is one document per batch
   * written; they are replaced by one.
   */
  async shrinkCoverage (scope: string, left: { first: number, last: number } | undefined): Promise<{ from: number, to: number } | undefined> {
    const old = await this.coverage(scope)
    await deleteMatching(this.client, this.idx.coverage, { bool: { filter: [{ term: { scope } }], must_not: [{ term: { kind: 'gap' } }] } })
    if (old === undefined || left === undefined) return undefined
    const c = { from: Math.max(old.from, left.first), to: Math.min(old.to, left.last) }
    if (c.to < c.from) return undefined
    await this.client.index({ index: this.idx.coverage, id: `${scope}|${c.from}|${c.to}`, document: { scope, first: c.from, last: c.to }, refresh: true })
    return c
  }

  async recordGap (g: CollectionGap): Promise<void> {
    await this.client.index({ index: this.idx.coverage, document: { kind: 'gap', scope: g.scope, first: g.from, last: g.to, reason: g.reason }, refresh: true })
  }

  async gapsIn (scope: string, from: number, to: number): Promise<CollectionGap[]> {
    await this.visible(this.idx.coverage)
    const res = await this.client.search<{ scope: string, first: number, last: number, reason: string }>({
      index: this.idx.coverage, ignore_unavailable: true, allow_no_indices: true, size: 1000,
      query: { bool: { filter: [{ term: { kind: 'gap' } }, { range: { first: { lt: to } } }, { range: { last: { gte: from } } }, ...(scope === '*' ? [] : [{ terms: { scope: [scope, '*'] } }])] } },
      sort: [{ first: 'asc' }]
    })
    return res.hits.hits.map((h) => { const d = h._source as { scope: string, first: number, last: number, reason: string }; return { scope: d.scope, from: d.first, to: d.last, reason: d.reason } })
  }

  async stats (): Promise<{ intervals: number, observations: number }> {
    await this.visible(this.idx.intervals, this.events)
    const n = async (index: string, query?: Q): Promise<number> => (await this.client.count({ index, ignore_unavailable: true, allow_no_indices: true, ...(query === undefined ? {} : { query }) })).count
    return {
      intervals: await n(this.idx.intervals),
      observations: await n(this.events, { exists: { field: 'kea.lease.key' } }) + await n(this.idx.obs)
    }
  }

  async scopes (): Promise<string[]> {
    const res = await this.client.search({
      index: this.idx.coverage, ignore_unavailable: true, allow_no_indices: true, size: 0,
      query: { bool: { must_not: [{ term: { kind: 'gap' } }] } },
      aggs: { s: { terms: { field: 'scope', size: 1000, order: { _key: 'asc' } } } }
    })
    const buckets = (res.aggregations?.s as estypes.AggregationsStringTermsAggregate | undefined)?.buckets
    return (Array.isArray(buckets) ? buckets : []).map((b) => String(b.key))
  }

  async writeKeaState (intervals: LeaseInterval[]): Promise<number> {
    if (intervals.length === 0) return 0
    const ops: unknown[] = []
    for (const iv of intervals) ops.push({ create: { _index: this.idx.intervals, _id: iv.id } }, intervalDoc(iv))
    const res = await this.client.bulk({ operations: ops, refresh: true })
    let created = 0
    for (const item of res.items) {
      const r = item.create
      if (r?.status === 201) created++
      else if (r?.status !== 409) throw new Error(`lease index update failed: ${r?.status ?? '?'} ${r?.error?.reason ?? ''}`)
    }
    return created
  }
}

