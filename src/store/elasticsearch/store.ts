import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { retry } from '../../backoff.js'
import type { estypes } from '@elastic/elasticsearch'
import { CursorInvalidError, QueryBucketsError, QueryTimeoutError, StoreDistributionError, StoreReadError, withCause } from '../../errors.js'
import type { KeaEvent } from '../../parse/event.js'
import { packageRoot } from '../../paths.js'
import type { DeadLetterStore } from '../deadletter.js'
import {
  decodeCursor, encodeCursor, FILTER_FIELDS, type DeleteResult, idsToGet, inIdOrder, MAX_BUCKETS, MAX_INTERVAL_MS, MAX_PAGE_SIZE, parsesBetter, TOTAL_BOUND, withinBudget,
  type Bucket, type ChainHead, type ChainProof, type ChainReport, type ChainVerifyOptions, type EventQuery, type FilterField, type SearchPage, type SearchRequest, type Store, type TermCount, type WriteOptions, type WriteResult
} from '../types.js'
import { elasticsearchStoreConfigSchema, type ElasticsearchStoreConfig } from './config.js'
import { validateConfig } from '../../config/validate.js'
import { coverageSpans, observe, observeAllEither } from '../../leases/observe.js'
import { wipesOf } from '../../leases/wipes.js'
import { byDomain, NO_DOMAINS, type LeaseDomains } from '../../leases/domains.js'
import type { LeaseObservation } from '../../leases/types.js'
import { deleteMatching, EsLeases, leaseIndices, OBSERVED_FIELDS } from './leases.js'
import { EsSnapshots, snapshotIndex } from './snapshots.js'
import { toElasticsearch } from '../../query/translate.js'
import { BodyPool, bulkCreate } from './bulk.js'
import { chainIndex, EsChain } from './chain.js'
import { connectEngine, type Distribution, type SearchEngine } from './engine.js'

const DATASETS = new Set(['kea.dhcp4', 'kea.dhcp6', 'kea.other'])
/** Templates keatrail installs, in dependency order (components before the index templates using them). */
export const TEMPLATE_FILES = [
  ['component', 'keatrail-ecs@mappings', 'component-ecs.json'],
  ['component', 'keatrail-kea@mappings', 'component-kea.json'],
  ['index', 'keatrail-logs-kea', 'index-template-events.json'],
  ['index', 'keatrail-leases', 'index-template-leases.json'],
  ['index', 'keatrail-lease-obs', 'index-template-lease-obs.json'],
  ['index', 'keatrail-snapshots', 'index-template-snapshots.json'],
  ['index', 'keatrail-chain', 'index-template-chain.json']
] as const
/** The event data streams of one namespace: what a keatrail instance reads. */
export function eventsPattern (namespace: string): string {
  return `logs-kea.*-${namespace}`
}
const TIME_FORMAT = 'strict_date_optional_time_nanos'
/** Pages of 10,000 ids of unparsed events kept per source (see unparsedIds); beyond, every parsed event of the source is looked up. */
const UNPARSED_PAGES = 10

/**
 * An event as indexed. A lease-shaping event also carries its lease-history key
 * (`kea.lease.key`), so that re-derivation reads its observations back from the events instead
 * of a second document per event; it is removed again when events are read (`fromDoc`).
 */
type Doc = KeaEvent & { data_stream: { type: 'logs', dataset: string, namespace: string } }

/** The mapping of `kea.lease.key`, also put on event data streams created before it existed. */
const LEASE_KEY_MAPPING = { kea: { properties: { lease: { properties: { key: { type: 'keyword' } } } } } } as const

export interface ElasticsearchStoreOptions {
  deadLetters?: DeadLetterStore
  /** Called when a bulk request fails and will be retried (for logs and metrics). */
  onRetry?: (err: Error, attempt: number, waitMs: number) => void
  /** The engine the cluster runs (`store.type`); default elasticsearch. */
  distribution?: Distribution
}

/**
 * The scale-out store: one data stream per dataset (`logs-kea.dhcp4-<ns>` …), bulk `create`
 * with event.id as `_id` so a replay answers 409 (counted as already stored), 429 retried by
 * the helper, any other item failure dead-lettered with its reason.
 */
