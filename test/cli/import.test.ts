import { mkdtempSync, copyFileSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runCli as run } from '../helpers/cli.js'
import { describe, expect, it } from 'vitest'
import { importOrder } from '../../src/cli/import.js'
import { SqliteStore } from '../../src/store/sqlite/store.js'
import { engineStore, searchEngines } from '../helpers/engines.js'
import { KEA_FIXTURES, parseBuffer } from '../helpers/fixtures.js'


const files = [join(KEA_FIXTURES, 'kea-2.2.0-dhcp4-INFO-full.log'), join(KEA_FIXTURES, 'kea-2.2.0-dhcp4-DEBUG99-full.log.gz')]

describe('keatrail import', () => {
  it('reads rotated files oldest first', () => {
    expect(importOrder(['k.log', 'k.log.1', 'k.log.2.gz', 'a.log', 'k.log.10'])).toEqual(['a.log', 'k.log.10', 'k.log.2.gz', 'k.log.1', 'k.log'])
  })

  it('backfills into SQLite; a second run stores nothing new', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kt-import-'))
    const first = await run(['import', '--data-dir', dir, '--tz', 'UTC', ...files])
    expect(first.code).toBe(0)
    expect(first.err).toMatch(/→ 5,991 events .*: 5991 new, 0 already stored, 0 dead-lettered; parse: 0 unmatched, 0 partial/)
    const second = await run(['import', '--data-dir', dir, '--tz', 'UTC', ...files])
    expect(second.err).toContain('0 new, 5991 already stored')
    const store = new SqliteStore({ path: join(dir, 'keatrail.db') })
    expect(await store.count()).toBe(5991)
    await store.close()
  })

  it('treats a renamed (rotated) copy as the same events', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kt-import-'))
    const rotated = join(dir, 'kea-dhcp4.log.1')
    copyFileSync(files[0]!, rotated)
    await run(['import', '--data-dir', dir, '--tz', 'UTC', files[0]!])
    expect((await run(['import', '--data-dir', dir, '--tz', 'UTC', rotated])).err).toContain('0 new, 206 already stored')
  })

  it('says so when a store\'s lease history was derived with other lease domains (an import without the config run has)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kt-import-'))
    const config = join(dir, 'keatrail.yaml')
    writeFileSync(config, `dataDir: ${JSON.stringify(join(dir, 'data'))}\nleases:\n  domains:\n    - name: ha-pair\n      servers: [kea-ha1, kea-ha2]\n`)
    const withDomains = await run(['import', '--config', config, '--tz', 'UTC', '--host', 'kea-ha1', files[0]!])
    expect(withDomains.code).toBe(0)
    expect(withDomains.err).not.toContain('KEATRAIL_ERR_LEASE_DOMAINS_CHANGED')
    const without = await run(['import', '--data-dir', join(dir, 'data'), '--tz', 'UTC', '--host', 'kea-ha2', files[0]!])
    expect(without.code).toBe(0)
    expect(without.err).toContain('KEATRAIL_ERR_LEASE_DOMAINS_CHANGED')
    expect(without.err).toContain('ha-pair')
    // Recorded: the same configuration again says nothing.
    expect((await run(['import', '--data-dir', join(dir, 'data'), '--tz', 'UTC', '--host', 'kea-ha2', files[0]!])).err).not.toContain('KEATRAIL_ERR_LEASE_DOMAINS_CHANGED')
  })

  it('exits non-zero when a file cannot be read, naming it', async () => {
    const r = await run(['import', '--data-dir', mkdtempSync(join(tmpdir(), 'kt-import-')), '/nonexistent/kea.log'])
    expect(r.code).toBe(2)
    expect(r.err).toContain('KEATRAIL_ERR_INPUT_READ')
  })

  for (const engine of searchEngines()) {
    it.skipIf(engine.skip !== '' && process.env.CI !== 'true')(`backfills into ${engine.name} (--store ${engine.name}); a second run stores nothing new; lease at answers as from SQLite`, async () => {
      const dir = mkdtempSync(join(tmpdir(), 'kt-import-'))
      const ns = `import${Date.now().toString(36)}`
      const store = ['--store', engine.name, '--es-url', engine.url, '--es-namespace', ns]
      const args = ['import', ...store, '--data-dir', dir, '--tz', 'UTC', ...files]
      expect((await run(args)).err).toContain('5991 new, 0 already stored')
      expect((await run(args)).err).toContain('0 new, 5991 already stored')
      const es = engineStore(engine, { namespace: ns })
      await es.refresh()
      expect(await es.count()).toBe(5991)
      await es.close()
      // The same question of the same lines, asked through the CLI of both stores.
      const local = mkdtempSync(join(tmpdir(), 'kt-import-'))
      expect((await run(['import', '--data-dir', local, '--tz', 'UTC', ...files])).code).toBe(0)
      const { events } = await parseBuffer(readFileSync(files[0] as string), { host: 'h', path: 'p' })
      const asked = events.filter((e) => e.event.action === 'allocate' && e.kea.lease?.address !== undefined).slice(0, 3)
      expect(asked).toHaveLength(3)
      for (const e of asked) {
        const at = new Date(Date.parse(e['@timestamp']) + 1000).toISOString()
        const there = await run(['lease', 'at', e.kea.lease?.address as string, at, ...store, '--data-dir', dir])
        const here = await run(['lease', 'at', e.kea.lease?.address as string, at, '--data-dir', local])
        expect(there.code, there.err).toBe(0)
        expect(there.out).toContain(e.client?.mac?.toLowerCase().replaceAll('-', ':') ?? '')
        expect(there.out).toBe(here.out)
      }
    })
  }
})
