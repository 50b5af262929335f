import { pino, type Logger } from 'pino'
import { z } from 'zod'
import { URL_USERINFO, withoutCredentials } from '../credentials.js'
import type { Log } from '../pipeline/types.js'

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const

export const logConfigSchema = z.object({
  level: z.enum(LOG_LEVELS).default('info')
    .describe('Lowest level written: error, warn, info, debug (adds the periodic "Counters." line and API requests), trace; silent writes nothing')
}).strict()

export type LogConfig = z.output<typeof logConfigSchema>

/** The longest string an error in the log carries (its message, its stack, each cluster reason). */
export const MAX_LOGGED_STRING = 4096
/** How many causes deep an error in the log goes (`cause` of `cause` …; AggregateError's `errors`). */
const MAX_CAUSE_DEPTH = 3
/** An AggregateError's first errors only. */
const MAX_AGGREGATED = 5
/** A cluster's error: its reason, and the first root causes, this long at most. */
const MAX_REASON = 1024
const MAX_ROOT_CAUSES = 3
/** A cluster's answer that is no JSON error (a proxy's page): its first characters only. */
const MAX_RAW_BODY = 256

/** An Authorization header's value (its scheme kept); a URL's user:password is URL_USERINFO. */
const AUTH_VALUE = /\b(ApiKey|Basic|Bearer)\s+[A-Za-z0-9+/=._~-]+/g
/** Fields of an error never written, whatever they hold: what was sent, and credentials. */
const NEVER_LOGGED = new Set(['body', 'bulkbody', 'headers', 'authorization', 'password', 'apikey', 'api_key', 'token', 'secret', 'auth'])

/**
 * Text as it may be written: cut to `max` characters (the cut said, with how much was left
 * out), any Authorization value and URL credentials in it replaced by [Redacted].
 */
export function boundedText (s: string, max = MAX_LOGGED_STRING): string {
  // Redacted before the cut, over a little more than is kept: a cut through "user:password@"
  // left the password's start behind with no "@" for the pattern to find.
  const clean = (s.length > max ? s.slice(0, max + 1024) : s).replace(AUTH_VALUE, '$1 [Redacted]').replace(URL_USERINFO, '$1[Redacted]@')
  return s.length > max ? `${clean.slice(0, max)}… (${s.length - max} more characters)` : clean
}

/** A stack as it may be written: its message part bounded apart, so that a long message leaves the frames. */
function boundedStack (stack: string): string {
  const frames = stack.indexOf('\n    at ')
  if (frames < 0) return boundedText(stack)
  return boundedText(stack.slice(0, frames), MAX_REASON) + boundedText(stack.slice(frames))
}

type Fields = Record<string, unknown>
const isObject = (v: unknown): v is Fields => typeof v === 'object' && v !== null

/** A cluster's error object (Elasticsearch's and OpenSearch's `error`): type and reason, a few root causes, the causes' chain. */
function clusterError (e: unknown, depth: number): unknown {
  if (typeof e === 'string') return boundedText(e, MAX_REASON)
  if (!isObject(e)) return typeof e === 'number' || typeof e === 'boolean' ? e : undefined
  const out: Fields = {}
  if (typeof e.type === 'string') out.type = boundedText(e.type, 256)
  if (typeof e.reason === 'string') out.reason = boundedText(e.reason, MAX_REASON)
  if (depth < 2 && Array.isArray(e.root_cause) && e.root_cause.length > 0) {
    out.root_cause = e.root_cause.slice(0, MAX_ROOT_CAUSES).map((r) => clusterError(r, depth + 1))
    if (e.root_cause.length > MAX_ROOT_CAUSES) out.root_causes = e.root_cause.length
  }
  if (depth < MAX_CAUSE_DEPTH && e.caused_by !== undefined) out.caused_by = clusterError(e.caused_by, depth + 1)
  return out
}

/**
 * What a search engine client's error (Elastic's and OpenSearch's ResponseError, ConnectionError,
 * TimeoutError) says of the cluster: its status, its error's type and reason, and the node
 * (without credentials). Never `meta.meta` (the request: its parameters, headers with the
 * Authorization, and the whole bulk body: every event's raw log line) nor the answer's headers.
 */
function clusterMeta (meta: Fields): Fields {
  const out: Fields = {}
  if (typeof meta.statusCode === 'number') out.statusCode = meta.statusCode
  const body = meta.body
  if (isObject(body) && body.error !== undefined) out.body = { error: clusterError(body.error, 0) }
  else if (typeof body === 'string' && body !== '') out.body = boundedText(body, MAX_RAW_BODY)
  const connection = isObject(meta.meta) && isObject(meta.meta.connection) ? meta.meta.connection : undefined
  const url = connection?.url
  if (typeof url === 'string' || url instanceof URL) out.node = withoutCredentials(String(url))
  return out
}