export class ElasticsearchStore implements Store {
  readonly kind = 'elasticsearch' as const
  /**
   * Batches of 1,000 for file sources, not 5,000: four queued batches of 5,000 events held the
   * heap near its 256 MiB cap and the collector ran often. `bench/e2e` (300,000 INFO lines,
   * alternating, three rounds): 38.6–39.4 CPU s per million events at 1,000 against 45.8–54.5 at
   * 5,000, peak RSS 169–173 against 252–264 MiB, the same events/s.
   */
  readonly batchEvents = 1000
  /** One reusable request body per bulk request in flight. */
  private readonly bodies: BodyPool
  readonly client: SearchEngine
  private readonly cfg: ReturnType<typeof elasticsearchStoreConfigSchema.parse>
  private readonly opts: ElasticsearchStoreOptions
  private readonly stop = new AbortController()
  private readonly pattern: string
  readonly leases: EsLeases
  readonly snapshots: EsSnapshots
  private readonly chainLog: EsChain
  readonly chain = {
    head: async (): Promise<ChainHead | undefined> => await this.chainLog.headLink(),
    verify: async (opts?: ChainVerifyOptions): Promise<ChainReport> => await this.chainLog.verify(opts),
    proofs: async (ids: readonly string[]): Promise<Array<ChainProof | undefined>> => await this.chainLog.proofs(ids)
  }
  private leaseDomains: LeaseDomains = NO_DOMAINS
  /** Lease domains (`leases.domains`): whose leases have one history. Set by the composition root before the first write. */
  set domains (d: LeaseDomains) { this.leaseDomains = d; this.leases.domains = d }
  /** Per kea.source_id: the ids of its events stored without parsing fully (see unparsedIds). */
  private readonly unparsed = new Map<string, Promise<Set<string> | 'all'>>()

  constructor (config: ElasticsearchStoreConfig, opts: ElasticsearchStoreOptions = {}) {
    this.cfg = validateConfig(elasticsearchStoreConfigSchema, config, 'store.elasticsearch')
    // A body ends one document past flushBytes; one grown far past it (a huge record) is not kept.
    this.bodies = new BodyPool(this.cfg.bulk.concurrency, 2 * this.cfg.bulk.flushBytes)
    this.opts = opts
    this.pattern = eventsPattern(this.cfg.namespace)
    const auth = this.cfg.apiKey !== undefined
      ? { apiKey: this.cfg.apiKey }
      : this.cfg.username !== undefined ? { username: this.cfg.username, password: this.cfg.password ?? '' } : undefined
    this.client = connectEngine(opts.distribution ?? 'elasticsearch', {
      nodes: [this.cfg.url, ...(this.cfg.nodes ?? [])],
      requestTimeoutMs: this.cfg.requestTimeoutMs,
      ...(auth === undefined ? {} : { auth }),
      ...(this.cfg.caFile === undefined ? {} : { ca: readFileSync(this.cfg.caFile) })
    })
    this.leases = new EsLeases(this.client, this.cfg.namespace, this.pattern, this.cfg.refresh)
    this.snapshots = new EsSnapshots(this.client, this.cfg.namespace)
    this.chainLog = new EsChain(this.client, chainIndex(this.cfg.namespace), this.pattern)
  }

  /**
   * Installs or updates the component and index templates from mappings/; returns the names of
   * those that changed. Each template carries the hash of its file in `_meta.keatrail_hash`:
   * Elasticsearch normalizes what it stores (numbers become strings, settings are flattened), so
   * comparing bodies would report changes that are not there.
   */
  async ensureTemplates (): Promise<string[]> {
    await this.client.verify()
    const dir = join(packageRoot(), 'mappings')
    const changed: string[] = []
    for (const [kind, name, file] of TEMPLATE_FILES) {
      const body = JSON.parse(readFileSync(join(dir, file), 'utf8')) as Record<string, unknown>
      const hash = createHash('sha256').update(JSON.stringify(body)).digest('hex').slice(0, 16)
      const meta = { ...(body._meta as Record<string, unknown> | undefined), keatrail_hash: hash }
      const stored = kind === 'component'
        ? (await this.client.cluster.getComponentTemplate({ name }, { ignore: [404] })).component_templates?.[0]?.component_template._meta
        : (await this.client.indices.getIndexTemplate({ name }, { ignore: [404] })).index_templates?.[0]?.index_template._meta
      if (stored?.keatrail_hash === hash) continue
      changed.push(name)
      if (kind === 'component') await this.client.cluster.putComponentTemplate({ name, ...body, _meta: meta } as unknown as estypes.ClusterPutComponentTemplateRequest)
      else await this.client.indices.putIndexTemplate({ name, ...body, _meta: meta } as unknown as estypes.IndicesPutIndexTemplateRequest)
    }
    // Index templates reach new backing indices only; lease re-derivation searches this field
    // in the existing ones too (adding a field is allowed on a live index, and a no-op once there).
    await this.client.indices.putMapping({ index: this.pattern, allow_no_indices: true, ignore_unavailable: true, properties: LEASE_KEY_MAPPING })
    // Lease history and snapshots live in one regular index each: with a replica wherever a
    // second node can hold it, or losing one node stops lease history (and so every write).
    // Indices made before the templates said so (no replica, none to expand) get it too; a
    // replica count an operator chose stays.
    const l = leaseIndices(this.cfg.namespace)
    const regular = [l.intervals, l.obs, l.coverage, snapshotIndex(this.cfg.namespace)]
    const settings = await this.client.indices.getSettings({ index: regular, allow_no_indices: true, ignore_unavailable: true })
    const bare = Object.entries(settings).filter(([, v]) => String(v.settings?.index?.number_of_replicas) === '0' && [undefined, 'false'].includes(v.settings?.index?.auto_expand_replicas as string | undefined)).map(([k]) => k)
    if (bare.length > 0) await this.client.indices.putSettings({ index: bare, settings: { 'index.auto_expand_replicas': '0-1' } })
    return changed
  }

