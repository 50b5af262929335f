import { Client as EsClient, errors as esErrors, type estypes } from '@elastic/elasticsearch'
import { Client as OsClient, errors as osErrors } from '@opensearch-project/opensearch'
import type { ConnectionOptions } from 'node:tls'
import { StoreDistributionError } from '../../errors.js'

/** Which search engine a cluster runs: both speak the same REST dialect for what keatrail uses. */
export type Distribution = 'elasticsearch' | 'opensearch'

/** Per-request options both clients take. */
export interface CallOptions {
  /** Statuses answered as a body instead of an error (404 of a lookup). */
  ignore?: number[]
  maxRetries?: number
  requestTimeout?: number
}

type IndexOpts = { index: string | string[], ignore_unavailable?: boolean, allow_no_indices?: boolean }

/**
 * The part of a search engine's REST API keatrail uses, in the Elasticsearch 8 client's request
 * and response shapes (estypes): the store, lease history and snapshots are written once against
 * it. Elasticsearch's own client answers it as is; OpenSearch's (whose requests put the body
 * apart and whose answers wrap it) through OpenSearchEngine. Elastic's client refuses to talk to
 * OpenSearch at all (it checks the product header), hence two clients rather than one.
 */
export interface SearchEngine {
  readonly distribution: Distribution
  search: <T = unknown>(req: estypes.SearchRequest, opts?: CallOptions) => Promise<estypes.SearchResponse<T>>
  msearch: <T = unknown>(req: { searches: estypes.MsearchRequestItem[] }) => Promise<estypes.MsearchResponse<T>>
  count: (req: estypes.CountRequest, opts?: CallOptions) => Promise<estypes.CountResponse>
  bulk: (req: { operations: unknown[], refresh?: boolean }, opts?: CallOptions) => Promise<estypes.BulkResponse>
  index: (req: { index: string, id?: string, document: unknown, refresh?: boolean }) => Promise<unknown>
  /**
   * One `_bulk` request of a body already serialized (NDJSON), answered as sent (no retry by
   * the client: the caller retries, visibly and without limit).
   */
  bulkBody: (body: string | Buffer) => Promise<estypes.BulkResponse>
  indices: {
    exists: (req: { index: string }) => Promise<boolean>
    create: (req: { index: string }, opts?: CallOptions) => Promise<unknown>
    refresh: (req: IndexOpts) => Promise<unknown>
    putMapping: (req: IndexOpts & { properties: Record<string, unknown> }) => Promise<unknown>
    putSettings: (req: IndexOpts & { settings: Record<string, unknown> }) => Promise<unknown>
    getSettings: (req: IndexOpts) => Promise<Record<string, { settings?: { index?: Record<string, unknown> } }>>
    resolveIndex: (req: { name: string, expand_wildcards?: 'all' }) => Promise<{ indices: unknown[], data_streams: unknown[] }>
    getIndexTemplate: (req: { name: string }, opts?: CallOptions) => Promise<estypes.IndicesGetIndexTemplateResponse>
    putIndexTemplate: (req: estypes.IndicesPutIndexTemplateRequest) => Promise<unknown>
  }
  cluster: {
    health: (req: { timeout: string }) => Promise<{ status: string, cluster_name: string }>
    getComponentTemplate: (req: { name: string }, opts?: CallOptions) => Promise<estypes.ClusterGetComponentTemplateResponse>
    putComponentTemplate: (req: estypes.ClusterPutComponentTemplateRequest) => Promise<unknown>
  }
  /**
   * Fails with KEATRAIL_ERR_STORE_DISTRIBUTION when the cluster runs the other engine (an
   * operator's `store.type` mistake: Elastic's client would refuse with a message about an
   * "unknown product", OpenSearch's would write into Elasticsearch without a word).
   */
  verify: () => Promise<void>
  /** The version of the node answering (GET / is not served by every distribution's test build). */
  nodeVersion: () => Promise<string>
  /** The request was abandoned at its requestTimeout. */
  isTimeout: (err: unknown) => boolean
  /** The node could not be reached (refused, reset): another node may answer. */
  isConnectionError: (err: unknown) => boolean
  /** The engine answered with an error status: its body (undefined for other failures). */
  errorBody: (err: unknown) => unknown
  close: () => Promise<void>
}

/**
 * A bulk answer holds each item's status and error only: bulkCreate reads nothing else, and the
 * whole answer (index, id, version, shards, seq_no… ~190 bytes an item) was ~1 MB of JSON to parse
 * per 5,000 events. (Error answers are not filtered by either engine.)
 */
