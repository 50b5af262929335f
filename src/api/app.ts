import { createHash, timingSafeEqual } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import fastifyRateLimit from '@fastify/rate-limit'
import fastifySwagger from '@fastify/swagger'
import fastifySwaggerUi from '@fastify/swagger-ui'
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify'
import { jsonSchemaTransform, validatorCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod'
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import { z } from 'zod'
import { ApiAuthError, ApiBadRequestError, ApiForbiddenError, CursorInvalidError, NotFoundError, isCodedError } from '../errors.js'
import { history, holderAt } from '../leases/query.js'
import { keaEventSchema } from '../parse/event.js'
import { packageRoot } from '../paths.js'
import { parseQuery } from '../query/parse.js'
import { FILTER_FIELDS, MAX_PAGE_SIZE, type FilterField, type Store } from '../store/types.js'
import { retryDeadLetters, type DeadLetterStore } from '../store/deadletter.js'
import { apiConfigSchema, type ApiConfig } from './config.js'
import { apiRange, apiTime } from './time.js'

export interface AuditEntry { time: string, key: string, ip: string, route: string, query: Record<string, unknown> }

/** What the running service tells the API about itself (metrics, readiness). */
export interface ServiceStatus {
  /** Per-source counters. */
  sources?: () => Record<string, Record<string, number>>
  pipeline?: () => Record<string, number>
  kea?: () => Record<string, number>
  deadLetters?: () => number
  /** Sources still running. */
  sourcesRunning?: () => boolean
  /** Each configured source's state; /readyz is 503 unless all are running. */
  sourceStates?: () => Record<string, 'starting' | 'running' | 'failed' | 'stopped'>
}

export interface BuildAppOptions {
  store: Store
  api?: z.input<typeof apiConfigSchema>
  audit?: (e: AuditEntry) => void
  status?: ServiceStatus
  /** Fastify's logger (pino); off by default in tests. */
  logger?: boolean
  /** Exposed so the pipeline can record store write latency. */
  registry?: Registry
  /** Events the store rejected (admin endpoints list and retry them). */
  deadLetters?: DeadLetterStore
}

export const ALERT_CODES = ['KEATRAIL_POOL_DEPLETION_WARN', 'KEATRAIL_POOL_DEPLETION_CRITICAL', 'KEATRAIL_POOL_DEPLETION_CLEAR']

/** Store-write latency: the pipeline observes it; /metrics shows it. */
export function writeLatency (registry: Registry): Histogram {
  const existing = registry.getSingleMetric('keatrail_store_write_seconds')
  if (existing !== undefined) return existing as Histogram
  return new Histogram({ name: 'keatrail_store_write_seconds', help: 'Time to write one batch durably (SQLite transaction or Elasticsearch bulk)', buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30], registers: [registry] })
}

const sha = (s: string): Buffer => createHash('sha256').update(s).digest()

function cursorHash (parts: unknown[]): string {
  return createHash('sha256').update(JSON.stringify(parts)).digest('base64url').slice(0, 12)
}

/** The API's cursor wraps the store's with a hash of the query, so a cursor only fits its own query. */
function wrapCursor (store: string, hash: string): string {
  return Buffer.from(JSON.stringify({ c: store, h: hash })).toString('base64url')
}

function unwrapCursor (cursor: string, hash: string): string {
  let v: unknown
  try { v = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) } catch { throw new CursorInvalidError() }
  const c = v as { c?: unknown, h?: unknown }
  if (typeof c?.c !== 'string' || c.h !== hash) throw new CursorInvalidError()
  return c.c
}

const interval = z.string().regex(/^(\d{1,9})(ms|s|m|h|d)?$/).describe('Bucket width: 30s, 5m, 1h, 1d or milliseconds')
function intervalMs (s: string): number {
  const m = /^(\d+)(ms|s|m|h|d)?$/.exec(s) as RegExpExecArray
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[(m[2] ?? 'ms') as 'ms']
  return Number(m[1]) * unit
}