  /**
   * The two NDJSON lines of an event's `create`: the action, and the document as toDoc makes it
   * (data_stream first; `kea.lease.key` set on the event for the one JSON.stringify, then taken
   * away again) — without copying the event object per write.
   */
  private bulkLines (e: KeaEvent, o: LeaseObservation | undefined): string {
    const dataset = DATASETS.has(e.event.dataset) ? e.event.dataset : 'kea.other'
    const head = `{"create":{"_index":"logs-${dataset}-${this.cfg.namespace}","_id":${JSON.stringify(e.event.id)}}}\n`
    const lease = e.kea.lease as (KeaEvent['kea']['lease'] & { key?: string }) | undefined
    if (o !== undefined && (lease === undefined || 'key' in lease)) return `${head}${JSON.stringify(this.toDoc(e, o))}\n`
    const ds = `{"data_stream":{"type":"logs","dataset":"${dataset}","namespace":"${this.cfg.namespace}"}`
    if (o === undefined || lease === undefined) {
      const doc = JSON.stringify(e)
      return `${head}${ds}${doc.length > 2 ? ',' : ''}${doc.slice(1)}\n`
    }
    lease.key = o.key
    try {
      return `${head}${ds},${JSON.stringify(e).slice(1)}\n`
    } finally {
      // The last property added: V8 takes it away by undoing the map transition (no slow mode).
      delete lease.key
    }
  }

  /** `o`: the event's lease observation, if it has one. */
  private toDoc (e: KeaEvent, o: LeaseObservation | undefined): Doc {
    const dataset = DATASETS.has(e.event.dataset) ? e.event.dataset : 'kea.other'
    const data_stream = { type: 'logs', dataset, namespace: this.cfg.namespace } as const
    if (o === undefined) return { ...e, data_stream }
    return { ...e, kea: { ...e.kea, lease: { ...e.kea.lease, key: o.key } as NonNullable<KeaEvent['kea']['lease']> }, data_stream }
  }

  /**
   * Resolves when every event is in Elasticsearch (or dead-lettered). A failing request (cluster
   * down, network) is retried with capped exponential backoff until it succeeds or the store
   * closes or `opts.signal` aborts (a shutdown's drain deadline); the caller's await is the
   * backpressure.
   */
  async write (events: readonly KeaEvent[], opts: WriteOptions = {}): Promise<WriteResult> {
    if (events.length === 0) return { written: 0, duplicates: 0, deadLettered: 0 }
    // Once per event: the document carries the observation's key, lease history takes the rest.
    const observed = events.map((e) => observe(e, this.leaseDomains))
    // Lease history is applied in the order of the writes, whichever event bulk finishes first.
    const turn = this.leases.reserve()
    // The store's close or the caller's signal, whichever comes first (see linkedSignal).
    const link = linkedSignal(this.stop.signal, opts.signal)
    const ended = link.signal
    try {
      const { result, conflicts, refused } = await this.retrying(async () => await this.bulkOnce(events, observed, ended), undefined, ended)
      // Stored events that parsed worse than these (a re-import with the right pattern): replaced.
      const written = events.filter((e) => !refused.has(e.event.id))
      const repair = await this.retrying(async () => await this.replaceWorse(conflicts, written), undefined, ended)
      if (repair.replaced > 0) {
        result.duplicates -= repair.replaced - repair.fromWritten
        result.written -= repair.fromWritten
        result.replaced = repair.replaced
      }
      // The chain's link over what this write created (a retry of the link after a lost answer
      // may append a second link over the same records: both verify), and lease history, at
      // once: neither reads what the other writes.
      const chained = this.retrying(async () => { await this.chainLog.append([...written, ...repair.recreated]) }, undefined, ended)
      // Lease history after the events: a retry here must not re-send the events (their 409s
      // would be counted as duplicates of themselves).
      const leased = (async () => {
        const obs = observed.filter((o): o is LeaseObservation => o !== undefined)
        const spans = coverageSpans(events, this.leaseDomains)
        await turn.ready
        if (repair.withdrawn.length > 0) await this.retrying(async () => { await this.leases.forgetLegacy(repair.withdrawn.map((o) => o.event_id)) }, undefined, ended)
        const wipes = wipesOf(events, this.leaseDomains)
        await this.retrying(async () => { await this.leases.applyReserved(obs, spans, repair.withdrawn, wipes) }, undefined, ended)
      })()
      // Both settled before the turn is released (lease history stays in the order of the writes).
      const [c, l] = await Promise.allSettled([chained, leased])
      if (c.status === 'rejected') throw c.reason
      if (l.status === 'rejected') throw l.reason
      return result
    } finally {
      link.dispose()
      turn.release()
    }
  }

