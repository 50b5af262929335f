import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { createServer, type IncomingMessage, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest'
import { stringify } from 'yaml'
import { runCli } from '../helpers/cli.js'
import { FIXTURES, ROOT } from '../helpers/fixtures.js'

const esUrl = inject('esUrl')
const esSkip = esUrl === '' ? inject('esSkipReason') : ''
const kibanaFixture = (name: string): string => readFileSync(join(FIXTURES, 'kibana', name), 'utf8')

interface Seen { method: string, url: string, headers: IncomingMessage['headers'], body: Buffer }

/** A stand-in Kibana answering with Kibana's response bodies (test/fixtures/kibana). */
let kibana: Server
let kibanaUrl = ''
const seen: Seen[] = []
let mode: 'ok' | 'partial' | 'unauthorized' | 'old' = 'ok'

beforeAll(async () => {
  kibana = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const body = Buffer.concat(chunks)
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body })
      res.setHeader('content-type', 'application/json')
      if (mode === 'unauthorized') { res.statusCode = 401; res.end(kibanaFixture('unauthorized.json')); return }
      if (req.url === '/api/status') { res.end(kibanaFixture(mode === 'old' ? 'status-8.5.json' : 'status-8.19.json')); return }
      if (req.method === 'POST' && req.url === '/s/ops/api/saved_objects/_import?overwrite=true') {
        if (mode === 'partial') { res.end(kibanaFixture('import-missing-references.json')); return }
        const file = /filename="([^"]+)"\r\nContent-Type: application\/ndjson\r\n\r\n([\s\S]*?)\r\n--/.exec(body.toString('utf8'))
        const lines = file?.[2]?.split('\n').filter(Boolean) ?? []
        res.end(JSON.stringify({ success: true, successCount: lines.length, successResults: lines.map((l) => { const o = JSON.parse(l) as { id: string, type: string }; return { id: o.id, type: o.type, overwrite: true } }), warnings: [] }))
        return
      }
      res.statusCode = 404
      res.end('{"statusCode":404,"error":"Not Found","message":"Not Found"}')
    })
  })
  await new Promise<void>((resolve) => kibana.listen(0, '127.0.0.1', resolve))
  kibanaUrl = `http://127.0.0.1:${(kibana.address() as AddressInfo).port}`
})
afterAll(() => { kibana.close() })
afterEach(() => { seen.length = 0; mode = 'ok'; delete process.env.KEATRAIL_KIBANA_USERNAME; delete process.env.KEATRAIL_KIBANA_PASSWORD })

describe.skipIf(esSkip !== '' && process.env.CI !== 'true')(`keatrail setup${esSkip === '' ? '' : ` (skipped: ${esSkip})`}`, () => {
  it('creates the indices in a new namespace, and a second run changes nothing', async () => {
    const ns = `setup${Date.now().toString(36)}`
    const first = await runCli(['setup', '--es', esUrl, '--es-namespace', ns])
    expect(first.code, first.err).toBe(0)
    expect(first.out).toContain(`indices: created keatrail-leases-${ns}, keatrail-lease-obs-${ns}, keatrail-coverage-${ns}, keatrail-snapshots-${ns}`)
    expect(first.out).toMatch(/ILM: not available on this cluster \(skipped/)
    const second = await runCli(['setup', '--es', esUrl, '--es-namespace', ns])
    expect(second.out).toContain('templates: all up to date')
    expect(second.out).toContain('indices: all exist')
  })

  it('imports every dashboard file into the space as multipart with kbn-xsrf and credentials, data views first', async () => {
    process.env.KEATRAIL_KIBANA_USERNAME = 'elastic'
    process.env.KEATRAIL_KIBANA_PASSWORD = 'changeme'
    const r = await runCli(['setup', '--es', esUrl, '--kibana', kibanaUrl, '--space', 'ops'])
    expect(r.code, r.err).toBe(0)
    expect(r.out).toContain('kibana ' + kibanaUrl + ' (8.19.3), space ops:')
    const imports = seen.filter((s) => s.method === 'POST')
    expect(imports.map((s) => /filename="([^"]+)"/.exec(s.body.toString())?.[1])).toEqual(['keatrail-data-views.ndjson', 'keatrail-overview.ndjson', 'keatrail-leases.ndjson', 'keatrail-pools.ndjson'])
    for (const s of imports) {
      expect(s.headers['kbn-xsrf']).toBeDefined()
      expect(s.headers['content-type']).toMatch(/^multipart\/form-data; boundary=/)
      expect(s.headers.authorization).toBe(`Basic ${Buffer.from('elastic:changeme').toString('base64')}`)
      const name = /filename="([^"]+)"/.exec(s.body.toString())?.[1] as string
      expect(s.body.toString()).toContain(readFileSync(join(ROOT, 'dashboards', name), 'utf8'))
      expect(s.body.toString()).toContain('Content-Disposition: form-data; name="file"')
    }
    expect(r.out).toMatch(/keatrail-pools\.ndjson: 7 objects imported/)
  })

  it('a body with success:false fails the setup, naming each object and what is missing', async () => {
    mode = 'partial'
    const r = await runCli(['setup', '--es', esUrl, '--kibana', kibanaUrl, '--space', 'ops'])
    expect(r.code).toBe(2)
    expect(r.err).toContain('KEATRAIL_ERR_KIBANA')
    expect(r.err).toContain('lens keatrail-lens-top-message-ids: missing_references missing index-pattern keatrail-events')
    expect(r.err).toContain('dashboard keatrail-dashboard-overview: unknown')
  })

  it('wrong credentials and a too old Kibana are clear errors', async () => {
    mode = 'unauthorized'
    const auth = await runCli(['setup', '--es', esUrl, '--kibana', kibanaUrl])
    expect(auth.err).toMatch(/KEATRAIL_ERR_KIBANA: Kibana .*HTTP 401: check the credentials/)
    mode = 'old'
    const old = await runCli(['setup', '--es', esUrl, '--kibana', kibanaUrl])
    expect(old.err).toMatch(/version 8\.5\.3 is older than 8\.9\.0/)
  })
})