const eventOut = keaEventSchema.loose()
const holderOut = z.object({
  lease: z.string().describe('The address, or prefix with length'),
  address: z.string().optional(),
  prefix: z.string().optional(),
  type: z.enum(['V4', 'IA_NA', 'IA_PD']),
  scope: z.string().describe('The Kea server (host.name)'),
  mac: z.string().optional(), hwaddr: z.string().optional(), client_id: z.string().optional(), duid: z.string().optional(),
  duid_ll: z.string().optional(), iaid: z.number().optional(), hostname: z.string().optional(),
  start: z.string().nullable(), end: z.string().nullable(),
  end_reason: z.enum(['release', 'decline', 'reclaim', 'expiry-by-lifetime', 'superseded', 'deleted', 'still-active']),
  certainty: z.enum(['observed', 'inferred', 'gap']),
  origin: z.enum(['log', 'kea-state']),
  evidence: z.array(z.string()).describe('Event ids'),
  evidence_lines: z.array(z.object({ id: z.string(), time: z.string(), line: z.string() })).optional()
})
const snapshotOut = z.object({}).loose().describe('A Kea status snapshot (src/kea/snapshot.ts)')
const timeParam = z.string().max(64).optional()
const queryParam = z.string().max(4096).optional().describe('Query language: mac:02-00-00-00-00-0a AND action:allocate, ip:192.0.2.0/24, "phrase", NOT, OR, ( )')

/**
 * keatrail's REST API and web UI, without listen(): tests use inject(), `keatrail run` and
 * `keatrail serve` listen. Every request and response is described by a zod schema (and so
 * in the OpenAPI document at /docs).
 */