  /**
   * `ensureTemplates`, retried with the write backoff while the cluster does not answer (it may
   * start after keatrail); throws only once the store is closed.
   */
  async ensureTemplatesWaiting (onRetry?: ElasticsearchStoreOptions['onRetry']): Promise<string[]> {
    return await this.retrying(async () => await this.ensureTemplates(), onRetry)
  }

  /** `signal`: one that also aborts when the store closes (linkedSignal); default the store's own. */
  private async retrying<T> (fn: () => Promise<T>, onRetry = this.opts.onRetry, signal?: AbortSignal): Promise<T> {
    // Until it succeeds or the store closes (close() aborts the wait), or the caller gives up.
    return await retry(fn, {
      initialMs: this.cfg.retry.initialMs,
      maxMs: this.cfg.retry.maxMs,
      signal: signal ?? this.stop.signal,
      permanent: (err) => err instanceof StoreDistributionError,
      ...(onRetry === undefined ? {} : { onRetry: (err: unknown, attempt: number, waitMs: number) => { onRetry(err as Error, attempt, waitMs) } })
    })
  }

  /**
   * The ids of the events of source `sourceId` stored without parsing fully ('all': too many to
   * keep), read once per source and process. Event ids come from the source and offset, not the
   * pattern, but the data stream comes from the parse: a line stored unmatched (kea.other) and
   * imported again with the right pattern (kea.dhcp4) is no 409, and both copies would stand.
   * Knowing the ids, a source with a few unparsed lines costs no search per write.
   */
  private async unparsedIds (sourceId: string): Promise<Set<string> | 'all'> {
    let known = this.unparsed.get(sourceId)
    if (known === undefined) {
      known = (async () => {
        await this.client.indices.refresh({ index: this.pattern, ignore_unavailable: true, allow_no_indices: true })
        const ids = new Set<string>()
        let after: estypes.SortResults | undefined
        for (let page = 0; page < UNPARSED_PAGES; page++) {
          const res = await this.client.search({
            index: this.pattern, ignore_unavailable: true, allow_no_indices: true, size: 10_000, _source: false,
            query: { bool: { filter: [{ term: { 'kea.source_id': sourceId } }, { terms: { 'kea.parse.status': ['unmatched', 'partial'] } }] } },
            sort: [{ 'event.id': 'asc' }] as estypes.Sort,
            ...(after === undefined ? {} : { search_after: after })
          })
          for (const h of res.hits.hits) ids.add(h._id as string)
          if (res.hits.hits.length < 10_000) return ids
          after = res.hits.hits[res.hits.hits.length - 1]?.sort
        }
        return 'all' as const
      })()
      this.unparsed.set(sourceId, known)
      known.catch(() => { this.unparsed.delete(sourceId) })
    }
    return await known
  }