const BULK_ANSWER = { filter_path: 'items.*.status,items.*.error' }

/** How each engine is named to an operator. */
export const ENGINE_NAMES: Record<Distribution, string> = { elasticsearch: 'Elasticsearch', opensearch: 'OpenSearch' }
function mismatch (url: string, is: Distribution): Error {
  const other: Distribution = is === 'opensearch' ? 'elasticsearch' : 'opensearch'
  return new StoreDistributionError(url, ENGINE_NAMES[is], ENGINE_NAMES[other], is)
}

/** Which engine's client raised `err` (undefined: neither client's error). */
export function engineOfError (err: unknown): Distribution | undefined {
  if (err instanceof esErrors.ElasticsearchClientError) return 'elasticsearch'
  if (err instanceof osErrors.OpenSearchClientError) return 'opensearch'
  return undefined
}

export interface EngineConnection {
  /** Every node keatrail may send to (the first one is the configured url). */
  nodes: string[]
  requestTimeoutMs: number
  auth?: { apiKey: string } | { username: string, password: string }
  ca?: Buffer
}

export function connectEngine (distribution: Distribution, c: EngineConnection): SearchEngine {
  return distribution === 'opensearch' ? new OpenSearchEngine(c) : new ElasticEngine(c)
}

/** Elasticsearch, through Elastic's client (its transport and typed requests). */
export class ElasticEngine implements SearchEngine {
  readonly distribution = 'elasticsearch' as const
  readonly client: EsClient
  private readonly url: string

  constructor (private readonly connection: EngineConnection) {
    const c = connection
    this.url = c.nodes.join(', ')
    this.client = new EsClient({
      nodes: c.nodes,
      requestTimeout: c.requestTimeoutMs,
      // The client's default redaction ('replace') deep-copies every failed request's metadata
      // with Object.entries: a bulk body sent as a Buffer became an object of 1.2 million
      // numbered properties per error, and a cluster going down took the heap from 60 to 230 MB
      // at each retry (the chaos outage peaked at 414–421 MiB RSS). 'remove' drops the request
      // headers (credentials) and the connection in place, copying nothing; the service log's
      // serializer never writes the request anyway (src/app/logger.ts).
      redaction: { type: 'remove' },
      ...(c.auth === undefined ? {} : { auth: c.auth }),
      ...(c.ca === undefined ? {} : { tls: { ca: c.ca } })
    })
  }

  readonly search = async <T>(req: estypes.SearchRequest, opts?: CallOptions): Promise<estypes.SearchResponse<T>> => await this.client.search<T>(req, opts)
  readonly msearch = async <T>(req: { searches: estypes.MsearchRequestItem[] }): Promise<estypes.MsearchResponse<T>> => await this.client.msearch<T>(req)
  readonly count = async (req: estypes.CountRequest, opts?: CallOptions): Promise<estypes.CountResponse> => await this.client.count(req, opts)
  readonly bulk = async (req: { operations: unknown[], refresh?: boolean }, opts?: CallOptions): Promise<estypes.BulkResponse> =>
    await this.client.bulk(req as estypes.BulkRequest, opts)

  readonly index = async (req: { index: string, id?: string, document: unknown, refresh?: boolean }): Promise<unknown> => await this.client.index(req)
  readonly bulkBody = async (body: string | Buffer): Promise<estypes.BulkResponse> =>
    await this.client.transport.request<estypes.BulkResponse>({ method: 'POST', path: '/_bulk', bulkBody: body, querystring: BULK_ANSWER }, { maxRetries: 0 })

  readonly indices: SearchEngine['indices'] = {
    exists: async (req) => await this.client.indices.exists(req),
    create: async (req, opts) => await this.client.indices.create(req, opts),
    refresh: async (req) => await this.client.indices.refresh(req),
    putMapping: async (req) => await this.client.indices.putMapping(req),
    putSettings: async (req) => await this.client.indices.putSettings(req),
    getSettings: async (req) => await this.client.indices.getSettings(req) as Record<string, { settings?: { index?: Record<string, unknown> } }>,
    resolveIndex: async (req) => await this.client.indices.resolveIndex(req),
    getIndexTemplate: async (req, opts) => await this.client.indices.getIndexTemplate(req, opts),
    putIndexTemplate: async (req) => await this.client.indices.putIndexTemplate(req)
  }

  readonly cluster: SearchEngine['cluster'] = {
    health: async (req) => await this.client.cluster.health(req),
    getComponentTemplate: async (req, opts) => await this.client.cluster.getComponentTemplate(req, opts),
    putComponentTemplate: async (req) => await this.client.cluster.putComponentTemplate(req)
  }