const osUrl = inject('osUrl')
const osSkip = osUrl === '' ? inject('osSkipReason') : ''

describe.skipIf((osSkip !== '' || esSkip !== '') && process.env.CI !== 'true')(`keatrail setup on OpenSearch${osSkip === '' ? '' : ` (skipped: ${osSkip})`}`, () => {
  it('installs the templates and indices with --store opensearch, says what it leaves to ISM, and a second run changes nothing', async () => {
    const ns = `ossetup${Date.now().toString(36)}`
    const first = await runCli(['setup', '--store', 'opensearch', '--es', osUrl, '--es-namespace', ns])
    expect(first.code, first.err).toBe(0)
    expect(first.out).toContain(`opensearch ${osUrl}:`)
    // Templates are the cluster's (an earlier suite may have installed them): asked of OpenSearch.
    for (const [kind, name] of [['_component_template', 'keatrail-ecs@mappings'], ['_component_template', 'keatrail-kea@mappings'], ['_index_template', 'keatrail-logs-kea'], ['_index_template', 'keatrail-leases'], ['_index_template', 'keatrail-lease-obs'], ['_index_template', 'keatrail-snapshots'], ['_index_template', 'keatrail-chain']]) {
      expect((await fetch(`${osUrl}/${kind}/${name}`)).status, name).toBe(200)
    }
    expect(first.out).toContain(`indices: created keatrail-leases-${ns}, keatrail-lease-obs-${ns}, keatrail-coverage-${ns}, keatrail-snapshots-${ns}`)
    expect(first.out).toMatch(/ISM: not installed by keatrail .*OpenSearch 2\.\d+\.\d+/)
    expect(first.out).not.toMatch(/ILM|logsdb/)
    const second = await runCli(['setup', '--store', 'opensearch', '--es', osUrl, '--es-namespace', ns])
    expect(second.out).toContain('templates: all up to date')
    expect(second.out).toContain('indices: all exist')
  })

  it('the wrong engine for the URL is one coded line naming the store.type to set, either way, and nothing is installed', async () => {
    const ns = `osmix${Date.now().toString(36)}`
    const asEs = await runCli(['setup', '--es', osUrl, '--es-namespace', ns])
    expect(asEs.code).toBe(2)
    expect(asEs.err.trim().split('\n')).toEqual([`keatrail: KEATRAIL_ERR_STORE_DISTRIBUTION: ${osUrl} answers as OpenSearch, not Elasticsearch: set store.type: opensearch (or --store)`])
    const asOs = await runCli(['setup', '--store', 'opensearch', '--es', esUrl, '--es-namespace', ns])
    expect(asOs.code).toBe(2)
    expect(asOs.err.trim().split('\n')).toEqual([`keatrail: KEATRAIL_ERR_STORE_DISTRIBUTION: ${esUrl} answers as Elasticsearch, not OpenSearch: set store.type: elasticsearch (or --store)`])
    // Nothing installed in either cluster (the second command's client was pointed at Elasticsearch).
    for (const url of [osUrl, esUrl]) {
      const found = await fetch(`${url}/_resolve/index/keatrail-*-${ns}`).then(async (r) => await r.json() as { indices: unknown[] })
      expect(found.indices, url).toEqual([])
    }
  })

  it('--store switches between the engines keeping a config file\'s URL and namespace; a config with the sqlite store and --es installs into Elasticsearch', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kt-setup-switch-'))
    const ns = `osswitch${Date.now().toString(36)}`
    const file = join(dir, 'keatrail.yaml')
    writeFileSync(file, stringify({ store: { type: 'elasticsearch', url: osUrl, namespace: ns } }))
    const r = await runCli(['setup', '--config', file, '--store', 'opensearch'])
    expect(r.code, r.err).toBe(0)
    expect(r.out).toContain(`opensearch ${osUrl}:`)
    expect(r.out).toContain(`keatrail-leases-${ns}`)
    const sqlite = join(dir, 'sqlite.yaml')
    writeFileSync(sqlite, stringify({ store: { type: 'sqlite' } }))
    const es = await runCli(['setup', '--config', sqlite, '--es', esUrl, '--es-namespace', ns])
    expect(es.code, es.err).toBe(0)
    expect(es.out).toContain(`elasticsearch ${esUrl}:`)
  })
})