  /**
   * Stored events that parsed worse than these ones with the same id (a re-import with the right
   * pattern) are replaced: the old document is deleted from its backing index (guarded by its
   * sequence number: a concurrent change wins) and, where the new one was refused as a
   * duplicate (409, same data stream), the new one created. Looked up: the parsed documents
   * refused as duplicates, and the parsed documents just written of a source that has unparsed
   * events (another data stream). Returns how many were replaced, how many of those had been
   * counted as written, and the observations the old documents had (their keys are re-derived).
   */
  private async replaceWorse (conflicts: readonly Doc[], written: readonly KeaEvent[]): Promise<{ replaced: number, fromWritten: number, withdrawn: LeaseObservation[], recreated: KeaEvent[] }> {
    const parsed = (d: KeaEvent): boolean => d.kea.parse.status !== 'unmatched'
    const candidates = new Map<string, { doc: KeaEvent, conflict: false } | { doc: Doc, conflict: true }>()
    for (const d of conflicts) if (parsed(d)) candidates.set(d.event.id, { doc: d, conflict: true })
    const sources = new Map<string, Set<string> | 'all'>()
    for (const d of written) {
      const src = d.kea.source_id
      if (src === undefined) continue
      if (!sources.has(src)) sources.set(src, await this.unparsedIds(src))
      const ids = sources.get(src) as Set<string> | 'all'
      if (parsed(d) && (ids === 'all' || ids.has(d.event.id))) candidates.set(d.event.id, { doc: d, conflict: false })
      // This process's own unparsed events of the source count too (a later repair finds them).
      if (d.kea.parse.status !== 'ok' && ids !== 'all') ids.add(d.event.id)
    }
    let replaced = 0
    let fromWritten = 0
    const withdrawn: LeaseObservation[] = []
    // Stored again under their id by this repair (not among the write's created ones): the chain links them too.
    const recreated: KeaEvent[] = []
    const all = [...candidates.values()]
    for (let i = 0; i < all.length; i += 1000) {
      const chunk = all.slice(i, i + 1000)
      await this.client.indices.refresh({ index: this.pattern, ignore_unavailable: true, allow_no_indices: true })
      const res = await this.client.search<Doc>({
        // Twice: a partial event just written matches too, beside the unmatched one it replaces.
        index: this.pattern, ignore_unavailable: true, allow_no_indices: true, size: chunk.length * 2, seq_no_primary_term: true,
        query: { bool: { filter: [{ ids: { values: chunk.map((c) => c.doc.event.id) } }, { terms: { 'kea.parse.status': ['unmatched', 'partial'] } }] } }
      })
      const ops: unknown[] = []
      const creates = new Map<string, KeaEvent>()
      for (const h of res.hits.hits) {
        const c = candidates.get(h._id as string)
        const stored = h._source
        if (c === undefined || stored === undefined || !parsesBetter(c.doc.kea.parse.status, stored.kea.parse.status)) continue
        ops.push({ delete: { _index: h._index, _id: h._id, if_seq_no: h._seq_no, if_primary_term: h._primary_term } })
        if (c.conflict) {
          ops.push({ create: { _index: `logs-${c.doc.data_stream.dataset}-${c.doc.data_stream.namespace}`, _id: c.doc.event.id } }, c.doc)
          creates.set(c.doc.event.id, c.doc)
        }
        for (const o of observeAllEither([fromDoc(stored)], this.leaseDomains)) withdrawn.push(o)
      }
      if (ops.length === 0) continue
      const r = await this.client.bulk({ operations: ops, refresh: this.cfg.refresh })
      for (const item of r.items) {
        if (item.create?.status === 201) { replaced++; const e = creates.get(item.create._id ?? ''); if (e !== undefined) recreated.push(e) }
        else if (item.delete?.status === 200 && !creates.has(item.delete._id ?? '')) { replaced++; fromWritten++ }
        // 409 on a delete: changed meanwhile by another writer, whose version stands.
        else if (item.create !== undefined && item.create.status !== 409) throw new Error(`replacing an event failed: ${item.create.status} ${item.create.error?.reason ?? ''}`)
      }
    }
    return { replaced, fromWritten, withdrawn, recreated }
  }

  /** `refused`: ids of the documents not written (duplicates and dead letters). */
  private async bulkOnce (events: readonly KeaEvent[], observed: ReadonlyArray<LeaseObservation | undefined>, signal?: AbortSignal): Promise<{ result: WriteResult, conflicts: Doc[], refused: Set<string> }> {
    let duplicates = 0
    const conflicts: Doc[] = []
    const refused = new Set<string>()
    const dead: Array<{ event: KeaEvent, reason: string }> = []
    const { created, refused: drops } = await bulkCreate(this.client, events.length, (i) => this.bulkLines(events[i] as KeaEvent, observed[i]), {
      flushBytes: this.cfg.bulk.flushBytes,
      bodies: this.bodies,
      concurrency: this.cfg.bulk.concurrency,
      retries: this.cfg.bulk.retries,
      waitMs: 1000,
      maxWaitMs: this.cfg.retry.maxMs,
      signal: signal ?? this.stop.signal,
      onStillRefused: (documents, status, reason, waitMs) => {
        this.opts.onRetry?.(new Error(`${documents} documents answered ${status} ${reason}; sending them again`), 0, waitMs)
      }
    })
    if (this.cfg.refresh) await this.client.indices.refresh({ index: this.pattern, ignore_unavailable: true, allow_no_indices: true })
    for (const d of drops) {
      const e = events[d.index] as KeaEvent
      refused.add(e.event.id)
      if (d.status === 409) { duplicates++; conflicts.push(this.toDoc(e, observed[d.index])); continue }
      dead.push({ event: e, reason: `${d.status} ${d.error?.type ?? ''}: ${d.error?.reason ?? ''}`.trim() })
    }
    const stats = { successful: created }
    if (dead.length > 0) {
      if (this.opts.deadLetters === undefined) throw new Error(`${dead.length} events were rejected and no dead-letter store is configured: ${dead[0]?.reason ?? ''}`)
      this.opts.deadLetters.add('elasticsearch', dead)
    }
    return { result: { written: stats.successful, duplicates, deadLettered: dead.length }, conflicts, refused }
  }