  async verify (): Promise<void> {
    try {
      await this.client.cluster.health({ timeout: '5s' })
    } catch (err) {
      // Elastic's client refuses any 2xx answer without Elasticsearch's product header, before
      // reading it: asked with OpenSearch's client, a cluster that says it is OpenSearch is the
      // operator's mistake; anything else (a proxy's page) may pass, and is retried like an
      // unreachable cluster.
      if (err instanceof esErrors.ProductNotSupportedError && await new OpenSearchEngine(this.connection).isOpenSearch()) throw mismatch(this.url, 'opensearch')
      throw err
    }
  }

  async nodeVersion (): Promise<string> {
    const nodes = await this.client.nodes.info({ node_id: '_local', metric: '_none' })
    return Object.values(nodes.nodes)[0]?.version ?? '0.0.0'
  }

  isTimeout (err: unknown): boolean { return err instanceof esErrors.TimeoutError }
  isConnectionError (err: unknown): boolean { return err instanceof esErrors.ConnectionError }
  errorBody (err: unknown): unknown { return err instanceof esErrors.ResponseError ? err.body : undefined }
  async close (): Promise<void> { await this.client.close() }
}

type Query = Record<string, unknown>
/** Request fields that are URL parameters, not body: the rest of an estypes request is its body. */
const URL_PARAMS = new Set(['ignore_unavailable', 'allow_no_indices', 'expand_wildcards', 'routing', 'preference', 'request_cache', 'refresh', 'timeout', 'master_timeout'])

function split (req: object, path: readonly string[], urlOnly = false): { qs: Query, body: Query } {
  const qs: Query = {}
  const body: Query = {}
  for (const [k, v] of Object.entries(req)) {
    if (path.includes(k) || v === undefined) continue
    if (urlOnly || URL_PARAMS.has(k)) qs[k] = v
    else body[k] = v
  }
  return { qs, body }
}

const names = (index: string | string[]): string => encodeURIComponent(Array.isArray(index) ? index.join(',') : index).replaceAll('%2C', ',').replaceAll('%2A', '*')

/**
 * OpenSearch, through its official client's transport: each request keatrail makes is written
 * out here as the REST call it is (method, path, parameters, body), so the shapes above hold for
 * both engines. A search's `timeout` is a body field on both (URL_PARAMS lists it for the
 * cluster health call, whose only parameter it is); it is moved back into the body for searches.
 */
export class OpenSearchEngine implements SearchEngine {
  readonly distribution = 'opensearch' as const
  readonly client: OsClient
  private readonly url: string

  constructor (c: EngineConnection) {
    this.url = c.nodes.join(', ')
    // OpenSearch's client has no API key option (basic or AWS SigV4 only). A client-wide
    // `headers: { authorization }` goes into every request's parameters, which each error carries
    // (meta.meta.request.params.headers) and which its client does not redact: a 401 or a refused
    // connection logged the key in clear. Given per node instead, it is the connection's own
    // header, which the client's errors leave out (Connection's toJSON and inspect drop it), like
    // the Basic header it makes of `auth`.
    const a = c.auth
    const apiKey = a !== undefined && 'apiKey' in a ? a.apiKey : undefined
    const nodes = apiKey === undefined ? c.nodes : c.nodes.map((n) => ({ url: new URL(n), headers: { authorization: `ApiKey ${apiKey}` } }))
    const auth = a === undefined || 'apiKey' in a ? {} : { auth: a }
    this.client = new OsClient({
      nodes,
      requestTimeout: c.requestTimeoutMs,
      ...auth,
      ...(c.ca === undefined ? {} : { ssl: { ca: c.ca } satisfies ConnectionOptions })
    })
  }

  private async call<T> (method: string, path: string, qs: Query, body?: unknown, opts: CallOptions = {}, bulk = false): Promise<T> {
    const params = { method, path, querystring: qs, ...(body === undefined ? {} : bulk ? { bulkBody: typeof body === 'string' ? body : body as Query[] } : { body: body as Query }) }
    const res = await this.client.transport.request(params, opts)
    return res.body as T
  }

  readonly search = async <T>(req: estypes.SearchRequest, opts?: CallOptions): Promise<estypes.SearchResponse<T>> => {
    const { qs, body } = split(req, ['index'])
    if (qs.timeout !== undefined) { body.timeout = qs.timeout; delete qs.timeout }
    return await this.call('POST', `/${names(req.index ?? '_all')}/_search`, qs, body, opts)
  }

