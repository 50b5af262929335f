import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runCli } from '../helpers/cli.js'
import { KEA_FIXTURES } from '../helpers/fixtures.js'

// Findings 7 and 9b (audit 3): a store URL given with its user and password is never printed
// with them, and a cluster refusing keatrail's credentials (401) or their rights (403) is one
// coded line saying so, exit 2 — not `KEATRAIL_ERR_INTERNAL: security_exception`, exit 1.

const INFO4 = join(KEA_FIXTURES, 'kea-2.2.0-dhcp4-INFO-full.log')
const PASSWORD = 'UrlS3cretPW'

function oneCodedLine (err: string, code: string): void {
  expect(err).toMatch(new RegExp(`^keatrail: ${code}: [^\\n]+\\n$`))
}

/** A cluster that answers every request with `status` and a security_exception. */
async function refusing (status: 401 | 403, distribution: 'elasticsearch' | 'opensearch'): Promise<{ server: Server, url: string }> {
  const server = createServer((req, res) => {
    req.resume()
    req.on('end', () => {
      res.writeHead(status, { 'content-type': 'application/json', ...(distribution === 'elasticsearch' ? { 'x-elastic-product': 'Elasticsearch' } : {}) })
      res.end(JSON.stringify({
        error: {
          type: 'security_exception',
          reason: status === 401 ? 'unable to authenticate user [elastic] for REST request [/_cluster/health]' : 'action [cluster:monitor/health] is unauthorized for user [keatrail]',
          root_cause: [{ type: 'security_exception', reason: 'x' }]
        },
        status
      }))
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` }
}

const servers: Server[] = []
const cluster = async (status: 401 | 403, distribution: 'elasticsearch' | 'opensearch' = 'elasticsearch'): Promise<string> => {
  const c = await refusing(status, distribution)
  servers.push(c.server)
  return c.url
}
afterAll(() => { for (const s of servers) { s.closeAllConnections(); s.close() } })

let dir = ''
beforeAll(() => { dir = mkdtempSync(join(tmpdir(), 'kt-es-cred-')) })

describe('a store URL with credentials', () => {
  it.each([
    [['lease', 'at', '192.0.2.10', 'now']],
    [['verify']],
    [['serve', '--port', '0']]
  ])('%j against a cluster that is not there: one coded line naming the URL without its password', async (args) => {
    const r = await runCli([...args, '--data-dir', dir, '--store', 'elasticsearch', '--es-url', `http://elastic:${PASSWORD}@127.0.0.1:1`])
    expect(r.code).toBe(2)
    oneCodedLine(r.err, 'KEATRAIL_ERR_STORE_READ')
    expect(r.err).toContain('http://127.0.0.1:1')
    expect(r.err).not.toContain(PASSWORD)
    expect(r.err).not.toContain('elastic:')
  }, 60_000)
})

describe('a cluster that refuses keatrail\'s credentials', () => {
  it('import: 401 is KEATRAIL_ERR_STORE_AUTH with what to check, exit 2', async () => {
    const url = await cluster(401)
    const r = await runCli(['import', '--data-dir', join(dir, 'import401'), '--store', 'elasticsearch', '--es-url', url.replace('//', `//elastic:${PASSWORD}@`), INFO4])
    expect(r.code).toBe(2)
    oneCodedLine(r.err, 'KEATRAIL_ERR_STORE_AUTH')
    expect(r.err).toContain(`Elasticsearch at ${url} refused keatrail: HTTP 401, the credentials were not accepted`)
    expect(r.err).toContain('KEATRAIL_ES_PASSWORD')
    expect(r.err).not.toContain(PASSWORD)
  })

  it('import: 403 says the credentials lack a right', async () => {
    const url = await cluster(403)
    const r = await runCli(['import', '--data-dir', join(dir, 'import403'), '--store', 'elasticsearch', '--es-url', url, INFO4])
    expect(r.code).toBe(2)
    oneCodedLine(r.err, 'KEATRAIL_ERR_STORE_AUTH')
    expect(r.err).toContain('HTTP 403, the credentials were accepted but may not do this')
    expect(r.err).toContain('is unauthorized for user [keatrail]')
  })

  it('lease at (a reader): 401 is KEATRAIL_ERR_STORE_AUTH, not a store read error', async () => {
    const url = await cluster(401)
    const r = await runCli(['lease', 'at', '192.0.2.10', 'now', '--data-dir', dir, '--store', 'elasticsearch', '--es-url', url])
    expect(r.code).toBe(2)
    oneCodedLine(r.err, 'KEATRAIL_ERR_STORE_AUTH')
  })

  it('OpenSearch with an API key: 401 names OpenSearch, and never the key', async () => {
    const url = await cluster(401, 'opensearch')
    const config = join(dir, 'os.yaml')
    writeFileSync(config, `dataDir: ${join(dir, 'os')}\nstore: { type: opensearch, url: "${url}", apiKey: "T3stApiKeyValue" }\n`)
    const r = await runCli(['import', '--config', config, INFO4])
    expect(r.code).toBe(2)
    oneCodedLine(r.err, 'KEATRAIL_ERR_STORE_AUTH')
    expect(r.err).toContain(`OpenSearch at ${url} refused keatrail: HTTP 401`)
    expect(r.err).not.toContain('T3stApiKeyValue')
  })
})