  private query (q: EventQuery): estypes.QueryDslQueryContainer {
    const filter: estypes.QueryDslQueryContainer[] = []
    if (q.from !== undefined || q.to !== undefined) {
      filter.push({ range: { '@timestamp': { ...(q.from === undefined ? {} : { gte: q.from }), ...(q.to === undefined ? {} : { lt: q.to }), format: 'epoch_millis' } } })
    }
    for (const [field, values] of Object.entries(q.filters ?? {}) as Array<[FilterField, ReadonlyArray<string | number>]>) {
      if (values.length === 0) continue
      const path = FILTER_FIELDS[field]
      if (path === undefined) throw new StoreReadError(this.client.distribution, `unknown filter field ${JSON.stringify(field)}`)
      filter.push({ terms: { [path]: values.map((v) => field === 'subnet_id' ? Number(v) : String(v)) } })
    }
    if (q.where !== undefined) filter.push(toElasticsearch(q.where))
    const must: estypes.QueryDslQueryContainer[] = []
    const text = q.text?.trim()
    if (text !== undefined && text !== '') must.push({ match: { message: { query: text, operator: 'and' } } })
    return { bool: { filter, must } }
  }

  async search (req: SearchRequest): Promise<SearchPage> {
    const size = Math.min(Math.max(req.size ?? 100, 1), MAX_PAGE_SIZE)
    const order = req.sort ?? 'desc'
    let searchAfter: estypes.SortResults | undefined
    if (req.cursor !== undefined) {
      const c = decodeCursor(req.cursor)
      if (c === undefined) throw new CursorInvalidError()
      searchAfter = [c.t, c.id]
    }
    const res = await this.read(async () => await this.client.search<KeaEvent>({
      index: this.pattern,
      ignore_unavailable: true,
      allow_no_indices: true,
      timeout: this.budget,
      query: this.query(req),
      sort: [{ '@timestamp': this.nanosFormatted ? { order, format: TIME_FORMAT } : { order } }, { 'event.id': { order } }],
      size: size + 1,
      track_total_hits: TOTAL_BOUND,
      ...(searchAfter === undefined ? {} : { search_after: searchAfter })
    }, this.readOptions))
    const hits = res.hits.hits
    // At most MAX_PAGE_BYTES of documents, the rest behind the cursor (as the SQLite store).
    const page = withinBudget(hits.slice(0, size), (h) => JSON.stringify(h._source).length)
    const more = hits.length > page.length
    const last = page[page.length - 1]
    const total = typeof res.hits.total === 'number' ? { value: res.hits.total, relation: 'eq' as const } : res.hits.total ?? { value: 0, relation: 'eq' as const }
    return {
      events: page.map((h) => fromDoc(h._source as Doc)),
      total: { value: total.value, relation: total.relation === 'gte' ? 'gte' : 'eq' },
      ...(more && last?.sort !== undefined ? { cursor: encodeCursor({ t: this.nanosFormatted ? String(last.sort[0]) : (last._source as Doc)['@timestamp'], id: String(last.sort[1]) }) } : {})
    }
  }

  /**
   * Elasticsearch formats a date_nanos sort value as text when asked (`format`), exact where the
   * long it answers otherwise is not (past 2^53 in JSON); OpenSearch has no sort `format`, but
   * takes the event's own time text as `search_after`.
   */
  private get nanosFormatted (): boolean {
    return this.client.distribution === 'elasticsearch'
  }

  async get (id: string): Promise<KeaEvent | undefined> {
    return (await this.getMany([id]))[0]
  }

  async getMany (ids: readonly string[]): Promise<KeaEvent[]> {
    const wanted = idsToGet(ids)
    if (wanted.length === 0) return []
    const res = await this.read(async () => await this.client.search<KeaEvent>({
      index: this.pattern, ignore_unavailable: true, allow_no_indices: true, timeout: this.budget, size: wanted.length, query: { ids: { values: wanted } }
    }, this.readOptions))
    const found = new Map(res.hits.hits.map((h) => fromDoc(h._source as Doc)).map((e) => [e.event.id, e]))
    return withinBudget(inIdOrder(wanted, found), (e) => JSON.stringify(e).length)
  }

  async count (q: EventQuery = {}): Promise<number> {
    // _count takes no `timeout`: the request's own is the bound (closing it cancels the search task).
    const res = await this.read(async () => await this.client.count({ index: this.pattern, ignore_unavailable: true, allow_no_indices: true, query: this.query(q) }, this.readOptions))
    return res.count
  }

  async histogram (q: EventQuery, intervalMs: number): Promise<Bucket[]> {
    if (!Number.isInteger(intervalMs) || intervalMs < 1) throw new StoreReadError(this.client.distribution, 'the histogram interval must be a positive whole number of ms')
    if (intervalMs > MAX_INTERVAL_MS) throw new QueryBucketsError(`an interval of at most ${MAX_INTERVAL_MS} ms (about 285 years), not ${intervalMs} ms`)
    const res = await this.read(async () => await this.client.search({
      index: this.pattern, ignore_unavailable: true, allow_no_indices: true, size: 0, timeout: this.budget, query: this.query(q),
      aggs: { h: { date_histogram: { field: '@timestamp', fixed_interval: `${intervalMs}ms`, min_doc_count: 1 } } }
    }, this.readOptions))
    const buckets = (res.aggregations?.h as estypes.AggregationsDateHistogramAggregate | undefined)?.buckets
    if (Array.isArray(buckets) && buckets.length > MAX_BUCKETS) throw tooManyBuckets()
    return (Array.isArray(buckets) ? buckets : []).map((b) => ({ key: Number(b.key), count: b.doc_count }))
  }