  readonly msearch = async <T>(req: { searches: estypes.MsearchRequestItem[] }): Promise<estypes.MsearchResponse<T>> =>
    await this.call('POST', '/_msearch', {}, req.searches, {}, true)

  readonly count = async (req: estypes.CountRequest, opts?: CallOptions): Promise<estypes.CountResponse> => {
    const { qs, body } = split(req, ['index'])
    return await this.call('POST', `/${names(req.index ?? '_all')}/_count`, qs, body, opts)
  }

  readonly bulk = async (req: { operations: unknown[], refresh?: boolean }, opts?: CallOptions): Promise<estypes.BulkResponse> =>
    await this.call('POST', '/_bulk', req.refresh === undefined ? {} : { refresh: req.refresh }, req.operations, opts, true)

  readonly index = async (req: { index: string, id?: string, document: unknown, refresh?: boolean }): Promise<unknown> =>
    await this.call(req.id === undefined ? 'POST' : 'PUT', `/${names(req.index)}/_doc${req.id === undefined ? '' : `/${encodeURIComponent(req.id)}`}`,
      req.refresh === undefined ? {} : { refresh: req.refresh }, req.document)

  readonly bulkBody = async (body: string | Buffer): Promise<estypes.BulkResponse> => await this.call('POST', '/_bulk', BULK_ANSWER, body, { maxRetries: 0 }, true)

  readonly indices: SearchEngine['indices'] = {
    exists: async (req) => (await this.client.transport.request({ method: 'HEAD', path: `/${names(req.index)}` }, { ignore: [404] })).statusCode === 200,
    create: async (req, opts) => await this.call('PUT', `/${names(req.index)}`, {}, {}, opts),
    refresh: async (req) => { const { qs } = split(req, ['index'], true); return await this.call('POST', `/${names(req.index)}/_refresh`, qs) },
    putMapping: async (req) => { const { qs, body } = split(req, ['index']); return await this.call('PUT', `/${names(req.index)}/_mapping`, qs, body) },
    putSettings: async (req) => { const { qs } = split(req, ['index', 'settings'], true); return await this.call('PUT', `/${names(req.index)}/_settings`, qs, req.settings) },
    getSettings: async (req) => { const { qs } = split(req, ['index'], true); return await this.call('GET', `/${names(req.index)}/_settings`, qs) },
    resolveIndex: async (req) => await this.call('GET', `/_resolve/index/${names(req.name)}`, req.expand_wildcards === undefined ? {} : { expand_wildcards: req.expand_wildcards }),
    getIndexTemplate: async (req, opts) => await this.call('GET', `/_index_template/${names(req.name)}`, {}, undefined, opts),
    putIndexTemplate: async (req) => { const { body } = split(req, ['name']); return await this.call('PUT', `/_index_template/${names(req.name)}`, {}, body) }
  }

  readonly cluster: SearchEngine['cluster'] = {
    health: async (req) => await this.call('GET', '/_cluster/health', { timeout: req.timeout }),
    getComponentTemplate: async (req, opts) => await this.call('GET', `/_component_template/${names(req.name)}`, {}, undefined, opts),
    putComponentTemplate: async (req) => { const { body } = split(req, ['name']); return await this.call('PUT', `/_component_template/${names(req.name)}`, {}, body) }
  }

  async verify (): Promise<void> {
    // Elasticsearch marks every answer with the product it is (its own client checks the same).
    const res = await this.client.transport.request({ method: 'GET', path: '/_cluster/health', querystring: { timeout: '5s' } })
    if (res.headers?.['x-elastic-product'] === 'Elasticsearch') throw mismatch(this.url, 'elasticsearch')
  }

  /** GET / names OpenSearch as its distribution (closes this engine's client: a probe). */
  async isOpenSearch (): Promise<boolean> {
    try {
      const root = await this.call<{ version?: { distribution?: string } }>('GET', '/', {}, undefined, { maxRetries: 0 })
      return root.version?.distribution === 'opensearch'
    } catch {
      return false
    } finally {
      await this.close()
    }
  }

  async nodeVersion (): Promise<string> {
    const nodes = await this.call<{ nodes: Record<string, { version?: string }> }>('GET', '/_nodes/_local/_none', {})
    return Object.values(nodes.nodes)[0]?.version ?? '0.0.0'
  }

  isTimeout (err: unknown): boolean { return err instanceof osErrors.TimeoutError }
  isConnectionError (err: unknown): boolean { return err instanceof osErrors.ConnectionError }
  errorBody (err: unknown): unknown { return err instanceof osErrors.ResponseError ? err.body : undefined }
  async close (): Promise<void> { await this.client.close() }
}
