import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { buildApp, type ServiceStatus } from '../../src/api/app.js'
import { SqliteStore } from '../../src/store/sqlite/store.js'
import { runCli } from '../helpers/cli.js'
import { KEA_FIXTURES } from '../helpers/fixtures.js'

describe('keatrail run with a source that cannot start (in-process)', () => {
  it('fails with one coded line naming the source, and releases the API and the signal handlers', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kt-cli-start-'))
    const data = join(dir, 'data')
    const config = join(dir, 'keatrail.yaml')
    writeFileSync(config, `dataDir: ${data}\napi: { port: 0 }\nsources:\n  - type: file\n    name: k\n    include: ["${join(KEA_FIXTURES, 'kea-2.2.0-dhcp4-INFO-full.log')}"]\n    timeZone: UTC\n`)
    // The state directory cannot be made: a file is in its place.
    mkdirSync(data)
    writeFileSync(join(data, 'state'), '')
    const handlers = [process.listenerCount('SIGTERM'), process.listenerCount('SIGINT')]

    const r = await runCli(['run', '--config', config])

    expect(r.code).toBe(2)
    const lines = r.err.trim().split('\n')
    const plain = lines.filter((l) => !l.startsWith('{'))
    expect(plain).toEqual([`keatrail: KEATRAIL_ERR_SOURCE_START: Source k could not start: state directory ${join(data, 'state')} is not writable: EEXIST: file already exists, mkdir '${join(data, 'state')}'`])
    expect(lines.filter((l) => l.includes('KEATRAIL_ERR_SOURCE_START'))).toHaveLength(1)
    expect([process.listenerCount('SIGTERM'), process.listenerCount('SIGINT')]).toEqual(handlers)
    const url = (lines.map((l) => l.startsWith('{') ? JSON.parse(l) as { msg: string, url?: string } : undefined).find((l) => l?.msg === 'API and web UI listening.'))?.url
    expect(url).toBeDefined()
    await expect(fetch(`${url as string}/healthz`)).rejects.toThrow()
  })
})

describe('/readyz reports each source', () => {
  const stores: SqliteStore[] = []
  afterEach(async () => { for (const s of stores.splice(0)) await s.close() })

  async function ready (status: ServiceStatus): Promise<{ code: number, body: unknown }> {
    const store = new SqliteStore({ path: join(mkdtempSync(join(tmpdir(), 'kt-ready-')), 'k.db') })
    stores.push(store)
    const app = await buildApp({ store, status })
    try {
      const res = await app.inject({ url: '/readyz' })
      return { code: res.statusCode, body: res.json() }
    } finally {
      await app.close()
    }
  }

  it('is ready only when every configured source runs', async () => {
    expect(await ready({ sourcesRunning: () => true, sourceStates: () => ({ a: 'running', b: 'running' }) }))
      .toEqual({ code: 200, body: { ready: true, store: expect.any(String), sources: true, sourceStates: { a: 'running', b: 'running' }, audit: 'off' } })
    for (const state of ['starting', 'failed', 'stopped'] as const) {
      expect(await ready({ sourcesRunning: () => true, sourceStates: () => ({ a: 'running', b: state }) }))
        .toEqual({ code: 503, body: { ready: false, store: expect.any(String), sources: false, sourceStates: { a: 'running', b: state }, audit: 'off' } })
    }
  })
})