export async function buildApp (opts: BuildAppOptions): Promise<FastifyInstance> {
  const cfg: ApiConfig = apiConfigSchema.parse(opts.api ?? {})
  const store = opts.store
  const app = Fastify({
    logger: opts.logger ?? false,
    bodyLimit: 64 * 1024,
    // Query strings are bounded by the schemas (a 10 KB query is refused, not parsed).
    routerOptions: { maxParamLength: 512 }
  }).withTypeProvider<ZodTypeProvider>()
  app.setValidatorCompiler(validatorCompiler)
  // Requests are validated by their zod schemas; responses are not re-validated on the way out
  // (the schemas document them in OpenAPI): zod-encoding a page of 100 events cost more than the
  // query (bench/api). test/api checks the responses' shapes instead.
  app.setSerializerCompiler(() => (data) => JSON.stringify(data))

  // --- errors: one shape, stable codes ----------------------------------------------------
  app.setErrorHandler((err, req, reply) => {
    const e = err as Error & { code?: string, statusCode?: number, validation?: Array<{ instancePath?: string, message?: string }> }
    if (e.validation !== undefined) {
      const first = e.validation[0]
      const where = (first?.instancePath ?? '').replace(/^\//, '').replaceAll('/', '.')
      return reply.status(400).send({ code: 'KEATRAIL_ERR_VALIDATION', message: `${req.routeOptions.url ?? req.url}: ${where === '' ? '' : `${where}: `}${first?.message ?? e.message}` })
    }
    if (isCodedError(e)) return reply.status((e as { statusCode?: number }).statusCode ?? 500).send({ code: e.code, message: e.message })
    if (e.statusCode === 429) return reply.status(429).send({ code: 'KEATRAIL_ERR_RATE_LIMIT', message: e.message })
    if (e.statusCode !== undefined && e.statusCode >= 400 && e.statusCode < 500) return reply.status(e.statusCode).send({ code: 'KEATRAIL_ERR_BAD_REQUEST', message: e.message })
    req.log.error(e)
    return reply.status(500).send({ code: 'KEATRAIL_ERR_INTERNAL', message: 'internal error' })
  })
  app.setNotFoundHandler((req, reply) => reply.status(404).send({ code: 'KEATRAIL_ERR_NOT_FOUND', message: `no route ${req.method} ${req.url.split('?')[0] ?? ''}` }))

  // --- metrics ------------------------------------------------------------------------------
  const registry = opts.registry ?? new Registry()
  collectDefaultMetrics({ register: registry, prefix: 'keatrail_process_' })
  writeLatency(registry)
  const requests = new Counter({ name: 'keatrail_http_requests_total', help: 'API requests by route and status', labelNames: ['route', 'status'], registers: [registry] })
  const status = opts.status ?? {}
  new Gauge({
    name: 'keatrail_source_events', help: 'Per-source counters (received, parsed, unmatched, stored, duplicates, deadLettered, spilled, dropped, errors)', labelNames: ['source', 'counter'], registers: [registry],
    collect () { for (const [src, c] of Object.entries(status.sources?.() ?? {})) for (const [k, v] of Object.entries(c)) this.set({ source: src, counter: k }, v) }
  })
  new Gauge({
    name: 'keatrail_pipeline', help: 'Pipeline counters and queue depth (queued)', labelNames: ['counter'], registers: [registry],
    collect () { for (const [k, v] of Object.entries(status.pipeline?.() ?? {})) this.set({ counter: k }, v) }
  })
  new Gauge({
    name: 'keatrail_kea_poller', help: 'Kea snapshot poller counters', labelNames: ['counter'], registers: [registry],
    collect () { for (const [k, v] of Object.entries(status.kea?.() ?? {})) this.set({ counter: k }, v) }
  })
  new Gauge({ name: 'keatrail_deadletter_events', help: 'Events waiting in the dead-letter store', registers: [registry], collect () { this.set(status.deadLetters?.() ?? 0) } })
  app.addHook('onResponse', async (req, reply) => { requests.inc({ route: req.routeOptions.url ?? 'unknown', status: String(reply.statusCode) }) })

  // --- authentication, rate limit, CORS ---------------------------------------------------
  const keys = cfg.keys.map((k) => ({ ...k, hash: Buffer.from(k.sha256, 'hex') }))
  app.decorateRequest('apiKey', null)
  const protectedPath = (url: string): boolean => url.startsWith('/api/') || url.startsWith('/metrics')
  // fast-querystring leaves malformed percent-encoding as it is: refuse it rather than search for it.
  app.addHook('onRequest', async (req) => {
    const qs = req.url.indexOf('?')
    if (qs < 0) return
    try { decodeURIComponent(req.url.slice(qs + 1).replaceAll('+', ' ')) } catch { throw new ApiBadRequestError('the query string is not valid UTF-8 (percent-encoded)') }
  })
  app.addHook('onRequest', async (req) => {
    if (!protectedPath(req.url)) return
    if (keys.length === 0) { (req as FastifyRequest & { apiKey: unknown }).apiKey = { name: 'anonymous', role: 'admin' }; return }
    const h = req.headers.authorization
    const m = h === undefined ? null : /^Bearer\s+(\S{8,512})$/.exec(h)
    if (m === null) throw new ApiAuthError('an API key is required: Authorization: Bearer <key>')
    const given = sha(m[1] as string)
    const key = keys.find((k) => timingSafeEqual(k.hash, given))
    if (key === undefined) throw new ApiAuthError('unknown API key')
    ;(req as FastifyRequest & { apiKey: unknown }).apiKey = { name: key.name, role: key.role }
  })
  await app.register(fastifyRateLimit, {
    max: cfg.rateLimit.max,
    timeWindow: cfg.rateLimit.windowMs,
    keyGenerator: (req) => ((req as FastifyRequest & { apiKey?: { name: string } | null }).apiKey?.name ?? req.ip),
    allowList: (req) => !protectedPath(req.url)
  })
  if (cfg.cors) {
    app.addHook('onSend', async (_req, reply) => { reply.header('access-control-allow-origin', '*') })
  }
  const keyOf = (req: FastifyRequest): { name: string, role: string } => (req as FastifyRequest & { apiKey: { name: string, role: string } }).apiKey
  const requireRole = (req: FastifyRequest, role: 'read' | 'admin'): void => {
    if (role === 'admin' && keyOf(req).role !== 'admin') throw new ApiForbiddenError('this needs an admin key')
  }

  await app.register(fastifySwagger, {
    openapi: {
      info: { title: 'keatrail API', description: 'Search Kea DHCP logs, lease history and Kea status snapshots.', version: '1' },
      components: { securitySchemes: { apiKey: { type: 'http', scheme: 'bearer' } } },
      security: [{ apiKey: [] }]
    },
    transform: jsonSchemaTransform
  })
  await app.register(fastifySwaggerUi, { routePrefix: '/docs' })

  const audit = (req: FastifyRequest, query: Record<string, unknown>): void => {
    opts.audit?.({ time: new Date().toISOString(), key: keyOf(req).name, ip: req.ip, route: req.routeOptions.url ?? req.url, query })
  }

  // --- routes -------------------------------------------------------------------------------
  const ui = readFileSync(join(packageRoot(), 'ui', 'index.html'), 'utf8')
  app.get('/', { schema: { hide: true } }, async (_req, reply) => reply.type('text/html; charset=utf-8').header('content-security-policy', "default-src 'self'; style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline'; img-src 'self' data:").send(ui))

  app.get('/healthz', { schema: { description: 'The process is up', response: { 200: z.object({ status: z.literal('ok') }) } } }, async () => ({ status: 'ok' as const }))

  const readyOut = z.object({
    ready: z.boolean(),
    store: z.string(),
    sources: z.boolean().describe('Every configured source is running'),
    sourceStates: z.record(z.string(), z.enum(['starting', 'running', 'failed', 'stopped'])).describe('Each configured source\'s state by name')
  })
  app.get('/readyz', {
    schema: { description: 'The store answers and every configured source runs', response: { 200: readyOut, 503: readyOut } }
  }, async (_req, reply) => {
    const h = await store.health()
    const sourceStates = status.sourceStates?.() ?? {}
    const sources = (status.sourcesRunning?.() ?? true) && Object.values(sourceStates).every((s) => s === 'running')
    const ready = h.ok && sources
    return reply.status(ready ? 200 : 503).send({ ready, store: h.detail, sources, sourceStates })
  })

  app.get('/metrics', { schema: { hide: true } }, async (_req, reply) => reply.type(registry.contentType).send(await registry.metrics()))

  app.get('/api/v1/events', {
    schema: {
      description: 'Search events: the query language, a time range, newest first by default, cursor pagination',
      querystring: z.object({
        q: queryParam,
        from: timeParam.describe('RFC 3339 or now-15m, now-24h…'),
        to: timeParam,
        size: z.coerce.number().int().min(1).max(MAX_PAGE_SIZE).default(100),
        sort: z.enum(['asc', 'desc']).default('desc'),
        cursor: z.string().max(512).optional().describe('From the previous page of the same query')
      }).strict(),
      response: { 200: z.object({ events: z.array(eventOut), total: z.object({ value: z.number(), relation: z.enum(['eq', 'gte']) }), cursor: z.string().optional() }) }
    }
  }, async (req) => {
    const q = req.query
    const where = q.q === undefined ? undefined : parseQuery(q.q)
    const range = apiRange(q.from, q.to)
    const hash = cursorHash([q.q ?? '', range.from ?? null, range.to ?? null, q.sort])
    const page = await store.search({
      ...range, sort: q.sort, size: q.size,
      ...(where === undefined ? {} : { where }),
      ...(q.cursor === undefined ? {} : { cursor: unwrapCursor(q.cursor, hash) })
    })
    return { events: page.events, total: page.total, ...(page.cursor === undefined ? {} : { cursor: wrapCursor(page.cursor, hash) }) }
  })

  app.get('/api/v1/events/:id', {
    schema: { description: 'One event, with its raw line (event.original)', params: z.object({ id: z.string().min(1).max(256) }), response: { 200: eventOut } }
  }, async (req) => {
    const e = await store.get(req.params.id)
    if (e === undefined) throw new NotFoundError(`no event ${JSON.stringify(req.params.id)}`)
    return e
  })

  const evidenceLines = async (ids: readonly string[]): Promise<Array<{ id: string, time: string, line: string }>> => {
    return (await store.getMany(ids.slice(0, 20))).map((e) => ({ id: e.event.id, time: e['@timestamp'], line: e.event.original }))
  }

  app.get('/api/v1/leases/at', {
    schema: {
      description: 'Who held an address at a time (an IPv6 address inside a delegated prefix finds the prefix holder), with the evidence lines',
      querystring: z.object({ address: z.string().min(2).max(64), time: z.string().max(64), scope: z.string().max(253).optional() }).strict(),
      response: { 200: z.object({ address: z.string(), time: z.string(), covered: z.boolean(), holders: z.array(holderOut), before: holderOut.optional(), after: holderOut.optional(), coverage: z.object({ from: z.string(), to: z.string() }).optional() }) }
    }
  }, async (req) => {
    audit(req, req.query)
    const a = await holderAt(store.leases, req.query.address, apiTime(req.query.time, 'time'), req.query.scope)
    const withLines = async (h: typeof a.holders[number]): Promise<typeof h & { evidence_lines: Awaited<ReturnType<typeof evidenceLines>> }> => ({ ...h, evidence_lines: await evidenceLines(h.evidence) })
    return {
      ...a,
      holders: await Promise.all(a.holders.map(withLines)),
      ...(a.before === undefined ? {} : { before: await withLines(a.before) }),
      ...(a.after === undefined ? {} : { after: await withLines(a.after) })
    }
  })

  app.get('/api/v1/leases/history', {
    schema: {
      description: 'Every lease interval of an address, prefix or client (exactly one of them), in time order',
      querystring: z.object({
        address: z.string().max(64).optional(), prefix: z.string().max(64).optional(), mac: z.string().max(64).optional(),
        client_id: z.string().max(600).optional(), duid: z.string().max(400).optional(), hostname: z.string().max(253).optional(),
        from: timeParam, to: timeParam, scope: z.string().max(253).optional()
      }).strict(),
      response: { 200: z.object({ intervals: z.array(holderOut) }) }
    }
  }, async (req) => {
    audit(req, req.query)
    const { from, to, ...rest } = req.query
    const range = apiRange(from, to)
    const subject = Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== undefined))
    return { intervals: await history(store.leases, { ...subject, ...range }) }
  })

  app.get('/api/v1/snapshots', {
    schema: {
      description: 'Kea status snapshots by server, service, subnet and time range (oldest first)',
      querystring: z.object({
        server: z.string().max(253).optional(), service: z.enum(['dhcp4', 'dhcp6']).optional(), subnet_id: z.coerce.number().int().optional(),
        from: timeParam, to: timeParam, size: z.coerce.number().int().min(1).max(10_000).default(1000)
      }).strict(),
      response: { 200: z.object({ snapshots: z.array(snapshotOut) }) }
    }
  }, async (req) => {
    const { from, to, ...rest } = req.query
    const q = Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== undefined))
    return { snapshots: await store.snapshots.query({ ...q, ...apiRange(from, to) }) as unknown as Array<Record<string, unknown>> }
  })

  app.get('/api/v1/snapshots/latest', {
    schema: { description: 'The newest snapshot of every server and service', querystring: z.object({ server: z.string().max(253).optional() }).strict(), response: { 200: z.object({ snapshots: z.array(snapshotOut) }) } }
  }, async (req) => ({ snapshots: await store.snapshots.latest(req.query.server) as unknown as Array<Record<string, unknown>> }))

  app.get('/api/v1/alerts', {
    schema: {
      description: 'Pool depletion alerts (events of kind alert), newest first',
      querystring: z.object({ from: timeParam, to: timeParam, size: z.coerce.number().int().min(1).max(MAX_PAGE_SIZE).default(100) }).strict(),
      response: { 200: z.object({ events: z.array(eventOut) }) }
    }
  }, async (req) => {
    const page = await store.search({ ...apiRange(req.query.from, req.query.to), filters: { code: ALERT_CODES }, size: req.query.size, sort: 'desc' })
    return { events: page.events }
  })

  app.get('/api/v1/stats/histogram', {
    schema: {
      description: 'Events per time bucket for a query',
      querystring: z.object({ q: queryParam, from: timeParam, to: timeParam, interval }).strict(),
      response: { 200: z.object({ interval_ms: z.number(), buckets: z.array(z.object({ key: z.number(), count: z.number() })) }) }
    }
  }, async (req) => {
    const ms = intervalMs(req.query.interval)
    const range = apiRange(req.query.from, req.query.to)
    if (ms < 1000) throw new ApiBadRequestError('interval must be at least 1s')
    const span = (range.to ?? Date.now()) - (range.from ?? (range.to ?? Date.now()) - 86_400_000)
    if (range.from !== undefined && span / ms > 5000) throw new ApiBadRequestError(`at most 5000 buckets: ${Math.ceil(span / ms)} requested; widen the interval`)
    const where = req.query.q === undefined ? undefined : parseQuery(req.query.q)
    const buckets = await store.histogram({ ...range, ...(where === undefined ? {} : { where }) }, ms)
    return { interval_ms: ms, buckets }
  })

  app.get('/api/v1/stats/top', {
    schema: {
      description: 'Most frequent values of a field among the matching events',
      querystring: z.object({ field: z.enum(Object.keys(FILTER_FIELDS) as [FilterField, ...FilterField[]]), q: queryParam, from: timeParam, to: timeParam, size: z.coerce.number().int().min(1).max(100).default(10) }).strict(),
      response: { 200: z.object({ field: z.string(), values: z.array(z.object({ value: z.string(), count: z.number() })) }) }
    }
  }, async (req) => {
    const where = req.query.q === undefined ? undefined : parseQuery(req.query.q)
    const values = await store.top(req.query.field, { ...apiRange(req.query.from, req.query.to), ...(where === undefined ? {} : { where }) }, req.query.size)
    return { field: req.query.field, values }
  })

  app.get('/api/v1/deadletter', {
    schema: {
      description: 'Events the store rejected, with the reason (admin key)',
      querystring: z.object({ limit: z.coerce.number().int().min(1).max(1000).default(100) }).strict(),
      response: { 200: z.object({ count: z.number(), entries: z.array(z.object({ seq: z.number(), time: z.string(), store: z.string(), event_id: z.string(), reason: z.string() })) }) }
    }
  }, async (req) => {
    requireRole(req, 'admin')
    const dlq = opts.deadLetters
    if (dlq === undefined) return { count: 0, entries: [] }
    return { count: dlq.count(), entries: dlq.list(req.query.limit).map((e) => ({ seq: e.seq, time: e.time, store: e.store, event_id: e.eventId, reason: e.reason })) }
  })

  app.post('/api/v1/deadletter/retry', {
    schema: {
      description: 'Write dead-lettered events to the store again (admin key); accepted ones leave the dead-letter store',
      querystring: z.object({ limit: z.coerce.number().int().min(1).max(100_000).default(10_000) }).strict(),
      response: { 200: z.object({ retried: z.number(), written: z.number(), duplicates: z.number(), deadLettered: z.number(), remaining: z.number() }) }
    }
  }, async (req) => {
    requireRole(req, 'admin')
    const dlq = opts.deadLetters
    if (dlq === undefined) return { retried: 0, written: 0, duplicates: 0, deadLettered: 0, remaining: 0 }
    return await retryDeadLetters(store, dlq, req.query.limit)
  })

  app.get('/api/v1/whoami', {
    schema: { description: 'The key this request used and its role', response: { 200: z.object({ name: z.string(), role: z.string() }) } }
  }, async (req) => { requireRole(req, 'read'); return keyOf(req) })

  return app
}

/** The SHA-256 hex of an API key, as `api.keys[].sha256` wants it. */
export function apiKeyHash (key: string): string {
  return sha(key).toString('hex')
}