  async top (field: FilterField, q: EventQuery, size: number): Promise<TermCount[]> {
    const n = Math.min(Math.max(Math.trunc(size), 1), 1000)
    const res = await this.read(async () => await this.client.search({
      index: this.pattern, ignore_unavailable: true, allow_no_indices: true, size: 0, timeout: this.budget, query: this.query(q),
      aggs: { t: { terms: { field: FILTER_FIELDS[field], size: n, order: [{ _count: 'desc' }, { _key: 'asc' }] } } }
    }, this.readOptions))
    const buckets = (res.aggregations?.t as estypes.AggregationsStringTermsAggregate | undefined)?.buckets
    return (Array.isArray(buckets) ? buckets : []).map((b) => ({ value: String(b.key_as_string ?? b.key), count: b.doc_count }))
  }

  async health (): Promise<{ ok: boolean, detail: string }> {
    try {
      const h = await this.client.cluster.health({ timeout: '5s' })
      return { ok: h.status !== 'red', detail: `cluster ${h.cluster_name} ${h.status}` }
    } catch (err) {
      return { ok: false, detail: (err as Error).message }
    }
  }

  async deleteEvents (q: EventQuery): Promise<DeleteResult> {
    const query = this.query(q)
    await this.client.indices.refresh({ index: this.pattern, ignore_unavailable: true, allow_no_indices: true })
    const scopeQuery = (scope: string): estypes.QueryDslQueryContainer => scope === ''
      ? { bool: { must_not: [{ exists: { field: 'host.name' } }] } }
      : { terms: { 'host.name': [...this.leaseDomains.hostsOf(scope)] } }
    const spansRes = await this.client.search({
      index: this.pattern, ignore_unavailable: true, allow_no_indices: true, size: 0, query,
      aggs: { s: { terms: { field: 'host.name', missing: '', size: 10_000 }, aggs: { f: { min: { field: '@timestamp' } }, l: { max: { field: '@timestamp' } } } } }
    })
    // A lease domain's servers: one span (their leases have one history).
    const spans = byDomain(((spansRes.aggregations?.s as estypes.AggregationsStringTermsAggregate | undefined)?.buckets as Array<{ key: string, f: { value: number }, l: { value: number } }> | undefined ?? [])
      .map((b) => ({ scope: String(b.key), f: b.f.value, l: b.l.value })), this.leaseDomains).map((s) => ({ scope: s.scope, from: s.f, to: s.l }))
    // The earliest observation per key among the events to delete: their keys are re-derived.
    const withdrawn = new Map<string, LeaseObservation>()
    const shaping: string[] = []
    let after: estypes.SortResults | undefined
    for (let page = 0; page < 100_000; page++) {
      const res = await this.client.search<KeaEvent>({
        index: this.pattern, ignore_unavailable: true, allow_no_indices: true, size: 10_000, _source: OBSERVED_FIELDS,
        // event.action, not kea.lease.key: events of earlier versions carry no key (their
        // observations are in the legacy index).
        query: { bool: { filter: [query, { exists: { field: 'event.action' } }] } },
        sort: [{ '@timestamp': 'asc' }, { 'event.id': 'asc' }] as estypes.Sort,
        ...(after === undefined ? {} : { search_after: after })
      })
      for (const h of res.hits.hits) {
        if (h._source === undefined) continue
        const seen = observeAllEither([h._source], this.leaseDomains)
        if (seen.length > 0) shaping.push(h._source.event.id)
        for (const o of seen) if (!withdrawn.has(o.key)) withdrawn.set(o.key, o)
      }
      if (res.hits.hits.length < 10_000) break
      after = res.hits.hits[res.hits.hits.length - 1]?.sort
    }
    const result: DeleteResult = { deleted: await deleteMatching(this.client, this.pattern, query), rederived: withdrawn.size, scopes: [] }
    if (result.deleted === 0) return result
    await this.leases.forgetLegacy(shaping)
    await this.leases.apply([], new Map(), [...withdrawn.values()])
    for (const s of spans) {
      const parsedOf = { bool: { filter: [scopeQuery(s.scope)], must_not: [{ term: { 'kea.parse.status': 'unmatched' } }] } }
      const leftRes = await this.client.search({
        index: this.pattern, ignore_unavailable: true, allow_no_indices: true, size: 0, query: parsedOf,
        aggs: { f: { min: { field: '@timestamp' } }, l: { max: { field: '@timestamp' } } }
      })
      const f = (leftRes.aggregations?.f as estypes.AggregationsMinAggregate | undefined)?.value
      const l = (leftRes.aggregations?.l as estypes.AggregationsMaxAggregate | undefined)?.value
      const coverage = await this.leases.shrinkCoverage(s.scope, f === null || f === undefined || l === null || l === undefined ? undefined : { first: f, last: l })
      const entry: DeleteResult['scopes'][number] = { scope: s.scope, ...(coverage === undefined ? {} : { coverage }) }
      const hole = { from: s.from, to: s.to }
      if (coverage !== undefined && hole.from > coverage.from && hole.to < coverage.to) {
        const inside = await this.client.count({
          index: this.pattern, ignore_unavailable: true, allow_no_indices: true,
          query: { bool: { filter: [parsedOf, { range: { '@timestamp': { gte: hole.from, lte: hole.to, format: 'epoch_millis' } } }] } }
        })
        if (inside.count === 0) {
          await this.leases.recordGap({ scope: s.scope, from: hole.from, to: hole.to, reason: 'events deleted by keatrail store delete' })
          entry.gap = hole
        }
      }
      result.scopes.push(entry)
    }
    return result
  }

