import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { asLog, createLogger } from '../../../src/app/logger.js'
import { openStore, type OpenedStore } from '../../../src/app/store.js'
import { parseConfig } from '../../../src/config/config.js'
import { parseBuffer, readFixture } from '../../helpers/fixtures.js'

// Findings 4 and 5 (audit 3), end to end: the real ElasticsearchStore, opened as every command
// and the service open it (openStore, whose onRetry logs "… write failed; retrying."), against a
// local HTTP server that answers every _bulk with 503, a connection reset or 401. Before: each
// retry line held the whole bulk body (the events' raw log lines; 5.14 MB a line with the
// auditor's 5 MB batches) and, with store.type opensearch and an API key, the key in clear.

const API_KEY = 'b3BlbnNlYXJjaC1rZXk6UzNjcjN0S2V5VmFsdWU='

type Answer = '503' | 'reset' | '401'

/** A cluster that answers everything keatrail asks while opening, and `_bulk` with `answer`. */
async function fakeCluster (distribution: 'elasticsearch' | 'opensearch', answer: Answer): Promise<{ server: Server, url: string, authorizations: string[], bulks: number[] }> {
  const authorizations: string[] = []
  const bulks: number[] = []
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    authorizations.push(String(req.headers.authorization))
    let n = 0
    req.on('data', (c: Buffer) => { n += c.length })
    req.on('end', () => {
      const headers = { 'content-type': 'application/json', ...(distribution === 'elasticsearch' ? { 'x-elastic-product': 'Elasticsearch' } : {}) }
      const send = (status: number, body: unknown): void => { res.writeHead(status, headers); res.end(JSON.stringify(body)) }
      const u = req.url ?? ''
      if (u.startsWith('/_bulk')) {
        bulks.push(n)
        if (answer === 'reset') { req.socket.destroy(); return }
        if (answer === '401') { send(401, { error: { type: 'security_exception', reason: 'unable to authenticate user [keatrail] for REST request [/_bulk]' }, status: 401 }); return }
        send(503, { error: { type: 'unavailable_shards_exception', reason: 'primary shard is not active' }, status: 503 }); return
      }
      if (u.startsWith('/_cluster/health')) { send(200, { status: 'green', cluster_name: 'fake' }); return }
      if (u.startsWith('/_nodes')) { send(200, { nodes: { a: { version: distribution === 'opensearch' ? '2.19.0' : '8.19.0' } } }); return }
      if (u.startsWith('/_component_template') || u.startsWith('/_index_template')) { if (req.method === 'GET') send(404, { error: 'not found', status: 404 }); else send(200, { acknowledged: true }); return }
      if (u.includes('_search')) { send(200, { took: 1, timed_out: false, hits: { total: { value: 0, relation: 'eq' }, hits: [] } }); return }
      if (u.includes('_count')) { send(200, { count: 0 }); return }
      if (u.includes('_msearch')) { send(200, { responses: [] }); return }
      if (u.includes('_settings') && req.method === 'GET') { send(200, {}); return }
      if (u.includes('_resolve')) { send(200, { indices: [], data_streams: [] }); return }
      if (req.method === 'HEAD') { res.writeHead(404, headers); res.end(); return }
      send(200, { acknowledged: true })
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, authorizations, bulks }
}

const servers: Server[] = []
afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections()
    await new Promise<void>((resolve) => s.close(() => { resolve() }))
  }
})

describe('a failed Elasticsearch/OpenSearch write in the service log', () => {
  it.each([
    ['elasticsearch', '503'],
    ['elasticsearch', 'reset'],
    ['opensearch', '503'],
    ['opensearch', 'reset'],
    ['opensearch', '401']
  ] as const)('%s answering _bulk with %s: each retry line is small, with the status and the cluster\'s error; no event text, no API key', async (distribution, answer) => {
    const cluster = await fakeCluster(distribution, answer)
    servers.push(cluster.server)
    const cfg = parseConfig({
      dataDir: mkdtempSync(join(tmpdir(), 'kt-eslog-')),
      store: { type: distribution, url: cluster.url, apiKey: API_KEY, bulk: { concurrency: 1 }, retry: { initialMs: 20, maxMs: 50 } }
    })
    const lines: string[] = []
    const logger = createLogger({ level: 'info' }, { write: (l: string) => { lines.push(l) } })
    const opened = await openStore(cfg, { mode: 'write', log: asLog(logger) }) as OpenedStore
    const { events } = await parseBuffer(readFixture('kea-2.2.0-dhcp4-INFO-full.log'), { host: 'kea-a', path: 'kea-a/dhcp4.log' })
    const retries = (): string[] => lines.filter((l) => l.includes('"code":"KEATRAIL_ERR_STORE_WRITE"'))
    const writing = opened.store.write(events).catch((err: unknown) => err)
    const deadline = Date.now() + 15_000
    while (retries().length < 3 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
    await opened.close()
    await writing
    expect(cluster.bulks.length).toBeGreaterThan(0)
    // The batch is large enough that the old line (the body in it) was far past the bound.
    expect(Math.max(...cluster.bulks)).toBeGreaterThan(100_000)
    // The key was sent (as OpenSearch's client sends it: per node, no longer per request).
    expect(cluster.authorizations.every((a) => a === `ApiKey ${API_KEY}`)).toBe(true)
    expect(retries().length).toBeGreaterThanOrEqual(2)
    for (const line of retries()) {
      expect(Buffer.byteLength(line)).toBeLessThan(8 * 1024)
      expect(line).not.toContain(API_KEY)
      expect(line).not.toContain('S3cr3tKeyValue')
      expect(line).not.toContain('hwtype=')
      expect(line).not.toContain('logs-kea.dhcp4-default","_id"')
      const o = JSON.parse(line) as { msg: string, err: { type: string, stack: string, meta?: { statusCode?: number, body?: { error?: { type?: string } }, meta?: unknown } } }
      expect(o.msg).toBe(`${distribution === 'opensearch' ? 'OpenSearch' : 'Elasticsearch'} write failed; retrying.`)
      expect(o.err.stack).toContain(o.err.type)
      expect(o.err.meta?.meta).toBeUndefined()
      if (answer === '503') expect(o.err.meta).toMatchObject({ statusCode: 503, body: { error: { type: 'unavailable_shards_exception', reason: 'primary shard is not active' } } })
      if (answer === '401') expect(o.err.meta).toMatchObject({ statusCode: 401, body: { error: { type: 'security_exception' } } })
      if (answer === 'reset') expect(o.err.type).toBe('ConnectionError')
    }
  }, 30_000)
})
