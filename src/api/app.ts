import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import { PassThrough } from 'node:stream'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import fastifyRateLimit from '@fastify/rate-limit'
import fastifySwagger from '@fastify/swagger'
import fastifySwaggerUi from '@fastify/swagger-ui'
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest, type FastifyServerOptions } from 'fastify'
import { jsonSchemaTransform, validatorCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod'
import { Counter, Gauge, Histogram, Registry } from 'prom-client'
import { z } from 'zod'
import { ApiAuthError, ApiBadRequestError, ApiForbiddenError, ApiCrossSiteError, ApiHostNotAllowedError, ApiRateLimitError, AUDIT_LOG_CODES, AuditQuotaError, AuditWriteError, CLIENT_MESSAGE_5XX, CursorInvalidError, NotFoundError, QueryBusyError, isCodedError } from '../errors.js'
import { historyPage, holderAt } from '../leases/query.js'
import { ATTRIBUTION_COLUMNS, attributeRows, MAX_ATTRIBUTE_ROWS } from '../leases/attribute.js'
import { LocalTimeResolver } from '../parse/time/zone.js'
import { checkReportQuestion, evidenceReport, type EvidenceReport } from '../leases/report.js'
import { reportHtml } from '../leases/report-html.js'
import { END_REASONS } from '../leases/types.js'
import { keaEventSchema } from '../parse/event.js'
import { packageRoot, version } from '../paths.js'
import { parseQuery } from '../query/parse.js'
import { evidenceLineOf, FILTER_FIELDS, MAX_PAGE_SIZE, type EvidenceLine, type FilterField, type SearchRequest, type Store } from '../store/types.js'
import { retryDeadLetters, type DeadLetterStore } from '../store/deadletter.js'
import { LOOPBACK, apiConfigSchema, corsNeedsKeys, type ApiConfig } from './config.js'
import { apiRange, apiTime } from './time.js'
import { registerMetrics } from './metrics.js'
import { Throttled } from '../throttled.js'
import type { SourceFlow } from '../pipeline/pipeline.js'

/** Who a request authenticated as. */
export interface ApiKeyIdentity { name: string, role: 'read' | 'admin' }

declare module 'fastify' {
  interface FastifyRequest {
    /** The key that authenticated this request; null on public routes and before authentication. */
    apiKey: ApiKeyIdentity | null
  }
  interface FastifyContextConfig {
    /**
     * Served without a key (the UI page, health, the OpenAPI explorer). Authentication is decided
     * from the route the router matched, never from the URL text: every other route, and every
     * unmatched path, needs a key (deny by default).
     */
    public?: boolean
    /** admin: the route changes state or shows what only operators may see; unset: any key. */
    role?: 'admin'
    /**
     * false: not written to the audit log (metrics scrapes, whoami: they read no stored data);
     * 'before': also recorded before the handler acts (status 0), refused if that cannot be written.
     */
    audit?: boolean | 'before'
  }
  interface FastifyReply {
    /** Sends `json`, JSON text made elsewhere (a reader worker's page), as the response body without serialising it again. */
    sendJsonText: (json: string | Buffer) => FastifyReply
  }
}

/**
 * One line of the audit log: who read what, and what they got. A batch attribution writes one
 * such entry with a `batch` id (its query: the number of rows), then one AuditRow per row.
 */
export interface AuditEntry { time: string, key: string, ip: string, method: string, route: string, params: Record<string, unknown>, query: Record<string, unknown>, status: number, batch?: string }
/** One row of a batch attribution: the address and time asked and the answer; who asked, from where and when is its batch's AuditEntry. */
export interface AuditRow { batch: string, row: number, address: string, at: string, answer: string }
export type AuditRecord = AuditEntry | AuditRow

/** What the running service tells the API about itself (metrics, readiness). */
export interface ServiceStatus {
  /** Per-source counters of the sources themselves (received bytes, spilled, dropped, errors). */
  sources?: () => Record<string, Record<string, number>>
  /** Per-source events as the pipeline counted them (parse status, stored, duplicates, dead-lettered). */
  flows?: () => Record<string, SourceFlow>
  pipeline?: () => Record<string, number>
  kea?: () => Record<string, number>
  deadLetters?: () => number
  /** Dead letters lost because the dead-letter store was full. */
  deadLettersDropped?: () => number
  /** Sources still running. */
  sourcesRunning?: () => boolean
  /** Lease keys rebuilt because their stored rows could not be read. */
  leaseRepairs?: () => number
  /** Lease wipes not applied (more than the store keeps). */
  leaseWipesIgnored?: () => number
  /** Each configured source's state; /readyz is 503 unless all are running. */
  sourceStates?: () => Record<string, 'starting' | 'running' | 'failed' | 'stopped'>
}

export interface BuildAppOptions {
  store: Store
  api?: z.input<typeof apiConfigSchema>
  /**
   * Records one audit entry of the key named; throws when it could not (the read it records is
   * then refused, 503), AuditQuotaError when the key has used its share of the log (429).
   */
  audit?: (e: AuditRecord, key: string) => void
  /** Throws AuditQuotaError when less than `bytes` is left of the key's share of the audit log: its read is refused before it runs. */
  auditAdmit?: (key: string, bytes: number) => void
  /** Bytes left in the audit log under api.auditLogMaxBytes (Infinity: unbounded): /readyz and a gauge show it. */
  auditRoom?: () => number
  status?: ServiceStatus
  /** Fastify's logger (pino) or its options; off by default in tests. */
  logger?: FastifyServerOptions['logger']
  /** The service's own pino logger: request errors (HTTP 5xx) are logged to it; requests themselves at debug. */
  loggerInstance?: FastifyBaseLogger
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

/** A Host header (or absolute-form authority) naming this machine: name or address, optional port. */
const LOOPBACK_AUTHORITY = /^(?:localhost|127(?:\.\d{1,3}){3}|\[::1\])(?::\d{1,5})?$/i

const sha = (s: string): Buffer => createHash('sha256').update(s).digest()

function cursorHash (parts: unknown[]): string {
  return createHash('sha256').update(JSON.stringify(parts)).digest('base64url').slice(0, 12)
}

/**
 * Under this many bytes left, the audit log counts as full (/readyz): a read's entry is ~210–240
 * bytes, ~870 with a 512-character query and a cursor, a batch attribution's first ~500; a
 * request with many long parameters (each cut at 512 characters) can take more, and be refused
 * while more than this is left.
 */
export const AUDIT_ENTRY_ROOM = 1024

/**
 * Request parameters as the audit log keeps them: a request that failed validation still has
 * its raw values, so each is cut (a 16 KiB query string must not become a 16 KiB audit line).
 */
function auditable (values: unknown): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  if (values === null || typeof values !== 'object') return out
  for (const [k, v] of Object.entries(values as Record<string, unknown>).filter(([, v]) => v !== undefined).slice(0, 16)) {
    out[k.slice(0, 64)] = typeof v === 'string' ? v.slice(0, 512) : typeof v === 'number' || typeof v === 'boolean' ? v : String(v).slice(0, 512)
  }
  return out
}

/** On every answer: no MIME sniffing, no Referer. */
const BASE_HEADERS = { 'x-content-type-options': 'nosniff', 'referrer-policy': 'no-referrer' }
/** API answers are data: they load nothing and are never framed. */
const API_CSP = "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

/**
 * The web UI's policy: its inline <script> and <style> run by their SHA-256 (computed from the
 * page as served), so no 'unsafe-inline': text injected into the page could not run.
 */
export function pageCsp (html: string): string {
  const hashes = (tag: string): string => [...html.matchAll(new RegExp(`<${tag}(?:\\s[^>]*)?>([\\s\\S]*?)</${tag}>`, 'g'))]
    .map((m) => `'sha256-${createHash('sha256').update(m[1] ?? '').digest('base64')}'`).join(' ')
  return `default-src 'none'; script-src ${hashes('script')}; style-src ${hashes('style')}; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`
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

/** Histogram bounds: the widest bucket, the most buckets, and the span when from is not given. */
const MAX_INTERVAL_MS = 366 * 86_400_000
const MAX_BUCKETS = 5000
const DEFAULT_HISTOGRAM_SPAN_MS = 86_400_000
const interval = z.string().regex(/^(\d{1,9})(ms|s|m|h|d)?$/).describe('Bucket width: 30s, 5m, 1h, 1d or milliseconds; from 1s to 366d, at most 5000 buckets between from (default: to minus 24 h) and to (default: now)')
function intervalMs (s: string): number {
  const m = /^(\d+)(ms|s|m|h|d)?$/.exec(s) as RegExpExecArray
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[(m[2] ?? 'ms') as 'ms']
  return Number(m[1]) * unit
}

const eventOut = keaEventSchema.loose()
/** The head of an events page sent from its serialised events (a reader worker's bytes). */
const EVENTS_OPEN = Buffer.from('{"events":')
const holderOut = z.object({
  lease: z.string().describe('The address, or prefix with length'),
  address: z.string().optional(),
  prefix: z.string().optional(),
  type: z.enum(['V4', 'IA_NA', 'IA_PD']),
  scope: z.string().describe('The Kea server (host.name), or the lease domain (leases.domains) of the servers behind it'),
  servers: z.array(z.string()).optional().describe('In a lease domain: the servers whose lines the interval holds'),
  mac: z.string().optional(), hwaddr: z.string().optional(), client_id: z.string().optional(), duid: z.string().optional(),
  duid_ll: z.string().optional(), iaid: z.number().optional(), hostname: z.string().optional(),
  start: z.string().nullable(), end: z.string().nullable(),
  end_reason: z.enum(END_REASONS),
  certainty: z.enum(['observed', 'inferred', 'gap']),
  origin: z.enum(['log', 'kea-state']),
  evidence: z.array(z.string()).describe('Event ids'),
  evidence_lines: z.array(z.object({ id: z.string(), time: z.string(), line: z.string() })).optional()
})
const snapshotOut = z.object({}).loose().describe('A Kea status snapshot (src/kea/snapshot.ts)')
const timeParam = z.string().max(64).optional()
/** A batch attribution's body: 100,000 rows of an address, a time and a few short fields. */
const ATTRIBUTE_BODY_BYTES = 32 * 1024 * 1024

const queryParam = z.string().max(4096).optional().describe('Query language: mac:02-00-00-00-00-0a AND action:allocate, ip:192.0.2.0/24, "phrase", NOT, OR, ( )')

/**
 * keatrail's REST API and web UI, without listen(): tests use inject(), `keatrail run` and
 * `keatrail serve` listen. Every request and response is described by a zod schema (and so
 * in the OpenAPI document at /docs).
 */
export async function buildApp (opts: BuildAppOptions): Promise<FastifyInstance> {
  const cfg: ApiConfig = apiConfigSchema.parse(opts.api ?? {})
  const store = opts.store
  corsNeedsKeys(cfg)
  const app = Fastify({
    ...(opts.loggerInstance === undefined ? { logger: opts.logger ?? false } : { loggerInstance: opts.loggerInstance.child({ component: 'api' }, { level: opts.loggerInstance.level === 'debug' || opts.loggerInstance.level === 'trace' ? opts.loggerInstance.level : 'warn' }) }),
    bodyLimit: 64 * 1024,
    // A client that dribbles its request (one byte every few seconds) would otherwise hold a
    // socket for ever (fastify's default is no limit).
    requestTimeout: cfg.requestTimeoutMs,
    // Node enforces the request timeout only when the server is created with it (fastify sets
    // it afterwards, which alone left a dribbling client connected for minutes), and checks it
    // on an interval (default 30 s): check often enough that the timeout means what it says.
    http: { requestTimeout: cfg.requestTimeoutMs, connectionsCheckingInterval: Math.min(5_000, cfg.requestTimeoutMs) },
    // Query strings are bounded by the schemas (a 10 KB query is refused, not parsed).
    routerOptions: { maxParamLength: 512 },
    // A URL the router cannot even decode is answered before any hook (and so without the
    // headers below): give it the same shape and headers.
    frameworkErrors: (err, _req, res) => {
      // Typed for this reply's (empty) schema; the plain reply takes any status.
      const reply = res as unknown as FastifyReply
      void reply.headers(BASE_HEADERS).header('content-security-policy', API_CSP)
        .status(err.statusCode ?? 400).send({ code: 'KEATRAIL_ERR_BAD_REQUEST', message: err.code === 'FST_ERR_MAX_PARAM_LENGTH' ? 'a path parameter is too long' : 'the request URL is not valid' })
    }
  }).withTypeProvider<ZodTypeProvider>()
  app.setValidatorCompiler(validatorCompiler)
  // Requests are validated by their zod schemas; responses are not re-validated on the way out
  // (the schemas document them in OpenAPI): zod-encoding a page of 100 events cost more than the
  // query (bench/api). test/api checks the responses' shapes instead.
  app.setSerializerCompiler(() => (data) => JSON.stringify(data))
  // A string or Buffer body is sent as it is (fastify serialises only other payloads).
  app.decorateReply('sendJsonText', function (this: FastifyReply, json: string | Buffer) { return this.type('application/json; charset=utf-8').send(json) })

  // --- errors: one shape, stable codes ----------------------------------------------------
  /** Keys whose query ran past the store's deadline, and until when they wait (see timeoutPenaltyMs). */
  const penalized = new Map<string, number>()
  app.setErrorHandler((err, req, reply) => {
    const e = err as Error & { code?: string, statusCode?: number, validation?: Array<{ instancePath?: string, message?: string }> }
    if (e.code === 'KEATRAIL_ERR_QUERY_TIMEOUT' && req.apiKey !== null && cfg.rateLimit.timeoutPenaltyMs > 0) {
      penalized.set(req.apiKey.name, Date.now() + cfg.rateLimit.timeoutPenaltyMs)
    }
    if (e.validation !== undefined) {
      const first = e.validation[0]
      const where = (first?.instancePath ?? '').replace(/^\//, '').replaceAll('/', '.')
      return reply.status(400).send({ code: 'KEATRAIL_ERR_VALIDATION', message: `${req.routeOptions.url ?? req.url}: ${where === '' ? '' : `${where}: `}${first?.message ?? e.message}` })
    }
    // Only our own coded errors and fastify's (FST_…) say what status they are. An error from a
    // library (an Elasticsearch ResponseError carries the cluster's 401/403/429 and its text)
    // is an internal failure, not the client's: 500 with nothing of its text.
    const trusted = isCodedError(e as unknown) || (e.code?.startsWith('FST_') ?? false)
    const status = trusted && e.statusCode !== undefined && e.statusCode >= 400 && e.statusCode < 600 ? e.statusCode : 500
    const code = isCodedError(e) ? e.code : status < 500 ? 'KEATRAIL_ERR_BAD_REQUEST' : 'KEATRAIL_ERR_INTERNAL'
    // A 4xx is the client's mistake, said plainly. A 5xx is ours: its text (SQLite's or
    // Elasticsearch's message, a stack) describes the internals and goes to the log, not out.
    if (status < 500) return reply.status(status).send({ code, message: e.message })
    req.log.error({ err: e, code }, `${req.method} ${req.routeOptions.url ?? '(no route)'} failed`)
    // Except our own bounds (timeout, busy), whose message tells the client what to do.
    if (CLIENT_MESSAGE_5XX.has(code)) return reply.status(status).send({ code, message: e.message })
    return reply.status(status).send({ code, message: code.startsWith('KEATRAIL_ERR_STORE') ? 'the store could not answer this query (the service log has the detail)' : 'internal error' })
  })
  app.setNotFoundHandler((req, reply) => reply.status(404).send({ code: 'KEATRAIL_ERR_NOT_FOUND', message: `no route ${req.method} ${req.url.split('?')[0] ?? ''}` }))

  // --- metrics ------------------------------------------------------------------------------
  const registry = opts.registry ?? new Registry()
  const status = opts.status ?? {}
  registerMetrics(registry, status)
  writeLatency(registry)
  const requests = new Counter({ name: 'keatrail_http_requests_total', help: 'API requests by route and status', labelNames: ['route', 'status'], registers: [registry] })
  app.addHook('onResponse', async (req, reply) => { requests.inc({ route: req.routeOptions.url ?? 'unknown', status: String(reply.statusCode) }) })

  // --- authentication, rate limit, CORS ---------------------------------------------------
  // The decision comes from the route the router matched (req.routeOptions.config), not from
  // req.url: the router decodes the path (/%61pi/… is /api/…) and strips an absolute-form target
  // (GET http://x/api/…), so any test on the raw URL text can be walked around.
  const keys = cfg.keys.map((k) => ({ ...k, hash: Buffer.from(k.sha256, 'hex') }))
  app.decorateRequest('apiKey', null)
  /** The key of an Authorization header, or why there is none. */
  const identify = (header: string | undefined): ApiKeyIdentity | string => {
    if (keys.length === 0) return { name: 'anonymous', role: 'admin' }
    const m = header === undefined ? null : /^Bearer\s+(\S{8,512})$/.exec(header)
    if (m === null) return 'an API key is required: Authorization: Bearer <key>'
    const given = sha(m[1] as string)
    const key = keys.find((k) => timingSafeEqual(k.hash, given))
    return key === undefined ? 'unknown API key' : { name: key.name, role: key.role }
  }
  // Limits are applied by the authentication hook itself (global: false), so that a refused
  // attempt is counted too: per client address, with its own smaller budget.
  await app.register(fastifyRateLimit, {
    global: false,
    max: cfg.rateLimit.max,
    timeWindow: cfg.rateLimit.windowMs,
    errorResponseBuilder: (_req, ctx) => new ApiRateLimitError(ctx.after)
  })
  const keyLimit = app.rateLimit({ keyGenerator: (req) => `key:${req.apiKey?.name ?? ''}` })
  const refusedLimit = app.rateLimit({ max: cfg.rateLimit.failedAuthMax, keyGenerator: (req) => `refused:${req.ip}` })
  const publicLimit = app.rateLimit({ keyGenerator: (req) => `public:${req.ip}` })
  // Refusals are logged, but one line per 10 s at most (the first at once), with how many there
  // were and from how many addresses: a client guessing keys, refused and then rate limited,
  // made one line per request (25,607 lines, 4.4 MB in 10 s from one client).
  const refusedFrom = new Set<string>()
  const refusedLog = new Throttled((count, f) => {
    app.log.warn({ code: 'KEATRAIL_ERR_AUTH', count, clients: refusedFrom.size, ...f }, 'API requests refused: no valid key (count: since the last such line; ip, route: the last one)')
    refusedFrom.clear()
  })
  app.addHook('onClose', async () => { refusedLog.stop() })
  // DNS rebinding: without keys, any web page the operator visits could point its own name at
  // 127.0.0.1 and read the API through the browser. Such requests carry the page's name in Host
  // (and in an absolute-form target): answer only loopback names.
  if (keys.length === 0 && LOOPBACK.test(cfg.host)) {
    app.addHook('onRequest', async (req) => {
      const absolute = /^[a-z][a-z0-9+.-]*:\/\/([^/?#]*)/i.exec(req.url)
      for (const host of [req.headers.host, ...(absolute === null ? [] : [absolute[1]])]) {
        if (host === undefined || !LOOPBACK_AUTHORITY.test(host)) throw new ApiHostNotAllowedError(JSON.stringify(host ?? '').slice(0, 100))
      }
    })
  }
  // Cross-site request forgery: without keys every request is an anonymous admin, and a page on
  // any site can make the browser send a GET or a simple POST to keatrail (it cannot read the
  // answer, but the query runs and the admin POST acts). Browsers say where a request comes
  // from: only the UI's own origin (the one the request is addressed to), or no browser at all,
  // is served. With keys a browser sends none by itself, so a forged request is refused anyway.
  if (keys.length === 0) {
    app.addHook('onRequest', async (req) => {
      const site = req.headers['sec-fetch-site']
      const origin = req.headers.origin
      const own = origin !== undefined && req.headers.host !== undefined && (origin === `http://${req.headers.host}` || origin === `https://${req.headers.host}`)
      if ((site !== undefined && site !== 'same-origin' && site !== 'none') || (origin !== undefined && !own)) {
        throw new ApiCrossSiteError(JSON.stringify(origin ?? site ?? '').slice(0, 100))
      }
    })
  }
  app.addHook('onRequest', async (req, reply) => {
    const route = req.routeOptions.config
    // Public routes are limited per address with the keys' budget: /readyz asks the store.
    if (route.public === true) { await publicLimit.call(app, req, reply); return }
    const key = identify(req.headers.authorization)
    if (typeof key === 'string') {
      // Refusals are logged (never the header) and end the connection: a client without a key
      // gets no kept-alive socket to hold.
      if (refusedFrom.size < 10_000) refusedFrom.add(req.ip)
      refusedLog.hit({ ip: req.ip, route: req.routeOptions.url ?? '(no route)' })
      reply.header('connection', 'close')
      await refusedLimit.call(app, req, reply)
      throw new ApiAuthError(key)
    }
    req.apiKey = key
    await keyLimit.call(app, req, reply)
    const until = penalized.get(key.name)
    if (until !== undefined) {
      if (Date.now() < until) throw new ApiRateLimitError(`${Math.ceil((until - Date.now()) / 1000)} seconds: a query of this key ran past the store's deadline (narrow it: a shorter time range, fewer OR terms, smaller CIDR ranges)`)
      penalized.delete(key.name)
    }
    if (route.role === 'admin' && key.role !== 'admin') throw new ApiForbiddenError('this needs an admin key')
  })
  // fast-querystring leaves malformed percent-encoding as it is: refuse it rather than search for it.
  app.addHook('onRequest', async (req) => {
    const qs = req.url.indexOf('?')
    if (qs < 0) return
    try { decodeURIComponent(req.url.slice(qs + 1).replaceAll('+', ' ')) } catch { throw new ApiBadRequestError('the query string is not valid UTF-8 (percent-encoded)') }
  })
  // Every answer: no MIME sniffing (a JSON body holding log text is never run as HTML), no
  // Referer leaving with a URL that holds a query, no framing; API answers load nothing.
  app.addHook('onSend', async (req, reply) => {
    reply.headers(BASE_HEADERS)
    // Answers with data are for the client that asked, not for a shared or browser cache.
    if (req.routeOptions.config.public !== true) reply.header('cache-control', 'no-store')
    if (reply.getHeader('content-security-policy') === undefined) reply.header('content-security-policy', API_CSP)
  })
  if (cfg.cors) {
    app.addHook('onSend', async (_req, reply) => { reply.header('access-control-allow-origin', '*') })
  }
  /** The authenticated key (every non-public route has one by the time its handler runs). */
  const keyOf = (req: { apiKey: ApiKeyIdentity | null }): ApiKeyIdentity => {
    if (req.apiKey === null) throw new ApiAuthError('an API key is required: Authorization: Bearer <key>')
    return req.apiKey
  }

  await app.register(fastifySwagger, {
    openapi: {
      info: { title: 'keatrail API', description: 'Search Kea DHCP logs, lease history and Kea status snapshots.', version: '1' },
      components: { securitySchemes: { apiKey: { type: 'http', scheme: 'bearer' } } },
      security: [{ apiKey: [] }]
    },
    transform: jsonSchemaTransform
  })
  // The explorer's page and assets are public: marked on every route the plugin adds, in its own
  // context so that no other route is.
  await app.register(async (docs) => {
    docs.addHook('onRoute', (r) => { r.config = { ...r.config, public: true } })
    await docs.register(fastifySwaggerUi, {
      routePrefix: '/docs',
      // swagger-ui's own policy (hashes of its inline code), not framable, and without
      // upgrade-insecure-requests: keatrail usually serves plain HTTP on loopback.
      staticCSP: true,
      transformStaticCSP: (h) => h.replace("frame-ancestors 'self'", "frame-ancestors 'none'").replace(/\s*upgrade-insecure-requests;?/, '')
    })
  })

  // Every authenticated request is audited, in one place: events, stats, alerts and snapshots
  // reveal who had which address as much as the lease routes do. Refused requests (no key) are
  // not: they read nothing, and are rate limited per address instead. The entry is written
  // before the answer leaves, with the status it goes with (onSend: the last step before the
  // bytes); an answer whose entry cannot be written (disk full) is not sent: 503 instead, so no
  // read goes unrecorded (it did: 200 with data, the entry lost to ENOSPC).
  const auditFailures = new Counter({ name: 'keatrail_audit_write_failures_total', help: 'Audit entries that could not be written (disk full, I/O error): each read was refused (503) or its batch attribution cut off; logged, throttled', registers: [registry] })
  /** Bytes left under api.auditLogMaxBytes; a file whose size cannot be asked counts as full. */
  const auditRoom = (): number => {
    try { return opts.auditRoom?.() ?? Infinity } catch { return 0 }
  }
  if (opts.audit !== undefined && opts.auditRoom !== undefined) {
    // Alert before reads are refused (the failure counter moves only once they are).
    new Gauge({ name: 'keatrail_audit_log_room_bytes', help: 'Bytes left in the audit log under api.auditLogMaxBytes: reads are refused once an entry does not fit (rotate it)', registers: [registry], collect () { this.set(Math.max(0, auditRoom())) } })
  }
  const quotaRefusals = new Counter({ name: 'keatrail_audit_quota_refusals_total', help: 'Reads refused (429) because their key had used its share of the audit log (api.auditKeyShare) since the log was rotated', labelNames: ['key'], registers: [registry] })
  const auditFailLog = new Throttled((count, f) => { app.log.error({ code: AUDIT_LOG_CODES.write, count, ...f }, 'Audit entries could not be written: the reads they record were refused (count: since the last such line).') })
  /** One throttled line per key (keys are configured: a bounded set). */
  const quotaLogs = new Map<string, Throttled>()
  const quotaLog = (key: string): Throttled => {
    let log = quotaLogs.get(key)
    if (log === undefined) {
      log = new Throttled((count, f) => { app.log.warn({ code: AUDIT_LOG_CODES.quota, count, ...f }, 'A key has used its share of the audit log (api.auditKeyShare): its reads are refused until the log is rotated (count: since the last such line).') })
      quotaLogs.set(key, log)
    }
    return log
  }
  app.addHook('onClose', async () => { auditFailLog.stop(); for (const log of quotaLogs.values()) log.stop() })
  const AUDIT_REFUSED = JSON.stringify({ code: 'KEATRAIL_ERR_AUDIT_WRITE', message: new AuditWriteError().message })
  /** Counts and logs a refusal for the key's share; the answer's body. */
  const quotaRefused = (err: InstanceType<typeof AuditQuotaError>, key: string, route: string): string => {
    quotaRefusals.inc({ key })
    quotaLog(key).hit({ key, route })
    return JSON.stringify({ code: err.code, message: err.message })
  }
  /**
   * Writes one audit record of `key`'s: undefined, or the refusal to answer instead (a failed
   * write: 503, counted and logged; the key past its share: 429, counted).
   */
  const record = (e: AuditRecord, route: string, key: string): { status: number, body: string, error: Error } | undefined => {
    if (opts.audit === undefined) return undefined
    try {
      opts.audit(e, key)
      return undefined
    } catch (err) {
      if (err instanceof AuditQuotaError) return { status: 429, body: quotaRefused(err, key, route), error: err }
      auditFailures.inc()
      auditFailLog.hit({ route, error: String((err as Error)?.message ?? err).slice(0, 300) })
      return { status: 503, body: AUDIT_REFUSED, error: new AuditWriteError() }
    }
  }
  const routeOf = (req: FastifyRequest): string => req.routeOptions.url ?? `(no route) ${(req.url.split('?')[0] ?? '').slice(0, 256)}`
  /** Requests whose route writes its own entries (a batch attribution: its entry, then one per row). */
  const selfAudited = new WeakSet<object>()
  const auditEntry = (req: FastifyRequest, key: ApiKeyIdentity, status: number): AuditEntry => ({
    time: new Date().toISOString(), key: key.name, ip: req.ip, method: req.method, route: routeOf(req),
    params: auditable(req.params), query: auditable(req.query), status
  })
  // A route that changes state (`audit: 'before'`: the dead-letter retry) is recorded before it
  // acts, with status 0 (started): an entry that cannot be written refuses it (503) with nothing
  // done. Its outcome is recorded as any answer's, below; if only that entry is lost, the answer
  // still goes out (the action is on record, and was done). Audited after the fact only, the
  // retry ran and moved every dead letter while its client was told 503 and nothing was recorded.
  // A key past its share of the log is refused before its read runs (the read would be refused
  // at its entry anyway, after costing the store).
  app.addHook('preHandler', async (req, reply) => {
    if (opts.audit === undefined || req.apiKey === null || req.routeOptions.config.audit === false) return
    // Room for the entry (its parameters as long as the request's, at most), two for a route
    // recorded before it acts: its second could otherwise be refused after the action was done.
    const room = (AUDIT_ENTRY_ROOM + req.url.length) * (req.routeOptions.config.audit === 'before' ? 2 : 1)
    try { opts.auditAdmit?.(req.apiKey.name, room) } catch (err) {
      // Any other failure (the file's size not asked) is left to the entry's write to answer.
      if (err instanceof AuditQuotaError) {
        selfAudited.add(req)
        return await reply.code(429).type('application/json; charset=utf-8').send(quotaRefused(err, req.apiKey.name, routeOf(req)))
      }
    }
    if (req.routeOptions.config.audit !== 'before') return
    const refused = record(auditEntry(req, req.apiKey, 0), routeOf(req), req.apiKey.name)
    if (refused !== undefined) {
      selfAudited.add(req)
      return await reply.code(refused.status).type('application/json; charset=utf-8').send(refused.body)
    }
  })
  app.addHook('onSend', async (req, reply, payload) => {
    if (opts.audit === undefined || req.apiKey === null || req.routeOptions.config.audit === false || selfAudited.has(req)) return payload
    const refused = record(auditEntry(req, req.apiKey, reply.statusCode), routeOf(req), req.apiKey.name)
    if (refused === undefined || (req.routeOptions.config.audit === 'before' && reply.statusCode < 500)) return payload
    if (typeof (payload as { destroy?: unknown } | null)?.destroy === 'function') (payload as { destroy: () => void }).destroy()
    reply.removeHeader('content-disposition')
    reply.code(refused.status).header('content-type', 'application/json; charset=utf-8').header('content-security-policy', API_CSP)
    return refused.body
  })

  // --- routes -------------------------------------------------------------------------------
  const ui = readFileSync(join(packageRoot(), 'ui', 'index.html'), 'utf8')
  const uiCsp = pageCsp(ui)
  app.get('/', { schema: { hide: true }, config: { public: true } }, async (_req, reply) => reply.type('text/html; charset=utf-8').header('content-security-policy', uiCsp).send(ui))

  app.get('/healthz', { config: { public: true }, schema: { description: 'The process is up', response: { 200: z.object({ status: z.literal('ok') }) } } }, async () => ({ status: 'ok' as const }))

  const readyOut = z.object({
    ready: z.boolean(),
    store: z.string(),
    sources: z.boolean().describe('Every configured source is running'),
    sourceStates: z.record(z.string(), z.enum(['starting', 'running', 'failed', 'stopped'])).describe('Each configured source\'s state by name'),
    audit: z.enum(['ok', 'full', 'off']).describe('The audit log: full when less than ~1 KiB is left under api.auditLogMaxBytes (reads are refused until it is rotated; small ones may still pass); off when this API keeps none. Not part of `ready`: collection goes on')
  })
  app.get('/readyz', {
    config: { public: true },
    schema: { description: 'The store answers and every configured source runs; whether the audit log is full (reads refused) is said beside it', response: { 200: readyOut, 503: readyOut } }
  }, async (req, reply) => {
    const h = await store.health()
    const sourceStates = status.sourceStates?.() ?? {}
    const sources = (status.sourcesRunning?.() ?? true) && Object.values(sourceStates).every((s) => s === 'running')
    // Asked each time (one fstat): a rotation makes room without a read to notice it. Not a
    // reason to be unready: `keatrail run` still collects, and a health check that restarts an
    // unready process cannot empty a full file (a restart loop stopping collection each time).
    const audit = opts.audit === undefined ? 'off' as const : auditRoom() < AUDIT_ENTRY_ROOM ? 'full' as const : 'ok' as const
    const ready = h.ok && sources
    // Public: the store's own detail (its path, its error text) goes to the log, not to anyone asking.
    if (!h.ok) req.log.warn({ detail: h.detail }, 'readiness: the store does not answer')
    return reply.status(ready ? 200 : 503).send({ ready, store: `${store.kind} ${h.ok ? 'ok' : 'unavailable'}`, sources, sourceStates, audit })
  })

  app.get('/metrics', { schema: { hide: true }, config: { audit: false } }, async (_req, reply) => reply.type(registry.contentType).send(await registry.metrics()))

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
  }, async (req, reply) => {
    const q = req.query
    const where = q.q === undefined ? undefined : parseQuery(q.q)
    const range = apiRange(q.from, q.to)
    // The query as written, not its resolved times: `from=now-1h` resolves anew on each page (a
    // relative window moves with the clock), and bound to milliseconds no next page was accepted.
    const hash = cursorHash([q.q ?? '', q.from ?? null, q.to ?? null, q.sort])
    const search: SearchRequest = {
      ...range, sort: q.sort, size: q.size,
      ...(where === undefined ? {} : { where }),
      ...(q.cursor === undefined ? {} : { cursor: unwrapCursor(q.cursor, hash) })
    }
    if (store.searchSerialized !== undefined) {
      // The same JSON as below, its events serialised where the read ran (Store.searchSerialized).
      const page = await store.searchSerialized(search)
      const cursor = page.cursor === undefined ? '' : `,"cursor":${JSON.stringify(wrapCursor(page.cursor, hash))}`
      return await reply.sendJsonText(Buffer.concat([EVENTS_OPEN, page.eventsJson, Buffer.from(`,"total":${JSON.stringify(page.total)}${cursor}}`)]))
    }
    const page = await store.search(search)
    return { events: page.events, total: page.total, ...(page.cursor === undefined ? {} : { cursor: wrapCursor(page.cursor, hash) }) }
  })

  app.get('/api/v1/events/:id', {
    schema: { description: 'One event, with its raw line (event.original)', params: z.object({ id: z.string().min(1).max(256) }), response: { 200: eventOut } }
  }, async (req) => {
    const e = await store.get(req.params.id)
    if (e === undefined) throw new NotFoundError(`no event ${JSON.stringify(req.params.id)}`)
    return e
  })

  /**
   * The evidence lines of every interval of one answer, in one read: up to EVIDENCE_LINES per
   * interval (20: the allocation, the renewals kept and the end), and at most MAX_PAGE_BYTES in
   * all (getMany's bound), the first intervals first: forged 60 KB lines could otherwise make an
   * answer of many holders hundreds of MB.
   */
  const EVIDENCE_LINES = 20
  const evidenceLines = async <H extends { evidence: string[] }>(hs: ReadonlyArray<H | undefined>): Promise<(h: H) => H & { evidence_lines: EvidenceLine[] }> => {
    const ids = hs.flatMap((h) => h === undefined ? [] : h.evidence.slice(0, EVIDENCE_LINES))
    const lines = store.evidence === undefined ? (await store.getMany(ids)).map(evidenceLineOf) : await store.evidence(ids)
    const found = new Map(lines.map((l) => [l.id, l]))
    return (h) => ({ ...h, evidence_lines: h.evidence.slice(0, EVIDENCE_LINES).flatMap((id) => found.get(id) ?? []) })
  }

  app.get('/api/v1/leases/at', {
    schema: {
      description: 'Who held an address at a time (an IPv6 address inside a delegated prefix finds the prefix holder), with the evidence lines',
      querystring: z.object({ address: z.string().min(2).max(64), time: z.string().max(64), scope: z.string().max(253).optional().describe('A Kea server (host.name) or lease domain; a server in a lease domain means its domain') }).strict(),
      response: { 200: z.object({ address: z.string(), time: z.string(), covered: z.boolean(), holders: z.array(holderOut), before: holderOut.optional(), after: holderOut.optional(), coverage: z.object({ from: z.string(), to: z.string() }).optional(), truncated: z.boolean().optional().describe('More holders than one answer holds (1,000)') }) }
    }
  }, async (req) => {
    const a = await holderAt(store.leases, req.query.address, apiTime(req.query.time, 'time'), req.query.scope)
    const withLines = await evidenceLines([...a.holders, a.before, a.after])
    return {
      ...a,
      holders: a.holders.map(withLines),
      ...(a.before === undefined ? {} : { before: withLines(a.before) }),
      ...(a.after === undefined ? {} : { after: withLines(a.after) })
    }
  })

  // Batch attribution (issue 22): one batch at a time per process — a 100,000-row batch is
  // ~20 s of the store's reads; a second waits its turn by being refused (503, retry later).
  let attributing = false
  // Stops the running batch (at most one): a shutdown ends it at once rather than waiting for
  // up to 100,000 rows, or for a client that stopped reading to be cut off by attributeStallMs.
  let stopBatch: (() => void) | undefined
  app.addHook('preClose', async () => {
    stopBatch?.()
    // Any other response still being sent (a slow reader of a large page) is cut off after the grace.
    setTimeout(() => { app.server.closeAllConnections() }, cfg.shutdownGraceMs).unref()
  })
  app.post('/api/v1/leases/attribute', {
    bodyLimit: ATTRIBUTE_BODY_BYTES,
    // Refused before its body is read and validated (~0.4 s of the event loop for 100,000 rows).
    onRequest: async () => { if (attributing) throw new QueryBusyError(1) },
    schema: {
      description: 'Who held each address at each time of a report (up to 100,000 rows): one NDJSON line per row, in order, streamed as answered — the row\'s own fields, then status (held, no-holder, not-covered, gap, bad-input), reason and the holder (as `keatrail lease attribute`). Audited: one entry for the batch (who, from where, when, a batch id), then one line per row (the address and time asked, the answer); a row whose line cannot be written is not sent, and the answer ends there.',
      body: z.object({
        rows: z.array(z.object({ address: z.string().max(64), time: z.string().max(64) }).catchall(z.string().max(256))
          .refine((r) => Object.keys(r).length <= 16, 'at most 16 fields per row')).min(1).max(MAX_ATTRIBUTE_ROWS),
        tz: z.string().max(64).optional().describe('IANA zone of times written without one'),
        scope: z.string().max(253).optional().describe('A Kea server (host.name) or lease domain')
      }).strict()
    }
  }, async (req, reply) => {
    if (attributing) throw new QueryBusyError(1)
    const { rows, tz, scope } = req.body
    if (tz !== undefined) {
      try { new LocalTimeResolver(tz) } catch { throw new ApiBadRequestError(`tz: ${JSON.stringify(tz)} is not an IANA time zone (such as UTC or Europe/Berlin)`) }
    }
    // Audited compactly (a read key could add 338 bytes per row, 33.8 MB per batch): one entry
    // says who asked, from where, when, with a batch id; then each row one line of that id, the
    // address and time asked and the answer. Written before the batch starts, so it precedes its
    // rows; not written: nothing is answered (503).
    const batch = randomBytes(6).toString('base64url')
    const route = '/api/v1/leases/attribute'
    selfAudited.add(req)
    const entry: AuditEntry = { time: new Date().toISOString(), key: req.apiKey?.name ?? '', ip: req.ip, method: 'POST', route, params: {}, query: auditable({ rows: rows.length, tz, scope }), status: 200, batch }
    const refused = record(entry, route, entry.key)
    if (refused !== undefined) return await reply.code(refused.status).type('application/json; charset=utf-8').send(refused.body)
    attributing = true
    const out = new PassThrough()
    async function * cells (): AsyncGenerator<string[]> {
      for (const r of rows) yield [r.address, r.time]
    }
    let i = 0
    const done = attributeRows(store.leases, cells(), {
      columns: () => {},
      row: async (r) => {
        const own = rows[i++] ?? { address: '', time: '' }
        // A client gone (the stream destroyed) ends the batch: nothing waits for a drain that never comes.
        if (out.destroyed) throw new Error('the client closed the connection')
        // No row leaves unrecorded: an entry that cannot be written cuts the answer off here.
        const cut = record({ batch, row: i, address: own.address, at: own.time, answer: r.answer.status }, route, entry.key)
        if (cut !== undefined) throw cut.error
        // The row's own fields, those named like an answer's column kept apart (status_input …).
        const fields = Object.fromEntries(Object.entries(own).map(([k, v]) => [(ATTRIBUTION_COLUMNS as readonly string[]).includes(k) ? `${k}_input` : k, v]))
        if (out.write(JSON.stringify({ ...fields, ...r.answer }) + '\n')) return
        // A client that stops reading (and never closes) must not hold the one batch slot for
        // ever: past api.attributeStallMs without room for a line, the answer is cut off.
        let timer: NodeJS.Timeout | undefined
        const drained = await new Promise<boolean>((resolve) => {
          out.once('drain', () => { resolve(true) })
          out.once('close', () => { resolve(false) })
          timer = setTimeout(() => { resolve(false) }, cfg.attributeStallMs)
        })
        clearTimeout(timer)
        if (!drained) {
          out.destroy()
          reply.raw.destroy()
          throw new Error('the client stopped reading the answer')
        }
      }
    }, { header: false, ...(tz === undefined ? {} : { timeZone: tz }), ...(scope === undefined ? {} : { scope }) })
    // The response's socket closing before the last line was sent: the client is gone.
    reply.raw.once('close', () => { if (!reply.raw.writableFinished) out.destroy() })
    stopBatch = () => { out.destroy(); reply.raw.destroy() }
    done.then(() => { out.end() }, (err: unknown) => { out.destroy(err as Error) }).finally(() => { attributing = false; stopBatch = undefined })
    return reply.type('application/x-ndjson; charset=utf-8').send(out)
  })

  app.get('/api/v1/leases/history', {
    schema: {
      description: 'Every lease interval of an address, prefix or client (exactly one of them), in time order',
      querystring: z.object({
        address: z.string().max(64).optional(), prefix: z.string().max(64).optional(), mac: z.string().max(64).optional(),
        client_id: z.string().max(600).optional(), duid: z.string().max(400).optional(), hostname: z.string().max(253).optional(),
        from: timeParam, to: timeParam, scope: z.string().max(253).optional().describe('A Kea server (host.name) or lease domain; a server in a lease domain means its domain')
      }).strict(),
      response: { 200: z.object({ intervals: z.array(holderOut), truncated: z.boolean().optional().describe('More intervals match than one answer holds (1,000): narrow from/to') }) }
    }
  }, async (req) => {
    const { from, to, ...rest } = req.query
    const range = apiRange(from, to)
    const subject = Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== undefined))
    const page = await historyPage(store.leases, { ...subject, ...range })
    return { intervals: page.intervals, ...(page.truncated ? { truncated: true } : {}) }
  })

  /** The head of a snapshot page sent from its serialised documents (a reader worker's bytes). */
  const SNAPSHOTS_OPEN = Buffer.from('{"snapshots":')
  app.get('/api/v1/snapshots', {
    schema: {
      description: 'Kea status snapshots by server, service, subnet and time range, oldest first: a page holds at most `size` snapshots and 8 MiB of documents (always one), the rest behind `cursor`',
      querystring: z.object({
        server: z.string().max(253).optional(), service: z.enum(['dhcp4', 'dhcp6']).optional(), subnet_id: z.coerce.number().int().min(0).max(4_294_967_295).optional(),
        from: timeParam, to: timeParam, size: z.coerce.number().int().min(1).max(10_000).default(100),
        cursor: z.string().max(2048).optional().describe('The cursor of the previous page of the same query')
      }).strict(),
      response: { 200: z.object({ snapshots: z.array(snapshotOut), cursor: z.string().optional().describe('More snapshots match: pass it as cursor for the next page') }) }
    }
  }, async (req, reply) => {
    const { from, to, cursor, ...rest } = req.query
    const range = apiRange(from, to)
    const hash = cursorHash(['snapshots', rest.server ?? null, rest.service ?? null, rest.subnet_id ?? null, from ?? null, to ?? null])
    const q = {
      ...Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== undefined)), ...range,
      ...(cursor === undefined ? {} : { cursor: unwrapCursor(cursor, hash) })
    }
    if (store.snapshots.pageSerialized !== undefined) {
      const page = await store.snapshots.pageSerialized(q)
      const next = page.cursor === undefined ? '' : `,"cursor":${JSON.stringify(wrapCursor(page.cursor, hash))}`
      return await reply.sendJsonText(Buffer.concat([SNAPSHOTS_OPEN, page.snapshotsJson, Buffer.from(`${next}}`)]))
    }
    const page = await store.snapshots.page(q)
    return { snapshots: page.snapshots as unknown as Array<Record<string, unknown>>, ...(page.cursor === undefined ? {} : { cursor: wrapCursor(page.cursor, hash) }) }
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
    // Every histogram is bounded: a from is always given to the store (default: a day before
    // to), and the buckets between from and to are counted before the query runs. An unbounded
    // from, or an interval wide enough to overflow the store's integer arithmetic, would
    // otherwise turn into one bucket per event.
    const ms = intervalMs(req.query.interval)
    if (ms < 1000) throw new ApiBadRequestError('interval must be at least 1s')
    if (ms > MAX_INTERVAL_MS) throw new ApiBadRequestError(`interval must be at most ${MAX_INTERVAL_MS / 86_400_000}d`)
    const now = Date.now()
    const range = apiRange(req.query.from, req.query.to, now)
    const to = range.to ?? now
    const from = range.from ?? to - DEFAULT_HISTOGRAM_SPAN_MS
    if (from >= to) throw new ApiBadRequestError('from must be before to')
    const count = Math.ceil((to - from) / ms)
    if (count > MAX_BUCKETS) throw new ApiBadRequestError(`at most ${MAX_BUCKETS} buckets: ${count} requested; widen the interval or narrow from/to`)
    const where = req.query.q === undefined ? undefined : parseQuery(req.query.q)
    const buckets = await store.histogram({ from, to, ...(where === undefined ? {} : { where }) }, ms)
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
    config: { role: 'admin' },
    schema: {
      description: 'Events the store rejected, with the reason (admin key)',
      querystring: z.object({ limit: z.coerce.number().int().min(1).max(1000).default(100) }).strict(),
      response: { 200: z.object({ count: z.number(), entries: z.array(z.object({ seq: z.number(), time: z.string(), store: z.string(), event_id: z.string(), reason: z.string() })) }) }
    }
  }, async (req) => {
    const dlq = opts.deadLetters
    if (dlq === undefined) return { count: 0, entries: [] }
    // Without the documents: a page of 1,000 entries of events of 1 MiB lines parsed 1 GB to answer this.
    return { count: dlq.count(), entries: dlq.summaries(req.query.limit).map((e) => ({ seq: e.seq, time: e.time, store: e.store, event_id: e.eventId, reason: e.reason })) }
  })

  app.post('/api/v1/deadletter/retry', {
    config: { role: 'admin', audit: 'before' },
    schema: {
      description: 'Write up to `limit` dead-lettered events to the store again, oldest first, 500 (or 4 MiB) at a time (admin key); accepted ones leave the dead-letter store',
      querystring: z.object({ limit: z.coerce.number().int().min(1).max(100_000).default(10_000) }).strict(),
      response: { 200: z.object({ retried: z.number(), written: z.number(), duplicates: z.number(), deadLettered: z.number(), unreadable: z.number().describe('Entries whose stored document does not parse: left in place, skipped'), remaining: z.number() }) }
    }
  }, async (req) => {
    const dlq = opts.deadLetters
    if (dlq === undefined) return { retried: 0, written: 0, duplicates: 0, deadLettered: 0, unreadable: 0, remaining: 0 }
    return await retryDeadLetters(store, dlq, req.query.limit)
  })

  app.get('/api/v1/leases/report', {
    schema: {
      description: 'An evidence report of who held an address at a time (as `keatrail lease report`): the answer, the intervals before and after, every evidence line verbatim with its source and the chain link covering it. format=html: a self-contained page to save and print (an attachment); json: the same data.',
      querystring: z.object({
        address: z.string().min(2).max(64), time: z.string().min(1).max(64),
        tz: z.string().max(64).optional().describe('IANA zone of a zone-less time and of the times shown beside UTC (default UTC)'),
        scope: z.string().max(253).optional(), format: z.enum(['html', 'json']).default('html')
      }).strict()
    }
  }, async (req, reply) => {
    const { address, time, tz, scope, format } = req.query
    if (tz !== undefined) {
      try { new LocalTimeResolver(tz) } catch { throw new ApiBadRequestError(`tz: ${JSON.stringify(tz)} is not an IANA time zone (such as UTC or Europe/Berlin)`) }
    }
    // An address or time that cannot be read is the caller's mistake (400); whatever fails after
    // that is the store's, and answers as such.
    try {
      checkReportQuestion(address, time, tz)
    } catch (err) {
      if (isCodedError(err)) throw err
      throw new ApiBadRequestError(`${address} at ${time}: ${(err as Error).message}`)
    }
    const r: EvidenceReport = await evidenceReport(store, address, time, { keatrailVersion: version(), ...(tz === undefined ? {} : { timeZone: tz }), ...(scope === undefined ? {} : { scope }) })
    if (format === 'json') return r
    const html = reportHtml(r)
    const name = `keatrail-report-${r.question.address.replace(/[^0-9A-Za-z.]/g, '_')}-${r.question.instant.replace(/[^0-9TZ]/g, '')}.html`
    return await reply.type('text/html; charset=utf-8').header('content-disposition', `attachment; filename="${name}"`).header('content-security-policy', pageCsp(html)).send(html)
  })

  app.get('/api/v1/about', {
    config: { audit: false },
    schema: { description: 'This keatrail: its version, the time zone it runs in (the UI shows times in it), and whether its store keeps a tamper-evidence chain', response: { 200: z.object({ version: z.string(), time_zone: z.string(), chain: z.boolean() }) } }
  }, async () => ({ version: version(), time_zone: Intl.DateTimeFormat().resolvedOptions().timeZone, chain: store.chain !== undefined }))

  app.get('/api/v1/whoami', {
    config: { audit: false },
    schema: { description: 'The key this request used and its role', response: { 200: z.object({ name: z.string(), role: z.string() }) } }
  }, async (req) => keyOf(req))

  return app
}

/** The SHA-256 hex of an API key, as `api.keys[].sha256` wants it. */
export function apiKeyHash (key: string): string {
  return sha(key).toString('hex')
}