  /** Makes written events visible to search now (tests; otherwise within refresh_interval). */
  async refresh (): Promise<void> {
    const l = leaseIndices(this.cfg.namespace)
    await this.client.indices.refresh({ index: [this.pattern, l.intervals, l.obs, l.coverage, snapshotIndex(this.cfg.namespace)], ignore_unavailable: true, allow_no_indices: true })
  }

  async close (): Promise<void> {
    this.stop.abort()
    await this.client.close()
  }

  /** `timeout` of a search: Elasticsearch stops collecting when it passes (answers `timed_out`). */
  private get budget (): string {
    return `${this.cfg.queryTimeoutMs}ms`
  }

  /** The request itself is abandoned a second after the budget (no retry: the answer is 503 now). */
  private get readOptions (): { requestTimeout: number, maxRetries: number } {
    return { requestTimeout: this.cfg.queryTimeoutMs + 1000, maxRetries: 0 }
  }

  /** A read within the query budget: partial answers (`timed_out`) and abandoned requests are KEATRAIL_ERR_QUERY_TIMEOUT. */
  private async read<T> (fn: () => Promise<T>): Promise<T> {
    let res: T
    for (let attempt = 1; ; attempt++) {
      try {
        res = await fn()
        break
      } catch (err) {
        // A node that cannot be reached is marked dead by the client's pool: the next attempt
        // goes to another node. Never a timed-out read (it would cost the cluster twice).
        if (this.client.isConnectionError(err) && attempt < 1 + (this.cfg.nodes?.length ?? 0)) continue
        if (this.client.isTimeout(err)) throw withCause(new QueryTimeoutError(this.cfg.queryTimeoutMs), err)
        if (JSON.stringify(this.client.errorBody(err) ?? '').includes('too_many_buckets_exception')) throw withCause(tooManyBuckets(), err)
        throw withCause(new StoreReadError(this.client.distribution, (err as Error).message), err)
      }
    }
    // A search past its `timeout` answers what it collected so far: not an answer to give.
    if ((res as { timed_out?: boolean }).timed_out === true) throw new QueryTimeoutError(this.cfg.queryTimeoutMs)
    return res
  }
}

function tooManyBuckets (): Error {
  return new QueryBucketsError(`more than ${MAX_BUCKETS} buckets hold events; widen the interval or narrow the time range`)
}

/** A stored document as the event keatrail parsed: without what only the index needs. */
export function fromDoc (doc: Doc): KeaEvent {
  const { data_stream: _ds, ...event } = doc
  const lease = event.kea?.lease as (KeaEvent['kea']['lease'] & { key?: string }) | undefined
  if (lease?.key === undefined) return event
  const { key: _key, ...rest } = lease
  return { ...event, kea: { ...event.kea, lease: rest } }
}

/**
 * A signal aborted by `store` or `caller`, whichever aborts first, and what unlinks it from
 * them. Not AbortSignal.any: on Node 20 each call leaves a link on its long-lived inputs that is
 * never freed (nodejs/node#55351; ~50 B a call measured, five calls a write).
 */
function linkedSignal (store: AbortSignal, caller: AbortSignal | undefined): { signal: AbortSignal, dispose: () => void } {
  if (caller === undefined) return { signal: store, dispose: () => {} }
  const c = new AbortController()
  const abort = (): void => { c.abort() }
  if (store.aborted || caller.aborted) c.abort()
  store.addEventListener('abort', abort, { once: true })
  caller.addEventListener('abort', abort, { once: true })
  return { signal: c.signal, dispose: () => { store.removeEventListener('abort', abort); caller.removeEventListener('abort', abort) } }
}
