import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { errors as esErrors } from '@elastic/elasticsearch'
import { errors as osErrors } from '@opensearch-project/opensearch'
import { describe, expect, it } from 'vitest'
import { buildApp } from '../../src/api/app.js'
import { asLog, boundedText, createLogger, MAX_LOGGED_STRING, serializeError } from '../../src/app/logger.js'
import { SqliteStore } from '../../src/store/sqlite/store.js'

// Finding 4/5 (audit 3): a failed Elasticsearch/OpenSearch write logged the whole error object,
// whose meta.meta.request.params holds the bulk body (every event's raw log line: MACs,
// hostnames; one line was 5.14 MB) and, with OpenSearch's client, the Authorization header in
// clear. The service log keeps the stack, type, message, code and the cluster's status and
// error; never the request.

const KEY = 'ApiKey S3cr3tKeyValue=='
const MAC = '1a:1b:1c:1d:1e:3f'
/** One raw log line as a bulk body carries it, repeated to 5 MB. */
const RAW = `{"create":{"_index":"logs-kea.dhcp4-default","_id":"x"}}\n{"event":{"original":"2026-11-24 09:16:15.783 INFO  [kea-dhcp4.leases/1] DHCP4_LEASE_ALLOC [hwtype=1 ${MAC}], cid=[no info], tid=0x1: lease 192.0.2.203 has been allocated, hostname printer-3rd-floor"}}\n`
const BODY = RAW.repeat(Math.ceil(5_000_000 / RAW.length))

/** The `meta` both clients give their errors (DiagnosticResult / ApiResponse). */
function clientMeta (statusCode: number | null, body: unknown): Record<string, unknown> {
  return {
    body,
    statusCode,
    headers: { 'content-type': 'application/json', 'x-elastic-product': 'Elasticsearch' },
    warnings: null,
    meta: {
      context: null,
      name: 'elasticsearch-js',
      request: {
        params: { method: 'POST', path: '/_bulk', querystring: 'filter_path=items.*.status', body: BODY, bulkBody: Buffer.from(BODY.slice(0, 100_000)), headers: { authorization: KEY, 'content-type': 'application/x-ndjson' } },
        options: { maxRetries: 0 },
        id: 1
      },
      connection: { url: new URL('http://elastic:UrlPassw0rd@127.0.0.1:9200/'), id: 'http://127.0.0.1:9200/', headers: { authorization: KEY } },
      attempts: 0,
      aborted: false
    }
  }
}

const UNAVAILABLE = { error: { type: 'unavailable_shards_exception', reason: 'primary shard is not active', root_cause: [{ type: 'unavailable_shards_exception', reason: 'primary shard is not active' }] }, status: 503 }

/** Errors as the two clients raise them (their own classes), each carrying the 5 MB body and the key. */
function clientErrors (): Array<[string, Error]> {
  return [
    ['Elastic ResponseError 503', new esErrors.ResponseError(clientMeta(503, UNAVAILABLE) as never)],
    ['Elastic ConnectionError (reset)', new esErrors.ConnectionError('other side closed', clientMeta(0, undefined) as never)],
    ['OpenSearch ResponseError 401', new osErrors.ResponseError(clientMeta(401, { error: { type: 'security_exception', reason: 'unable to authenticate' }, status: 401 }) as never)],
    ['OpenSearch ConnectionError (refused)', new osErrors.ConnectionError('connect ECONNREFUSED 127.0.0.1:9200', clientMeta(null, null) as never)]
  ]
}

function captured (): { lines: string[], logger: ReturnType<typeof createLogger> } {
  const lines: string[] = []
  return { lines, logger: createLogger({ level: 'info' }, { write: (l: string) => { lines.push(l) } }) }
}

function expectClean (line: string): void {
  expect(Buffer.byteLength(line)).toBeLessThan(8 * 1024)
  expect(line).not.toContain('S3cr3tKeyValue')
  expect(line).not.toContain('UrlPassw0rd')
  expect(line).not.toContain(MAC)
  expect(line).not.toContain('printer-3rd-floor')
  expect(line).not.toContain('authorization')
}