/**
 * pino's `err` serializer for every logger keatrail builds (fastify's request loggers too: they
 * are children of it). pino's own copies every enumerable field of the error: the search engine
 * clients' errors carry the whole request in `meta.meta` (a failed bulk write was a 5 MB line
 * holding every event's raw log text, and OpenSearch's its Authorization header in clear).
 * Written instead: type, message, stack and code, the error's other fields that are plain values
 * (statusCode, errno, syscall, path, port…), a client error's cluster facts (clusterMeta), and
 * its causes MAX_CAUSE_DEPTH deep; each string cut to MAX_LOGGED_STRING, credentials redacted.
 */
export function serializeError (err: unknown, depth = 0): unknown {
  if (typeof err === 'string') return boundedText(err)
  if (!isObject(err)) return err
  const out: Fields = {}
  const ctor = (err as { constructor?: unknown }).constructor
  if (err instanceof Error) out.type = typeof ctor === 'function' && ctor.name !== '' ? ctor.name : err.name
  if (typeof err.message === 'string') out.message = boundedText(err.message)
  if (typeof err.stack === 'string') out.stack = boundedStack(err.stack)
  let fields = 0
  for (const [k, v] of Object.entries(err)) {
    if (k in out || k === 'meta' || k === 'cause' || k === 'errors' || NEVER_LOGGED.has(k.toLowerCase())) continue
    if (fields >= 16) break
    if (typeof v === 'string') out[k] = boundedText(v)
    else if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') out[k] = typeof v === 'bigint' ? String(v) : v
    else continue
    fields++
  }
  if (isObject(err.meta)) out.meta = clusterMeta(err.meta)
  if (depth < MAX_CAUSE_DEPTH) {
    if (err.cause !== undefined && err.cause !== null) out.cause = serializeError(err.cause, depth + 1)
    if (Array.isArray(err.errors)) out.errors = err.errors.slice(0, MAX_AGGREGATED).map((e) => serializeError(e, depth + 1))
  }
  return out
}

/**
 * Paths pino replaces by [Redacted] on every line, whatever serializer wrote them: an
 * Authorization header never reaches the log (serializeError drops headers already; a header
 * logged as a field of its own, or a config's webhook headers, would not pass either).
 */
const REDACTED = ['authorization', '*.authorization', 'headers.authorization', '*.headers.authorization', '*.*.headers.authorization',
  'password', '*.password', 'apiKey', '*.apiKey']

/**
 * keatrail's own log: pino, one JSON object per line on stderr (`time`, `level` as its label,
 * `code` for problems, `msg`, fields; `err` with the stack, bounded by serializeError). Fastify
 * gets the same instance (its request loggers inherit the serializer and the redaction).
 */
export function createLogger (cfg: LogConfig, stream: { write: (line: string) => unknown }): Logger {
  return pino({
    level: cfg.level,
    messageKey: 'msg',
    // Labels, not pino's numbers: operators and scripts match "error", not 50.
    formatters: { level: (label) => ({ level: label }) },
    timestamp: pino.stdTimeFunctions.isoTime,
    // pid and hostname on every line say nothing a journal or a container does not.
    base: undefined,
    serializers: { err: serializeError },
    redact: { paths: REDACTED, censor: '[Redacted]' }
  }, stream)
}

/**
 * The components' Log over a pino logger. `error: Error` in fields goes out as `err` (with its
 * stack) and its message stays in `error`, where scripts and tests look for it.
 */
export function asLog (logger: Logger): Log {
  // A child's bindings (source: name) are on every line already: not written twice.
  const bound = Object.keys(logger.bindings())
  const withErr = (given: Record<string, unknown> | undefined): Record<string, unknown> => {
    if (given === undefined) return {}
    const fields = bound.length === 0 ? given : Object.fromEntries(Object.entries(given).filter(([k]) => !bound.includes(k)))
    const e = fields.err ?? fields.error
    if (e instanceof Error) return { ...fields, err: e, error: boundedText(e.message) }
    return fields
  }
  return {
    info: (msg, fields) => { logger.info(withErr(fields), msg) },
    warn: (code, msg, fields) => { logger.warn({ code, ...withErr(fields) }, msg) },
    error: (code, msg, fields) => { logger.error({ code, ...withErr(fields) }, msg) },
    debug: (msg, fields) => { logger.debug(withErr(fields), msg) }
  }
}

/** A Log that writes nothing (commands that poll or parse without a service). */
export const SILENT_LOG: Log = { info: () => {}, error: () => {} }