describe('the service log\'s errors (pino err serializer)', () => {
  it.each(clientErrors())('%s: one small line with the stack and the cluster\'s status and error, no request body, no Authorization', (_name, err) => {
    const { lines, logger } = captured()
    asLog(logger).error('KEATRAIL_ERR_STORE_WRITE', 'Elasticsearch write failed; retrying.', { attempt: 1, waitMs: 500, error: err })
    expect(lines).toHaveLength(1)
    const line = lines[0] as string
    expectClean(line)
    const o = JSON.parse(line) as { err: { type: string, message: string, stack: string, meta: { statusCode?: number, body?: { error: unknown }, node?: string, meta?: unknown, headers?: unknown } } }
    expect(o.err.type).toBe(err.constructor.name)
    expect(o.err.message).toBe(err.message)
    expect(o.err.stack).toContain(err.constructor.name)
    expect(o.err.meta.meta).toBeUndefined()
    expect(o.err.meta.headers).toBeUndefined()
    expect(o.err.meta.node).toBe('http://127.0.0.1:9200')
    const status = (err as unknown as { meta: { statusCode: unknown } }).meta.statusCode
    if (typeof status === 'number') expect(o.err.meta.statusCode).toBe(status)
    if (status === 503) expect(o.err.meta.body).toEqual({ error: { type: 'unavailable_shards_exception', reason: 'primary shard is not active', root_cause: [{ type: 'unavailable_shards_exception', reason: 'primary shard is not active' }] } })
    if (status === 401) expect(o.err.meta.body).toEqual({ error: { type: 'security_exception', reason: 'unable to authenticate' } })
  })

  it('cuts every string to a bound and goes a bounded depth into causes (a cycle too)', () => {
    const { lines, logger } = captured()
    const huge = new Error(`bad line ${'x'.repeat(1_000_000)}`) as Error & { code: string, detail: string, body: string }
    huge.code = 'E_HUGE'
    huge.detail = 'y'.repeat(100_000)
    huge.body = BODY
    const a = new Error('a', { cause: huge }) as Error & { cause: unknown }
    const b = new Error('b', { cause: a })
    huge.cause = b
    asLog(logger).error('KEATRAIL_ERR_SOURCE', 'failed', { error: a })
    const line = lines[0] as string
    expect(Buffer.byteLength(line)).toBeLessThan(64 * 1024)
    const o = JSON.parse(line) as { error: string, err: { message: string, cause: { code: string, message: string, detail: string, body?: unknown, cause: { cause: { cause?: unknown } } } } }
    expect(o.error).toBe('a')
    expect(o.err.cause.code).toBe('E_HUGE')
    expect(o.err.cause.message.length).toBeLessThan(MAX_LOGGED_STRING + 100)
    expect(o.err.cause.message).toMatch(/… \(\d+ more characters\)$/)
    expect(o.err.cause.detail.length).toBeLessThan(MAX_LOGGED_STRING + 100)
    expect(o.err.cause.body).toBeUndefined()
    expect(o.err.cause.cause.cause.cause).toBeUndefined()
    expect(line).not.toContain(MAC)
  })

  it('redacts before it cuts, and a long message leaves the stack\'s frames (the review of the log fix)', () => {
    const msg = `${'x'.repeat(4075)} http://elastic:SuperSecretPassw0rd@es:9200/_bulk failed`
    expect(boundedText(msg)).not.toContain('Super')
    const e = serializeError(new Error(msg)) as { message: string, stack: string }
    expect(JSON.stringify(e)).not.toContain('Super')
    const long = serializeError(new Error('y'.repeat(5000))) as { stack: string }
    expect(long.stack).toMatch(/\n\s+at /)
    expect(long.stack.length).toBeLessThan(8192)
  })

  it('never writes an Authorization value or URL credentials, wherever they are', () => {
    const { lines, logger } = captured()
    logger.info({ headers: { authorization: KEY }, webhook: { headers: { authorization: 'Bearer Webhook5ecret' } }, authorization: 'Basic dXNlcjpwYXNz' }, 'fields')
    logger.error({ err: new Error(`request to http://elastic:UrlPassw0rd@es:9200 with ${KEY} failed`) }, 'message')
    asLog(logger).error('KEATRAIL_ERR_STORE_WRITE', 'x', { error: new Error(`Authorization: Bearer Webhook5ecret at https://u:UrlPassw0rd@h/`) })
    for (const line of lines) {
      expect(line).not.toContain('S3cr3tKeyValue')
      expect(line).not.toContain('Webhook5ecret')
      expect(line).not.toContain('dXNlcjpwYXNz')
      expect(line).not.toContain('UrlPassw0rd')
    }
    expect(lines[0]).toContain('[Redacted]')
    expect(JSON.parse(lines[1] as string)).toMatchObject({ err: { message: 'request to http://[Redacted]@es:9200 with ApiKey [Redacted] failed' } })
  })

  it('an API 5xx from a client error (app.ts\' error handler, fastify\'s request logger) is one small line too', async () => {
    const store = new SqliteStore({ path: join(mkdtempSync(join(tmpdir(), 'kt-logerr-')), 'k.db') })
    const err = (clientErrors()[0] as [string, Error])[1]
    store.search = async () => { throw err }
    store.searchSerialized = async () => { throw err }
    const { lines, logger } = captured()
    const app = await buildApp({ store, loggerInstance: logger })
    try {
      const res = await app.inject({ url: '/api/v1/events' })
      expect(res.statusCode).toBe(500)
      const errorLines = lines.filter((l) => l.includes('"level":"error"'))
      expect(errorLines).toHaveLength(1)
      const line = errorLines[0] as string
      expectClean(line)
      expect(JSON.parse(line)).toMatchObject({ component: 'api', err: { type: 'ResponseError', meta: { statusCode: 503, body: { error: { type: 'unavailable_shards_exception' } } } } })
    } finally {
      await app.close()
      await store.close()
    }
  })
})
